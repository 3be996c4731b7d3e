import { describe, expect, it } from 'vitest';
import type { Ledger } from '../../src/ledger/index.ts';
import { useLedgerKinds } from '../support/ledger-kinds.ts';

let counterNo = 0;
const freshCounter = (): string => `counter-${process.pid}-${++counterNo}`;

describe.each(useLedgerKinds())('$name sequence numbers', ({ open, replicas }) => {
  it('start at the configured value, increase by one, and the same key keeps its number', async () => {
    const ledger = await open();
    const counter = freshCounter();
    expect(await ledger.allocateSequence({ counter, key: 'a', start: 1000 })).toBe(1000);
    expect(await ledger.allocateSequence({ counter, key: 'b', start: 1000 })).toBe(1001);
    expect(await ledger.allocateSequence({ counter, key: 'a', start: 1000 })).toBe(1000);
    expect(await ledger.allocateSequence({ counter, key: 'c', start: 1000 })).toBe(1002);
    // Raising the start moves the counter forward; lowering it never reuses a number.
    expect(await ledger.allocateSequence({ counter, key: 'd', start: 5000 })).toBe(5000);
    expect(await ledger.allocateSequence({ counter, key: 'e', start: 1 })).toBe(5001);
    // Counters are independent.
    expect(await ledger.allocateSequence({ counter: freshCounter(), key: 'a', start: 1 })).toBe(1);
    await ledger.close();
  });

  it('concurrent allocations from several replicas get unique, gap-free numbers; one content gets one number', async () => {
    const ledgers = await replicas(4);
    const counter = freshCounter();
    const keys = Array.from({ length: 60 }, (_, i) => `doc-${i}`);
    // Every key is asked for by two replicas at once (a re-delivery racing the first delivery).
    const results = await Promise.all(
      keys.flatMap((key, i) => [
        (ledgers[i % 4] as Ledger).allocateSequence({ counter, key, start: 1 }).then((value) => ({ key, value })),
        (ledgers[(i + 1) % 4] as Ledger).allocateSequence({ counter, key, start: 1 }).then((value) => ({ key, value })),
      ]),
    );
    const byKey = new Map<string, Set<number>>();
    for (const { key, value } of results) byKey.set(key, (byKey.get(key) ?? new Set()).add(value));
    for (const key of keys) expect(byKey.get(key)?.size, key).toBe(1);
    const numbers = keys.map((key) => [...(byKey.get(key) as Set<number>)][0] as number).sort((a, b) => a - b);
    expect(numbers).toEqual(Array.from({ length: keys.length }, (_, i) => i + 1));
    await Promise.all(ledgers.map((ledger) => ledger.close()));
  }, 60_000);

  it('an export records its number and its document; only the lease holder may record the document', async () => {
    const ledger = await open();
    const key = `doc-${++counterNo}-${process.pid}`;
    const claim = await ledger.claim({
      idempotencyKey: key,
      annotationId: 77,
      requestId: 'r-1',
      mappingName: 'sap-idoc-xml-scan',
      mappingHash: 'h',
      target: 'erp',
      plannedPath: 'IDOC_00000009_A.xml',
      sha256: 'a'.repeat(64),
      bytes: 10,
      owner: 'worker-a',
      leaseMs: 60_000,
      sequenceNumber: 9,
      documentPath: 'IDOC_00000009_A.pdf',
    });
    expect(claim.outcome).toBe('claimed');
    expect(claim.record).toMatchObject({
      sequenceNumber: 9,
      documentPath: 'IDOC_00000009_A.pdf',
      documentUploadedAt: null,
    });
    const document = { path: 'IDOC_00000009_A.pdf', sha256: 'b'.repeat(64), bytes: 300_000 };
    await expect(ledger.recordDocument(claim.record.id, 'worker-b', document)).rejects.toMatchObject({
      code: 'LEDGER_LEASE_LOST',
    });
    await ledger.recordDocument(claim.record.id, 'worker-a', document);
    const stored = await ledger.get(claim.record.id);
    expect(stored).toMatchObject({ documentSha256: 'b'.repeat(64), documentBytes: 300_000, sequenceNumber: 9 });
    expect(typeof stored?.documentUploadedAt).toBe('number');
    expect((await ledger.events(claim.record.id)).map((event) => event.kind)).toEqual(['claimed', 'document_uploaded']);
    await ledger.close();
  });
});
