import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseExportPayload, viewAnnotation } from '../../src/annotation/index.ts';
import { BatchSender } from '../../src/export/index.ts';
import type { BatchEntryInput, Ledger } from '../../src/ledger/index.ts';
import { loadMappings, type LoadedMapping } from '../../src/mapping/index.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { createTarget } from '../../src/transport/index.ts';
import { batchMappingFrom, batchPayload, writeMappings } from '../support/batch-mappings.ts';
import { CapturedLog } from '../support/bridge.ts';
import { useLedgerKinds } from '../support/ledger-kinds.ts';

const dir = mkdtempSync(join(tmpdir(), 'rsb-batch-'));
let serial = 0;

const kinds = useLedgerKinds();

const entry = (mapping: string, annotationId: number, content: string, extra: Partial<BatchEntryInput> = {}) =>
  ({
    mappingName: mapping,
    target: 'erp',
    annotationId,
    idempotencyKey: `${annotationId}:erp:${mapping}:${content}`,
    mappingHash: 'h1',
    entry: JSON.stringify({ text: `${content}\n`, records: 1, totals: {} }),
    documentRef: `DOC-${annotationId}`,
    rossumBaseUrl: null,
    requestId: `req-${annotationId}-${content}`,
    counter: `batch:${mapping}`,
    start: 100,
    closesAt: (openedAt: number) => openedAt + 3_600_000,
    maxDocuments: 3,
    ...extra,
  }) satisfies BatchEntryInput;

describe.each(kinds)('$name batches', ({ replicas }) => {
  it('collects, replaces, closes when full, is claimed by one sender, and becomes one export per document when sent', async () => {
    const mapping = `m-${++serial}`;
    const [a, b] = (await replicas(2)) as [Ledger, Ledger];
    const first = await a.addToBatch(entry(mapping, 1, 'v1'));
    expect(first).toMatchObject({
      outcome: 'added',
      replaced: false,
      closed: false,
      batch: { number: 100, documents: 1 },
    });
    // The same content again is waiting; a new version replaces the entry.
    expect(await b.addToBatch(entry(mapping, 1, 'v1'))).toMatchObject({ outcome: 'waiting', batch: { number: 100 } });
    expect(await b.addToBatch(entry(mapping, 1, 'v2'))).toMatchObject({ outcome: 'added', replaced: true });
    await a.addToBatch(entry(mapping, 2, 'v1'));
    const full = await b.addToBatch(entry(mapping, 3, 'v1'));
    expect(full).toMatchObject({ outcome: 'added', closed: true, batch: { status: 'closed', documents: 3 } });
    // The next document opens the next batch, numbered from the same counter.
    expect(await a.addToBatch(entry(mapping, 4, 'v1'))).toMatchObject({ outcome: 'added', batch: { number: 101 } });

    const claims = await Promise.all([a.claimDueBatch('owner-a', 60_000), b.claimDueBatch('owner-b', 60_000)]);
    const claimed = claims.filter((claim) => claim !== undefined);
    expect(claimed).toHaveLength(1);
    const batch = claimed[0] as NonNullable<(typeof claimed)[0]>;
    const owner = claims[0] ? 'owner-a' : 'owner-b';
    expect(batch).toMatchObject({ number: 100, status: 'sending', documents: 3 });
    const entries = await a.batchEntries(batch.id);
    expect(entries.map((e) => [e.annotationId, e.idempotencyKey, e.replaced])).toEqual([
      [1, `1:erp:${mapping}:v2`, true],
      [2, `2:erp:${mapping}:v1`, false],
      [3, `3:erp:${mapping}:v1`, false],
    ]);
    await expect(
      a.completeBatch(batch.id, owner, { remotePath: 'B_100.csv', reply: { statusCode: 200, body: {} } }),
    ).rejects.toThrow(/taken over/); // no file planned yet
    await a.planBatchFile(batch.id, owner, { fileName: 'B_100.csv', sha256: 'abc', bytes: 42 });
    await expect(
      a.completeBatch(batch.id, 'someone-else', { remotePath: 'B_100.csv', reply: { statusCode: 200, body: {} } }),
    ).rejects.toThrow(/taken over/);
    await a.completeBatch(batch.id, owner, { remotePath: 'B_100.csv', reply: { statusCode: 200, body: { ok: 1 } } });

    const exported = await a.list({ mappingName: mapping });
    expect(exported.map((e) => [e.annotationId, e.status, e.remotePath, e.sequenceNumber, e.documentRef])).toEqual([
      [1, 'uploaded', 'B_100.csv', 100, 'DOC-1'],
      [2, 'uploaded', 'B_100.csv', 100, 'DOC-2'],
      [3, 'uploaded', 'B_100.csv', 100, 'DOC-3'],
    ]);
    expect((exported[0] as (typeof exported)[0]).requestIds).toEqual(['req-1-v2']);
    expect((await a.batchEntries(batch.id)).every((e) => e.exportId !== null)).toBe(true);
    expect(await a.getBatch(batch.id)).toMatchObject({ status: 'sent', remotePath: 'B_100.csv' });
    // Sent content answers from its export; a new version of a sent document goes into the open batch.
    expect(await b.addToBatch(entry(mapping, 2, 'v1'))).toMatchObject({ outcome: 'sent' });
    expect(await b.addToBatch(entry(mapping, 2, 'v3'))).toMatchObject({
      outcome: 'added',
      replaced: false,
      batch: { number: 101, documents: 2 },
    });
    await a.close();
    await b.close();
  });

  it('an overdue open batch closes before a new document arrives; a dead sender is released; one open batch per mapping under concurrency', async () => {
    const mapping = `m-${++serial}`;
    const ledgers = await replicas(3);
    const [a] = ledgers as [Ledger];
    const past = { closesAt: (openedAt: number) => openedAt - 1, maxDocuments: undefined };
    const old = await a.addToBatch(entry(mapping, 1, 'v1', past));
    expect(old.outcome).toBe('added');
    const fresh = await a.addToBatch(entry(mapping, 2, 'v1', past));
    expect(fresh).toMatchObject({ outcome: 'added', batch: { number: 101 } });
    const claimed = await a.claimDueBatch('dead', 60_000);
    expect(claimed).toMatchObject({ number: 100, status: 'sending' });
    expect(await a.releaseBatch((claimed as { id: number }).id, 'not-the-owner')).toBe(false);
    expect(await a.releaseBatch((claimed as { id: number }).id, 'dead')).toBe(true);
    expect(await a.claimDueBatch('alive', 60_000)).toMatchObject({ number: 100, attempts: 2 });

    const concurrent = `m-${++serial}`;
    const results = await Promise.all(
      Array.from({ length: 12 }, (_, i) =>
        (ledgers[i % 3] as Ledger).addToBatch(entry(concurrent, 10 + i, 'v1', { maxDocuments: undefined })),
      ),
    );
    const numbers = new Set(results.map((r) => (r.outcome === 'added' ? r.batch.number : -1)));
    expect([...numbers]).toEqual([100]);
    const batches = await a.listBatches({ mappingName: concurrent });
    expect(batches).toHaveLength(1);
    expect(batches[0]).toMatchObject({ documents: 12, status: 'open' });
    for (const ledger of ledgers) await ledger.close();
  });
});

describe.each(kinds)('$name batch senders on several replicas', ({ replicas }) => {
  it('two senders racing for the same due batches upload each batch once', async () => {
    const mapping = `replicas-${++serial}`;
    const mappings = loadMappings(
      writeMappings(join(dir, `mappings-${serial}`), {
        [mapping]: batchMappingFrom('datev-csv-batch.yaml', { every: '1h' }, `${mapping}_{batch}.csv`),
      }),
    );
    const outDir = join(dir, `out-${serial}`);
    const log = new CapturedLog();
    const logger = createLogger({ level: 'info', destination: log.stream });
    const [a, b] = (await replicas(2)) as [Ledger, Ledger];
    const target = createTarget('erp', { url: `file://${outDir}` }, { logger });
    const compiled = mappings.get(mapping) as LoadedMapping;
    for (let i = 0; i < 5; i++) {
      // Two full batches of two, and an open one.
      const view = viewAnnotation(parseExportPayload(batchPayload(900 + i, 1, `R-${i}`)));
      await a.addToBatch(
        entry(mapping, i, 'v1', { maxDocuments: 2, entry: JSON.stringify(compiled.renderBatchEntry(view)) }),
      );
    }
    const senders = [a, b].map(
      (ledger, i) =>
        new BatchSender({ ledger, targets: new Map([['erp', target]]), mappings, logger, owner: `replica-${i}` }),
    );
    const sent = await Promise.all(senders.map((sender) => sender.sendDue()));
    expect(sent.reduce((sum, count) => sum + count, 0)).toBe(2);
    const files = readdirSync(outDir).filter((name) => !name.startsWith('.'));
    expect(files).toHaveLength(2);
    const batches = await a.listBatches({ mappingName: mapping });
    expect(batches.map((batch) => batch.status)).toEqual(['open', 'sent', 'sent']);
    for (const batch of batches.filter((each) => each.status === 'sent'))
      expect(readFileSync(join(outDir, batch.remotePath as string), 'latin1').split('\r\n').length).toBe(2 + 3 * 2);
    await target.close();
    await a.close();
    await b.close();
  });
});
