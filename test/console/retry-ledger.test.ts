import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { consoleLedgerOf, type Ledger } from '../../src/ledger/index.ts';
import { useLedgerKinds } from '../support/ledger-kinds.ts';

const sha256 = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex');
const REPLY = { statusCode: 503, body: { messages: [] } };

/** Claims a new export of these bytes and fails it transiently, offering `keep` to the ledger. */
async function failedExport(ledger: Ledger, key: string, rendered: Buffer, keep: Buffer): Promise<number> {
  const claim = await ledger.claim({
    idempotencyKey: key,
    annotationId: 4711,
    requestId: `r-${key}`,
    mappingName: 'generic-xml',
    mappingHash: 'h',
    target: 'erp',
    plannedPath: `${key}.xml`,
    sha256: sha256(rendered),
    bytes: rendered.length,
    owner: 'worker',
    leaseMs: 60_000,
  });
  await ledger.fail(claim.record.id, 'worker', {
    code: 'CONNECT_FAILED',
    message: 'refused',
    permanent: false,
    reply: REPLY,
    keep,
  });
  return claim.record.id;
}

function retryBehaviour(open: () => Promise<Ledger>): void {
  let ledger: Ledger;
  beforeAll(async () => {
    ledger = await open();
  }, 60_000);
  afterAll(async () => {
    await ledger?.close();
  });

  it('keeps only the bytes that hash to the recorded sha256, and frees them once uploaded or failed for good', async () => {
    const view = consoleLedgerOf(ledger);
    const rendered = Buffer.from('<invoice>4711 Müller</invoice>\n');
    const kept = await failedExport(ledger, 'keep-match', rendered, rendered);
    expect(await view.keptPayload(kept)).toMatchObject({ sha256: sha256(rendered), content: rendered });
    expect((await ledger.events(kept)).at(-1)).toMatchObject({
      kind: 'transient_failure',
      detail: { keptForRetry: true },
    });

    // Bytes other than the recorded ones are never kept: a retry could not upload what the ledger did not record.
    const other = await failedExport(ledger, 'keep-other', rendered, Buffer.from('<invoice>other</invoice>'));
    expect(await view.keptPayload(other)).toBeUndefined();
    await expect(view.claimForRetry(other, { owner: 'console', leaseMs: 60_000, actor: 'olga' })).rejects.toMatchObject(
      { reason: 'conflict', message: expect.stringContaining('no kept file') },
    );

    const record = await view.claimForRetry(kept, { owner: 'console', leaseMs: 60_000, actor: 'olga' });
    expect(record).toMatchObject({ status: 'uploading', leaseOwner: 'console', attempts: 2 });
    expect((await ledger.events(kept)).at(-1)).toMatchObject({ kind: 'console_retry', detail: { by: 'olga' } });
    expect(await view.actionsOfExport(kept)).toEqual([
      expect.objectContaining({ actor: 'olga', action: 'retry_upload', exportId: kept }),
    ]);
    // Taken: a second retry (or another replica's) is refused, and Rossum's delivery sees it in progress.
    await expect(
      view.claimForRetry(kept, { owner: 'console-2', leaseMs: 60_000, actor: 'olga' }),
    ).rejects.toMatchObject({ reason: 'conflict', message: expect.stringContaining('is uploading') });
    await ledger.complete(kept, 'console', { remotePath: 'keep-match.xml', reply: { statusCode: 200, body: {} } });
    expect(await view.keptPayload(kept)).toBeUndefined();

    const permanent = await failedExport(ledger, 'keep-then-fail', rendered, rendered);
    expect(await view.keptPayload(permanent)).toBeDefined();
    await ledger.claim({
      idempotencyKey: 'keep-then-fail',
      annotationId: 4711,
      requestId: 'r-again',
      mappingName: 'generic-xml',
      mappingHash: 'h',
      target: 'erp',
      plannedPath: 'keep-then-fail.xml',
      sha256: sha256(rendered),
      bytes: rendered.length,
      owner: 'worker',
      leaseMs: 60_000,
    });
    await ledger.fail(permanent, 'worker', { code: 'MAPPING', message: 'bad', permanent: true, reply: REPLY });
    expect(await view.keptPayload(permanent)).toBeUndefined();
    await expect(
      view.claimForRetry(permanent, { owner: 'console', leaseMs: 60_000, actor: 'olga' }),
    ).rejects.toMatchObject({ reason: 'conflict', message: expect.stringContaining('is failed') });
    await expect(
      view.claimForRetry(999_999, { owner: 'console', leaseMs: 60_000, actor: 'olga' }),
    ).rejects.toMatchObject({ reason: 'not_found' });
  });

  it('keeps the first 64 kB of an ack file with its size and encoding', async () => {
    const view = consoleLedgerOf(ledger);
    const small = await ledger.recordAck({
      source: 'erp',
      fileName: 'small.err',
      sha256: 'b'.repeat(64),
      convention: 'companion',
      disposition: 'unmatched',
      entries: [],
      content: Buffer.from([0x4d, 0xfc, 0x6c, 0x6c, 0x65, 0x72]),
      contentEncoding: 'windows-1252',
    });
    expect(await view.ackFileContent(small.ackFileId)).toEqual({
      content: Buffer.from([0x4d, 0xfc, 0x6c, 0x6c, 0x65, 0x72]),
      totalBytes: 6,
      truncated: false,
      encoding: 'windows-1252',
    });
    const large = Buffer.alloc(70_000, 'x');
    const big = await ledger.recordAck({
      source: 'erp',
      fileName: 'big.csv',
      sha256: 'c'.repeat(64),
      convention: 'csv',
      disposition: 'unmatched',
      entries: [],
      content: large,
      contentEncoding: 'utf-8',
    });
    const stored = await view.ackFileContent(big.ackFileId);
    expect(stored).toMatchObject({ totalBytes: 70_000, truncated: true, encoding: 'utf-8' });
    expect(stored?.content.length).toBe(64 * 1024);
    const unread = await ledger.recordAck({
      source: 'erp',
      fileName: 'bare.ok',
      sha256: 'd'.repeat(64),
      convention: 'companion',
      disposition: 'unmatched',
      entries: [],
    });
    expect(await view.ackFileContent(unread.ackFileId)).toBeUndefined();
  });
}

describe.each(useLedgerKinds())('console retry and ack content, $name ledger', ({ open }) => {
  retryBehaviour(open);
});
