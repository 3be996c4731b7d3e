import { addEvent, lostLease, type LedgerContext } from './export-operations.ts';
import type { Dialect, Queries } from './driver.ts';
import type { SequenceRequest } from './types.ts';

const CREATE_COUNTER = 'INSERT INTO sequence_counters (name, next_value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING';
const FIND_NUMBER = 'SELECT value FROM sequence_numbers WHERE counter = ? AND allocation_key = ?';
const ADVANCE = 'UPDATE sequence_counters SET next_value = ? WHERE name = ?';
const ADD_NUMBER = 'INSERT INTO sequence_numbers (counter, allocation_key, value, allocated_at) VALUES (?, ?, ?, ?)';

/**
 * Locking the counter row first serializes every allocation of that counter (SQLite: one writer;
 * PostgreSQL: FOR UPDATE). The key is looked up only after the lock, so two workers allocating for
 * the same content both see the first one's number; a rolled-back transaction also rolls back its
 * increment, so a number is only ever lost when its export never completes.
 */
export function allocateSequence({ driver, now }: LedgerContext, request: SequenceRequest): Promise<number> {
  return driver.transaction((tx) => allocateWithin(tx, driver.dialect, request, now()));
}

/** `allocateSequence` inside a transaction that is already open (a batch takes its number as it opens). */
export async function allocateWithin(
  tx: Queries,
  dialect: Dialect,
  request: SequenceRequest,
  at: number,
): Promise<number> {
  await tx.run(CREATE_COUNTER, [request.counter, request.start]);
  const counter = await tx.get<{ next_value: number | string }>(
    `SELECT next_value FROM sequence_counters WHERE name = ?${dialect.forUpdate}`,
    [request.counter],
  );
  if (!counter) throw new Error(`sequence counter "${request.counter}" neither created nor found`);
  const existing = await tx.get<{ value: number | string }>(FIND_NUMBER, [request.counter, request.key]);
  if (existing) return Number(existing.value);
  const value = Math.max(Number(counter.next_value), request.start);
  await tx.run(ADVANCE, [value + 1, request.counter]);
  await tx.run(ADD_NUMBER, [request.counter, request.key, value, at]);
  return value;
}

const RECORD_DOCUMENT = `UPDATE exports SET document_path = ?, document_sha256 = ?, document_bytes = ?, document_uploaded_at = ?, updated_at = ?
  WHERE id = ? AND lease_owner = ? AND status = 'uploading'`;

export function recordDocument(
  { driver, now: clock }: LedgerContext,
  id: number,
  owner: string,
  document: { path: string; sha256: string; bytes: number },
): Promise<void> {
  return driver.transaction(async (tx) => {
    const now = clock();
    const changed = await tx.run(RECORD_DOCUMENT, [
      document.path,
      document.sha256,
      document.bytes,
      now,
      now,
      id,
      owner,
    ]);
    if (changed !== 1) throw lostLease(id);
    await addEvent(tx, id, now, 'document_uploaded', { path: document.path, bytes: document.bytes });
  });
}
