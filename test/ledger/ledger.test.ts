import { chmodSync, closeSync, existsSync, mkdirSync, mkdtempSync, openSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ledgerConfigSchema, openLedger, SqliteLedger, type ClaimInput } from '../../src/ledger/index.ts';
import { useLedgerKinds } from '../support/ledger-kinds.ts';

let sequence = 0;
function claimInput(overrides: Partial<ClaimInput> = {}): ClaimInput {
  sequence++;
  return {
    idempotencyKey: `key-${sequence}`,
    annotationId: 1000 + sequence,
    requestId: `req-${sequence}`,
    mappingName: 'generic-xml',
    mappingHash: 'abc123',
    target: 'erp',
    plannedPath: `INV-${sequence}.xml`,
    sha256: 'f'.repeat(64),
    bytes: 42,
    owner: 'worker-a',
    leaseMs: 60_000,
    ...overrides,
  };
}

const reply = { statusCode: 200, body: { messages: [{ type: 'info', content: 'Exported' }] } };

const dir = mkdtempSync(join(tmpdir(), 'rsb-ledger-'));

describe.each(useLedgerKinds())('$name ledger', ({ open, replicas }) => {
  it('the first claim uploads; a later claim of the same key gets the stored answer', async () => {
    const ledger = await open();
    const input = claimInput();
    const first = await ledger.claim(input);
    expect(first.outcome).toBe('claimed');
    await ledger.complete(first.record.id, input.owner, { remotePath: input.plannedPath, reply });
    const second = await ledger.claim({ ...input, requestId: 'retry-1', owner: 'worker-b' });
    expect(second.outcome).toBe('done');
    expect(second.record.reply).toEqual(reply);
    expect(second.record.requestIds.sort()).toEqual([input.requestId, 'retry-1'].sort());
    const kinds = (await ledger.events(first.record.id)).map((event) => event.kind);
    expect(kinds).toEqual(['claimed', 'uploaded', 'duplicate_answered']);
    await ledger.close();
  });

  it('a claim while another worker holds a live lease is reported in progress', async () => {
    const ledger = await open();
    const input = claimInput();
    await ledger.claim(input);
    const other = await ledger.claim({ ...input, owner: 'worker-b', requestId: 'other' });
    expect(other.outcome).toBe('in_progress');
    await ledger.close();
  });

  it('an expired lease (a dead worker) is taken over', async () => {
    const ledger = await open();
    const input = claimInput({ leaseMs: -1 });
    await ledger.claim(input);
    const takeover = await ledger.claim({ ...input, owner: 'worker-b', leaseMs: 60_000 });
    expect(takeover).toMatchObject({ outcome: 'claimed', takeover: true });
    expect(takeover.record.attempts).toBe(2);
    // The dead worker can no longer complete it.
    await expect(ledger.complete(takeover.record.id, 'worker-a', { remotePath: 'x', reply })).rejects.toThrow(
      /taken over/,
    );
    await ledger.close();
  });

  it('a transient failure lets the next delivery retry; a permanent one is replayed', async () => {
    const ledger = await open();
    const transient = claimInput();
    const t = await ledger.claim(transient);
    await ledger.fail(t.record.id, transient.owner, {
      code: 'SFTP_UNREACHABLE',
      message: 'down',
      permanent: false,
      reply: { statusCode: 503, body: {} },
    });
    expect((await ledger.claim({ ...transient, owner: 'worker-b' })).outcome).toBe('claimed');

    const permanent = claimInput();
    const p = await ledger.claim(permanent);
    const failedReply = { statusCode: 200, body: { messages: [{ type: 'error', content: 'exists' }] } };
    await ledger.fail(p.record.id, permanent.owner, {
      code: 'TARGET_EXISTS',
      message: 'exists',
      permanent: true,
      reply: failedReply,
    });
    const again = await ledger.claim({ ...permanent, owner: 'worker-b' });
    expect(again.outcome).toBe('done');
    expect(again.record.reply).toEqual(failedReply);
    expect(again.record.status).toBe('failed');
    await ledger.close();
  });

  it('concurrent claims of one key from separate connections: exactly one wins', async () => {
    const shared = await replicas(3);
    const input = claimInput();
    const results = await Promise.all(
      Array.from({ length: 24 }, (_, i) =>
        shared[i % shared.length]!.claim({ ...input, owner: `worker-${i}`, requestId: `r-${i}` }),
      ),
    );
    expect(results.filter((result) => result.outcome === 'claimed')).toHaveLength(1);
    expect(results.filter((result) => result.outcome === 'in_progress')).toHaveLength(23);
    for (const ledger of shared) await ledger.close();
  });

  it('lists by status, mapping, target and annotation', async () => {
    const ledger = await open();
    const a = claimInput({ mappingName: 'datev' });
    const claimed = await ledger.claim(a);
    await ledger.complete(claimed.record.id, a.owner, { remotePath: a.plannedPath, reply });
    const uploaded = await ledger.list({ status: ['uploaded'], mappingName: 'datev' });
    expect(uploaded.map((record) => record.annotationId)).toContain(a.annotationId);
    expect(await ledger.list({ annotationId: a.annotationId, target: 'nope' })).toEqual([]);
    await ledger.ping();
    await ledger.close();
  });
});

describe('sqlite ledger file', () => {
  it('is created owner-only (0600)', async () => {
    const file = join(dir, 'perm.db');
    const ledger = new SqliteLedger({ path: file });
    expect(statSync(file).mode & 0o777).toBe(0o600);
    await ledger.close();
  });

  it('an existing folder and file are tightened to owner-only (0700 / 0600)', async () => {
    const folder = join(dir, 'loose');
    mkdirSync(folder, { mode: 0o755 });
    chmodSync(folder, 0o755);
    const file = join(folder, 'ledger.db');
    closeSync(openSync(file, 'w', 0o644));
    chmodSync(file, 0o644);
    const ledger = new SqliteLedger({ path: file });
    expect(statSync(folder).mode & 0o777).toBe(0o700);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    await ledger.close();
  });

  it('a shared folder (sticky, like /tmp) keeps its mode; the file in it is still owner-only', async () => {
    const folder = join(dir, 'shared');
    mkdirSync(folder);
    chmodSync(folder, 0o1777);
    const ledger = new SqliteLedger({ path: join(folder, 'ledger.db') });
    expect(statSync(folder).mode & 0o7777).toBe(0o1777);
    expect(statSync(join(folder, 'ledger.db')).mode & 0o777).toBe(0o600);
    await ledger.close();
  });

  it('group commit: a failing write rolls back alone, and a caller resumes only once the commit holding its write is done', async () => {
    const file = join(dir, 'group.db');
    const ledger = new SqliteLedger({ path: file });
    const first = claimInput();
    const claimed = await ledger.claim(first);
    const a = claimInput();
    const b = claimInput();
    const committedRows = (): number => {
      // A second connection sees only what is committed.
      const reader = new SqliteLedger({ path: file });
      try {
        return (
          reader.db
            .prepare(`SELECT count(*) AS n FROM exports WHERE idempotency_key IN (?, ?)`)
            .get(a.idempotencyKey, b.idempotencyKey) as { n: number }
        ).n;
      } finally {
        reader.db.close();
      }
    };
    // Same event-loop turn: two new claims, a completion, and a completion under the wrong owner.
    let visibleWhenResolved = -1;
    const writes = [
      ledger.claim(a).then((result) => {
        visibleWhenResolved = committedRows();
        return result;
      }),
      ledger.complete(claimed.record.id, 'someone-else', { remotePath: first.plannedPath, reply }),
      ledger.claim(b),
      ledger.complete(claimed.record.id, first.owner, { remotePath: first.plannedPath, reply }),
    ];
    expect(committedRows()).toBe(0);
    const [claimA, wrongOwner, claimB, completed] = await Promise.allSettled(writes);
    expect(committedRows()).toBe(2);
    expect(visibleWhenResolved).toBe(2); // both claims were committed, together, before the first caller resumed
    expect(claimA).toMatchObject({ status: 'fulfilled', value: { outcome: 'claimed' } });
    expect(claimB).toMatchObject({ status: 'fulfilled', value: { outcome: 'claimed' } });
    expect(wrongOwner).toMatchObject({ status: 'rejected', reason: { code: 'LEDGER_LEASE_LOST' } });
    expect(completed?.status).toBe('fulfilled');
    expect((await ledger.get(claimed.record.id))?.status).toBe('uploaded');
    // The refused completion left no trace: one 'uploaded' event, from the right owner.
    expect((await ledger.events(claimed.record.id)).map((event) => event.kind)).toEqual(['claimed', 'uploaded']);
    await ledger.close();
  });

  it('commits with synchronous=NORMAL by default and FULL when the url asks for it', async () => {
    const modes: number[] = [];
    for (const url of [`sqlite:${join(dir, 'normal.db')}`, `sqlite:${join(dir, 'full.db')}?synchronous=full`]) {
      const ledger = (await openLedger(url)) as SqliteLedger;
      modes.push(ledger.db.pragma('synchronous', { simple: true }) as number);
      await ledger.close();
    }
    expect(modes).toEqual([1, 2]); // SQLite: 1 = NORMAL, 2 = FULL
  });

  it('refuses an unknown option or value in the url, naming it, before opening anything', async () => {
    await expect(openLedger(`sqlite:${join(dir, 'x.db')}?synchronus=full`)).rejects.toThrow(
      'unsupported sqlite ledger option "synchronus"',
    );
    await expect(openLedger(`sqlite:${join(dir, 'y.db')}?synchronous=off`)).rejects.toThrow(
      'synchronous="off": expected normal or full',
    );
    expect(ledgerConfigSchema.safeParse({ url: 'sqlite:./l.db?synchronous=off' }).error?.issues[0]?.message).toBe(
      'sqlite ledger option synchronous="off": expected normal or full',
    );
    expect(existsSync(join(dir, 'x.db')) || existsSync(join(dir, 'y.db'))).toBe(false);
  });
});
