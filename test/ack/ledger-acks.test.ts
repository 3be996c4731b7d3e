import { createHash } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import Database from 'better-sqlite3';
import { exportIdempotencyKey } from '../../src/export/index.ts';
import { SqliteLedger, type Ledger } from '../../src/ledger/index.ts';
import { sqliteMigrations } from '../../src/ledger/migrations.ts';
import { useLedgerKinds } from '../support/ledger-kinds.ts';

let sequence = 0;

const reply = { statusCode: 200, body: { messages: [{ type: 'info', content: 'Exported' }] } };

/** An uploaded export named INV-<n>_<annotation>.xml. */
async function uploaded(ledger: Ledger, options: { mappingName?: string; documentRef?: string } = {}) {
  sequence++;
  const annotationId = 700_000 + sequence + Math.floor(Math.random() * 100_000) * 10;
  const name = `INV-${sequence}_${annotationId}.xml`;
  const content = Buffer.from(`<Invoice number="INV-${sequence}" annotation="${annotationId}"/>\n`);
  const sha256 = createHash('sha256').update(content).digest('hex');
  const claim = await ledger.claim({
    idempotencyKey: exportIdempotencyKey(annotationId, 'erp', sha256),
    annotationId,
    requestId: `req-${sequence}`,
    mappingName: options.mappingName ?? 'erp-xml',
    mappingHash: 'h',
    target: 'erp',
    plannedPath: `out/${name}`,
    sha256,
    bytes: content.length,
    owner: 'w',
    leaseMs: 60_000,
    documentRef: options.documentRef ?? `INV-${sequence}`,
    rossumBaseUrl: 'https://example.rossum.app',
  });
  await ledger.complete(claim.record.id, 'w', { remotePath: `out/${name}`, reply });
  return { id: claim.record.id, annotationId, name, stem: name.replace(/\.xml$/, '') };
}

/** The ERP's rejection of an uploaded export, recorded as the acks process records one: it queues an outcome for Rossum. */
async function rejectedByErp(ledger: Ledger, e: { id: number; name: string }): Promise<void> {
  await ledger.recordAck({
    source: 'erp',
    fileName: `${e.name}.ack`,
    sha256: `s-${e.id}`,
    convention: 'xml',
    disposition: 'matched',
    entries: [{ index: 0, exportId: e.id, verdict: 'rejected', messages: [{ text: 'no' }] }],
  });
}

describe.each(useLedgerKinds())('$name ledger: acknowledgements', ({ open }) => {
  it('finds the export an ack names by file name, stem, annotation id or document number', async () => {
    const ledger = await open();
    const e = await uploaded(ledger, { documentRef: `DOC-${sequence}-x` });
    const record = (await ledger.get(e.id))!;
    for (const [by, value] of [
      ['name', e.name],
      ['stem', e.stem],
      ['annotationId', String(e.annotationId)],
      ['documentRef', record.documentRef!],
    ] as const) {
      expect((await ledger.findExportForAck({ target: 'erp', by, value }))?.id, by).toBe(e.id);
    }
    expect(await ledger.findExportForAck({ target: 'other', by: 'name', value: e.name })).toBeUndefined();
    expect(
      await ledger.findExportForAck({ target: 'erp', by: 'name', value: e.name, mappingNames: ['nope'] }),
    ).toBeUndefined();
    expect(record.rossumBaseUrl).toBe('https://example.rossum.app');
    await ledger.close();
  });

  it('records an ack once: state changes, one outcome queued, the same file again changes nothing', async () => {
    const ledger = await open();
    const e = await uploaded(ledger);
    expect(await ledger.awaitAcks([{ mappingName: 'erp-xml', deadlineMs: 60_000, since: 0 }])).toBeGreaterThanOrEqual(
      1,
    );
    expect((await ledger.get(e.id))!.ackState).toBe('awaiting_ack');
    const input = {
      source: 'erp',
      fileName: `${e.stem}.err`,
      sha256: `sha-${e.id}`,
      convention: 'companion',
      disposition: 'matched' as const,
      entries: [{ index: 0, exportId: e.id, verdict: 'rejected' as const, messages: [{ code: 'E1', text: 'bad' }] }],
    };
    const first = await ledger.recordAck(input);
    expect(first.alreadyRecorded).toBe(false);
    expect(first.outcomes.map((o) => [o.kind, o.delivery])).toEqual([['rejected', 'pending']]);
    const again = await ledger.recordAck(input);
    expect(again.alreadyRecorded).toBe(true);
    expect(again.outcomes.map((o) => o.id)).toEqual(first.outcomes.map((o) => o.id));
    expect(await ledger.outcomes(e.id)).toHaveLength(1);
    const after = (await ledger.get(e.id))!;
    expect(after.ackState).toBe('rejected');
    expect(after.ackFile).toBe(`${e.stem}.err`);
    expect((await ledger.list({ state: ['rejected'], annotationId: e.annotationId })).map((r) => r.id)).toEqual([e.id]);
    await ledger.close();
  });

  it('records a batch of ack files in one call: results in input order, a file seen before is flagged as such, quiet acceptances skip the outbox', async () => {
    const ledger = await open();
    const [a, b, c, held] = [
      await uploaded(ledger),
      await uploaded(ledger),
      await uploaded(ledger),
      await uploaded(ledger),
    ];
    await ledger.startHold(held.id, Date.now() + 60_000);
    const file = (e: { id: number; stem: string }, verdict: 'accepted' | 'rejected', quietIfAccepted: boolean) => ({
      source: 'erp',
      fileName: `${e.stem}.${verdict === 'accepted' ? 'ok' : 'err'}`,
      sha256: `batch-${e.id}`,
      convention: 'companion',
      disposition: 'matched' as const,
      entries: [
        {
          index: 0,
          exportId: e.id,
          verdict,
          messages: verdict === 'rejected' ? [{ text: 'no' }] : [],
          erpReference: null,
          quietIfAccepted,
        },
      ],
    });
    const earlier = await ledger.recordAck(file(c, 'rejected', true));
    const results = await ledger.recordAcks([
      file(b, 'accepted', true),
      file(c, 'rejected', true),
      file(a, 'accepted', false),
      file(held, 'accepted', true),
    ]);
    expect(results.map((r) => r.alreadyRecorded)).toEqual([false, true, false, false]);
    expect(results[1]!.ackFileId).toBe(earlier.ackFileId);
    expect(results.map((r) => r.outcomes.map((o) => [o.exportId, o.kind, o.delivery]))).toEqual([
      [[b.id, 'accepted', 'not_needed']],
      [[c.id, 'rejected', 'pending']],
      [[a.id, 'accepted', 'pending']],
      // A held export's outcome still goes through the outbox (the poll reply or the release tells Rossum).
      [[held.id, 'accepted', 'pending']],
    ]);
    expect((await ledger.outcomes(b.id))[0]!.deliveredAt).not.toBeNull();
    expect(await ledger.recordAcks([])).toEqual([]);
    await ledger.markAckFilesArchived(
      results.map((r, i) => ({ ackFileId: r.ackFileId, archivedTo: i === 0 ? null : `processed/${i}` })),
    );
    await ledger.close();
  });

  it('deadlines judged for some targets only: exports of other targets keep waiting', async () => {
    const ledger = await open();
    const e = await uploaded(ledger, { mappingName: 'target-filter-map' });
    await ledger.awaitAcks([{ mappingName: 'target-filter-map', deadlineMs: -1, since: 0 }]);
    expect(await ledger.expireAcks(500, [])).toEqual([]);
    expect((await ledger.expireAcks(500, ['elsewhere', 'other'])).filter((o) => o.exportId === e.id)).toEqual([]);
    expect((await ledger.get(e.id))!.ackState).toBe('awaiting_ack');
    expect(
      (await ledger.expireAcks(500, ['other', 'erp'])).filter((o) => o.exportId === e.id).map((o) => o.kind),
    ).toEqual(['timeout']);
    expect((await ledger.get(e.id))!.ackState).toBe('ack_timeout');
    await ledger.close();
  });

  it('a deadline passes: ack_timeout with one outcome; a late acceptance restores it and says so', async () => {
    const ledger = await open();
    const e = await uploaded(ledger, { mappingName: 'deadline-map' });
    await ledger.awaitAcks([{ mappingName: 'deadline-map', deadlineMs: -1, since: 0 }]);
    const expired = await ledger.expireAcks();
    expect(expired.filter((o) => o.exportId === e.id).map((o) => o.kind)).toEqual(['timeout']);
    expect((await ledger.expireAcks()).filter((o) => o.exportId === e.id)).toEqual([]);
    expect((await ledger.get(e.id))!.ackState).toBe('ack_timeout');
    const late = await ledger.recordAck({
      source: 'erp',
      fileName: `${e.stem}.ok`,
      sha256: `late-${e.id}`,
      convention: 'companion',
      disposition: 'matched',
      entries: [{ index: 0, exportId: e.id, verdict: 'accepted', messages: [], erpReference: '51000' }],
    });
    expect(late.outcomes[0]).toMatchObject({
      kind: 'accepted_late',
      detail: { previousState: 'ack_timeout', erpReference: '51000' },
    });
    const record = (await ledger.get(e.id))!;
    expect([record.ackState, record.erpReference]).toEqual(['accepted', '51000']);
    const events = (await ledger.events(e.id)).map((event) => event.kind);
    expect(events).toEqual(['claimed', 'uploaded', 'awaiting_ack', 'ack_timeout', 'ack_accepted_late']);
    await ledger.close();
  });

  it('outcomes are leased to one process; a retry waits; delivered ones are never handed out again', async () => {
    const ledger = await open();
    const e = await uploaded(ledger);
    await rejectedByErp(ledger, e);
    const mine = (await ledger.claimOutcomes('a', 60_000)).filter((o) => o.exportId === e.id);
    expect(mine).toHaveLength(1);
    expect((await ledger.claimOutcomes('b', 60_000)).filter((o) => o.exportId === e.id)).toEqual([]);
    await expect(ledger.settleOutcome(mine[0]!.id, 'b', { delivery: 'delivered' })).rejects.toThrow(/taken over/);
    await ledger.settleOutcome(mine[0]!.id, 'a', { delivery: 'retry', error: 'HTTP 503', retryAt: Date.now() - 1 });
    const retried = (await ledger.claimOutcomes('b', 60_000)).filter((o) => o.exportId === e.id);
    expect(retried.map((o) => o.attempts)).toEqual([2]);
    await ledger.settleOutcome(retried[0]!.id, 'b', { delivery: 'delivered' });
    expect((await ledger.claimOutcomes('c', 60_000)).filter((o) => o.exportId === e.id)).toEqual([]);
    expect((await ledger.outcomes(e.id))[0]).toMatchObject({ delivery: 'delivered', lastError: 'HTTP 503' });
    await ledger.close();
  });

  it('fencing: a claim renews its lease only while no newer claim took the outcome (owner and generation), and only such a claim settles it', async () => {
    const ledger = await open();
    const e = await uploaded(ledger);
    await rejectedByErp(ledger, e);
    const claimFor = async (owner: string, leaseMs: number) =>
      (await ledger.claimOutcomes(owner, leaseMs)).filter((o) => o.exportId === e.id);
    const leaseRunsOut = () => new Promise((resolve) => setTimeout(resolve, 150));

    const [first] = await claimFor('a', 100);
    expect(await ledger.renewOutcomeLease(first!.id, 'a', first!.attempts, 100)).toBe(true);
    expect(await ledger.renewOutcomeLease(first!.id, 'b', first!.attempts, 100)).toBe(false);
    await leaseRunsOut();
    // Ran out, but nobody claimed it since: still safely a's, and the renewal keeps others away.
    expect(await ledger.renewOutcomeLease(first!.id, 'a', first!.attempts, 60_000)).toBe(true);
    expect(await claimFor('b', 100)).toEqual([]);

    // a's lease runs out and a claims it again under the same name: the older claim is fenced off.
    await ledger.renewOutcomeLease(first!.id, 'a', first!.attempts, 100);
    await leaseRunsOut();
    const [again] = await claimFor('a', 100);
    expect(again!.attempts).toBe(first!.attempts + 1);
    expect(await ledger.renewOutcomeLease(first!.id, 'a', first!.attempts, 100)).toBe(false);
    await leaseRunsOut();

    // Another process takes it over: a's renewals and settlement are refused, b's go through.
    const [taken] = await claimFor('b', 60_000);
    expect(taken!.attempts).toBe(again!.attempts + 1);
    expect(await ledger.renewOutcomeLease(again!.id, 'a', again!.attempts, 60_000)).toBe(false);
    await expect(ledger.settleOutcome(again!.id, 'a', { delivery: 'delivered' }, again!.attempts)).rejects.toThrow(
      /taken over/,
    );
    expect(await ledger.renewOutcomeLease(taken!.id, 'b', taken!.attempts, 60_000)).toBe(true);
    await expect(ledger.settleOutcome(taken!.id, 'b', { delivery: 'delivered' }, taken!.attempts - 1)).rejects.toThrow(
      /taken over/,
    );
    await ledger.settleOutcome(taken!.id, 'b', { delivery: 'delivered' }, taken!.attempts);
    // Settled: nothing left to write, the fence holds for nobody.
    expect(await ledger.renewOutcomeLease(taken!.id, 'b', taken!.attempts, 60_000)).toBe(false);
    expect((await ledger.outcomes(e.id))[0]).toMatchObject({ delivery: 'delivered', attempts: 3 });
    await ledger.close();
  });

  it('records when delivery was last tried and how it ended (left alone, gone); new credentials make every pending outcome due now', async () => {
    const ledger = await open();
    const [a, b, c] = [await uploaded(ledger), await uploaded(ledger), await uploaded(ledger)];
    for (const e of [a, b, c]) await rejectedByErp(ledger, e);
    const before = Date.now();
    const claimed = (await ledger.claimOutcomes('a', 60_000)).filter((o) => [a.id, b.id, c.id].includes(o.exportId));
    expect(claimed).toHaveLength(3);
    const of = (id: number) => claimed.find((o) => o.exportId === id)!;
    expect(of(a.id).lastAttemptAt).toBeGreaterThanOrEqual(before);
    await ledger.settleOutcome(of(a.id).id, 'a', {
      delivery: 'left_alone',
      rossumStatus: 'to_review',
      note: 'verdict posted as a note',
    });
    await ledger.settleOutcome(of(b.id).id, 'a', { delivery: 'gone', error: 'annotation 7 was purged in Rossum' });
    await ledger.settleOutcome(of(c.id).id, 'a', {
      delivery: 'retry',
      error: 'HTTP 401',
      retryAt: Date.now() + 3_600_000,
    });
    expect((await ledger.outcomes(a.id))[0]).toMatchObject({
      delivery: 'left_alone',
      result: 'left alone: annotation was in to_review; verdict posted as a note',
    });
    expect((await ledger.events(a.id)).map((event) => event.kind)).toContain('rossum_left_alone');
    expect((await ledger.outcomes(b.id))[0]).toMatchObject({
      delivery: 'gone',
      result: 'gone: annotation 7 was purged in Rossum',
      lastError: 'annotation 7 was purged in Rossum',
    });
    expect((await ledger.claimOutcomes('b', 60_000)).filter((o) => o.exportId === c.id)).toEqual([]);
    expect(await ledger.retryPendingNow()).toBeGreaterThanOrEqual(1);
    expect((await ledger.claimOutcomes('b', 60_000)).filter((o) => o.exportId === c.id).map((o) => o.attempts)).toEqual(
      [2],
    );
    const backlog = await ledger.outcomeBacklog();
    expect(backlog.left_alone).toBeGreaterThanOrEqual(1);
    expect(backlog.gone).toBeGreaterThanOrEqual(1);
    await ledger.close();
  });

  it('a hold moves pending → answered exactly once', async () => {
    const ledger = await open();
    const e = await uploaded(ledger);
    await ledger.startHold(e.id, Date.now() + 1000);
    const results = await Promise.all([
      ledger.moveHold(e.id, ['pending'], 'answered'),
      ledger.moveHold(e.id, ['pending'], 'released'),
    ]);
    expect(results.filter(Boolean)).toHaveLength(1);
    expect((await ledger.get(e.id))!.holdState).toBe(results[0] ? 'answered' : 'released');
    await ledger.close();
  });
});

describe('sqlite ledger upgrade', () => {
  it('a ledger written by the previous version gains the ack columns, and its old uploads can be matched', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'rsb-ack-ledger-')), 'v1.db');
    const v1 = new Database(file);
    v1.exec(sqliteMigrations[0]!);
    v1.pragma('user_version = 1');
    // The previous version's own schema and row shape: no ledger operation of this version writes a v1 file.
    const sha256 = createHash('sha256').update('<B/>').digest('hex');
    v1.prepare(
      `INSERT INTO exports (idempotency_key, annotation_id, mapping_name, mapping_hash, target, planned_path, remote_path, sha256, bytes, status, created_at, updated_at, uploaded_at)
       VALUES (?, 1, 'm', 'h', 'erp', 'a/B_1.xml', 'a/B_1.xml', ?, 4, 'uploaded', 1, 1, 1)`,
    ).run(exportIdempotencyKey(1, 'erp', sha256), sha256);
    v1.close();
    const upgraded = new SqliteLedger({ path: file });
    const found = await upgraded.findExportForAck({ target: 'erp', by: 'stem', value: 'B_1' });
    expect(found).toMatchObject({ remotePath: 'a/B_1.xml', ackState: null });
    expect(upgraded.db.pragma('user_version', { simple: true })).toBe(sqliteMigrations.length);
    await upgraded.close();
  });
});
