import { randomUUID } from 'node:crypto';
import { BridgeError } from '../errors.ts';
import { nameParts } from './ack-rules.ts';
import type {
  BatchAddResult,
  BatchEntryInput,
  BatchEntryRecord,
  BatchFilter,
  BatchRecord,
  BatchStatus,
} from './batch-types.ts';
import type { Queries } from './driver.ts';
import type { LedgerContext } from './export-operations.ts';
import { allocateWithin } from './file-operations.ts';
import { rowToRecord, type ExportRow } from './rows.ts';
import type { ExportRecord, StoredReply } from './types.ts';

interface BatchRow {
  id: number;
  mapping_name: string;
  target: string;
  number: number | string;
  status: BatchStatus;
  opened_at: number | string;
  closes_at: number | string;
  closed_at: number | string | null;
  lease_owner: string | null;
  lease_expires_at: number | string | null;
  attempts: number;
  next_attempt_at: number | string | null;
  file_name: string | null;
  sha256: string | null;
  bytes: number | string | null;
  remote_path: string | null;
  sent_at: number | string | null;
  error: string | null;
  documents?: number | string;
}

interface EntryRow {
  id: number;
  batch_id: number | string;
  annotation_id: number | string;
  idempotency_key: string;
  mapping_hash: string;
  entry: string;
  document_ref: string | null;
  rossum_base_url: string | null;
  request_id: string;
  created_at: number | string;
  updated_at: number | string;
  replaced: number | boolean;
  export_id: number | string | null;
}

const orNull = (value: number | string | null | undefined): number | null =>
  value === null || value === undefined ? null : Number(value);

function toBatch(row: BatchRow): BatchRecord {
  return {
    id: Number(row.id),
    mappingName: row.mapping_name,
    target: row.target,
    number: Number(row.number),
    status: row.status,
    openedAt: Number(row.opened_at),
    closesAt: Number(row.closes_at),
    closedAt: orNull(row.closed_at),
    leaseOwner: row.lease_owner,
    leaseExpiresAt: orNull(row.lease_expires_at),
    attempts: Number(row.attempts),
    nextAttemptAt: orNull(row.next_attempt_at),
    fileName: row.file_name,
    sha256: row.sha256,
    bytes: orNull(row.bytes),
    remotePath: row.remote_path,
    sentAt: orNull(row.sent_at),
    error: row.error,
    documents: Number(row.documents ?? 0),
  };
}

function toEntry(row: EntryRow): BatchEntryRecord {
  return {
    id: Number(row.id),
    batchId: Number(row.batch_id),
    annotationId: Number(row.annotation_id),
    idempotencyKey: row.idempotency_key,
    mappingHash: row.mapping_hash,
    entry: row.entry,
    documentRef: row.document_ref,
    rossumBaseUrl: row.rossum_base_url,
    requestId: row.request_id,
    createdAt: Number(row.created_at),
    updatedAt: Number(row.updated_at),
    replaced: Boolean(Number(row.replaced)),
    exportId: orNull(row.export_id),
  };
}

const SELECT_BATCH =
  'SELECT b.*, (SELECT count(*) FROM batch_entries be WHERE be.batch_id = b.id) AS documents FROM batches b';

/** Two webhooks opened the mapping's next batch at once; the loser's transaction is rolled back and run again. */
class OpenedConcurrently extends Error {}

async function batchIn(tx: Queries, id: number): Promise<BatchRecord> {
  const row = await tx.get<BatchRow>(`${SELECT_BATCH} WHERE b.id = ?`, [id]);
  if (!row) throw new Error(`batch ${id} not found`);
  return toBatch(row);
}

const FIND_SENT = 'SELECT id FROM exports WHERE idempotency_key = ?';
const FIND_WAITING = `SELECT be.batch_id FROM batch_entries be JOIN batches b ON b.id = be.batch_id
  WHERE be.idempotency_key = ? AND b.status <> 'sent'`;
const CLOSE = "UPDATE batches SET status = 'closed', closed_at = ? WHERE id = ? AND status = 'open'";
const OPEN = `INSERT INTO batches (mapping_name, target, number, status, opened_at, closes_at) VALUES (?, ?, ?, 'open', ?, ?)
  ON CONFLICT (mapping_name, target) WHERE status = 'open' DO NOTHING RETURNING *`;
const REPLACE_ENTRY = `UPDATE batch_entries SET idempotency_key = ?, mapping_hash = ?, entry = ?, document_ref = ?, rossum_base_url = ?,
  request_id = ?, updated_at = ?, replaced = 1 WHERE id = ?`;
const ADD_ENTRY = `INSERT INTO batch_entries (batch_id, annotation_id, idempotency_key, mapping_hash, entry, document_ref, rossum_base_url,
  request_id, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`;

/**
 * Records a document's entry in its mapping's open batch, in one transaction: the entry is durable
 * before the webhook answers. An overdue open batch is closed first (its time has come), a full one
 * is closed by the entry that fills it.
 */
export async function addToBatch(context: LedgerContext, input: BatchEntryInput): Promise<BatchAddResult> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await context.driver.transaction((tx) => addWithin(context, tx, input));
    } catch (error) {
      if (!(error instanceof OpenedConcurrently) || attempt >= 5) throw error;
    }
  }
}

async function addWithin(
  { driver, now: clock }: LedgerContext,
  tx: Queries,
  input: BatchEntryInput,
): Promise<BatchAddResult> {
  const now = clock();
  const sent = await tx.get<{ id: number }>(FIND_SENT, [input.idempotencyKey]);
  if (sent) return { outcome: 'sent', exportId: Number(sent.id) };
  const waiting = await tx.get<{ batch_id: number }>(FIND_WAITING, [input.idempotencyKey]);
  if (waiting) return { outcome: 'waiting', batch: await batchIn(tx, Number(waiting.batch_id)) };

  let open = await tx.get<BatchRow>(
    `SELECT * FROM batches WHERE mapping_name = ? AND target = ? AND status = 'open'${driver.dialect.forUpdate}`,
    [input.mappingName, input.target],
  );
  if (open && Number(open.closes_at) <= now) {
    await tx.run(CLOSE, [Number(open.closes_at), open.id]);
    open = undefined;
  }
  if (!open) {
    const number = await allocateWithin(
      tx,
      driver.dialect,
      { counter: input.counter, key: `batch:${input.mappingName}:${input.target}:${randomUUID()}`, start: input.start },
      now,
    );
    open = await tx.get<BatchRow>(OPEN, [input.mappingName, input.target, number, now, input.closesAt(now)]);
    if (!open) throw new OpenedConcurrently();
  }
  const batchId = Number(open.id);
  const existing = await tx.get<{ id: number }>(
    'SELECT id FROM batch_entries WHERE batch_id = ? AND annotation_id = ?',
    [batchId, input.annotationId],
  );
  const values = [input.idempotencyKey, input.mappingHash, input.entry, input.documentRef, input.rossumBaseUrl];
  if (existing) await tx.run(REPLACE_ENTRY, [...values, input.requestId, now, existing.id]);
  else await tx.run(ADD_ENTRY, [batchId, input.annotationId, ...values, input.requestId, now, now]);
  let batch = await batchIn(tx, batchId);
  const full = input.maxDocuments !== undefined && batch.documents >= input.maxDocuments;
  if (full) {
    await tx.run(CLOSE, [now, batchId]);
    batch = await batchIn(tx, batchId);
  }
  return { outcome: 'added', batch, replaced: existing !== undefined, closed: full };
}

/**
 * Leases the batch that is due longest (its time passed, full, or its sender's lease ran out), so one
 * process of several sends it. Its closing time is fixed here at the latest: the file's `meta.now`.
 */
export function claimDueBatch(
  { driver, now: clock }: LedgerContext,
  owner: string,
  leaseMs: number,
): Promise<BatchRecord | undefined> {
  return driver.transaction(async (tx) => {
    const now = clock();
    const due = await tx.get<{ id: number }>(
      `SELECT id FROM batches WHERE ((status = 'open' AND closes_at <= ?) OR status = 'closed' OR (status = 'sending' AND lease_expires_at < ?))
        AND (next_attempt_at IS NULL OR next_attempt_at <= ?) ORDER BY closes_at, id LIMIT 1${driver.dialect.skipLocked}`,
      [now, now, now],
    );
    if (!due) return undefined;
    await tx.run(
      `UPDATE batches SET status = 'sending', closed_at = coalesce(closed_at, closes_at), lease_owner = ?, lease_expires_at = ?,
        attempts = attempts + 1 WHERE id = ?`,
      [owner, now + leaseMs, due.id],
    );
    return batchIn(tx, Number(due.id));
  });
}

/** A sender that died: its batch goes back to the queue (compare-and-set on the dead owner). */
export async function releaseBatch({ driver }: LedgerContext, id: number, deadOwner: string): Promise<boolean> {
  const changed = await driver.run(
    "UPDATE batches SET status = 'closed', lease_owner = NULL, lease_expires_at = NULL WHERE id = ? AND lease_owner = ? AND status = 'sending'",
    [id, deadOwner],
  );
  return changed === 1;
}

export async function planBatchFile(
  { driver }: LedgerContext,
  id: number,
  owner: string,
  file: { fileName: string; sha256: string; bytes: number },
): Promise<void> {
  const changed = await driver.run(
    "UPDATE batches SET file_name = ?, sha256 = ?, bytes = ? WHERE id = ? AND lease_owner = ? AND status = 'sending'",
    [file.fileName, file.sha256, file.bytes, id, owner],
  );
  if (changed !== 1) throw lostBatch(id);
}

export async function failBatch(
  { driver }: LedgerContext,
  id: number,
  owner: string,
  failure: { error: string; retryAt: number },
): Promise<void> {
  await driver.run(
    `UPDATE batches SET status = 'closed', lease_owner = NULL, lease_expires_at = NULL, error = ?, next_attempt_at = ?
      WHERE id = ? AND lease_owner = ? AND status = 'sending'`,
    [failure.error, failure.retryAt, id, owner],
  );
}

const BIG = 'CAST(? AS BIGINT)';
const TEXT = 'CAST(? AS TEXT)';
const EXPORT_ENTRIES = `INSERT INTO exports (idempotency_key, annotation_id, mapping_name, mapping_hash, target, planned_path, remote_path,
    sha256, bytes, status, reply, attempts, created_at, updated_at, uploaded_at, remote_name, remote_stem, document_ref, rossum_base_url,
    sequence_number, batch_id)
  SELECT be.idempotency_key, be.annotation_id, b.mapping_name, be.mapping_hash, b.target, b.file_name, ${TEXT}, b.sha256, b.bytes,
    'uploaded', ${TEXT}, 1, be.created_at, ${BIG}, ${BIG}, ${TEXT}, ${TEXT}, be.document_ref, be.rossum_base_url, b.number, b.id
  FROM batch_entries be JOIN batches b ON b.id = be.batch_id WHERE be.batch_id = ${BIG} ORDER BY be.id
  ON CONFLICT (idempotency_key) DO NOTHING`;

/** Where the batch's file landed and the answer each of its documents replays. */
type BatchSent = { remotePath: string; reply: StoredReply };

/**
 * The batch's file is on the server: the batch is sent, and each of its documents becomes an uploaded
 * export of that file (one transaction), which the ack loop then follows like any other export.
 */
export function completeBatch(context: LedgerContext, id: number, owner: string, result: BatchSent): Promise<void> {
  return context.driver.transaction(async (tx) => {
    const now = context.now();
    const changed = await tx.run(
      `UPDATE batches SET status = 'sent', remote_path = ?, sent_at = ?, lease_owner = NULL, lease_expires_at = NULL, error = NULL
        WHERE id = ? AND lease_owner = ? AND status = 'sending' AND file_name IS NOT NULL`,
      [result.remotePath, now, id, owner],
    );
    if (changed !== 1) throw lostBatch(id);
    const { name, stem } = nameParts(result.remotePath);
    await tx.run(EXPORT_ENTRIES, [result.remotePath, JSON.stringify(result.reply), now, now, name, stem, id]);
    await tx.run(
      `UPDATE batch_entries SET export_id = (SELECT e.id FROM exports e WHERE e.idempotency_key = batch_entries.idempotency_key)
        WHERE batch_id = ?`,
      [id],
    );
    await tx.run(
      `INSERT INTO export_requests (export_id, request_id, received_at)
        SELECT export_id, request_id, updated_at FROM batch_entries WHERE batch_id = ${BIG} AND export_id IS NOT NULL
        ON CONFLICT DO NOTHING`,
      [id],
    );
    await tx.run(
      `INSERT INTO export_events (export_id, at, kind, detail)
        SELECT e.id, ${BIG}, 'uploaded', ${TEXT} FROM exports e WHERE e.batch_id = ${BIG}`,
      [now, JSON.stringify({ remotePath: result.remotePath, batch: id }), id],
    );
  });
}

export async function getBatch({ driver }: LedgerContext, id: number): Promise<BatchRecord | undefined> {
  const row = await driver.get<BatchRow>(`${SELECT_BATCH} WHERE b.id = ?`, [id]);
  return row ? toBatch(row) : undefined;
}

export async function listBatches({ driver }: LedgerContext, filter: BatchFilter): Promise<BatchRecord[]> {
  const where: string[] = [];
  const params: unknown[] = [];
  if (filter.status && filter.status.length > 0) where.push(driver.dialect.inList('b.status', filter.status, params));
  if (filter.mappingName !== undefined) {
    where.push('b.mapping_name = ?');
    params.push(filter.mappingName);
  }
  if (filter.annotationId !== undefined) {
    where.push('b.id IN (SELECT be.batch_id FROM batch_entries be WHERE be.annotation_id = ?)');
    params.push(filter.annotationId);
  }
  params.push(filter.limit ?? 100);
  const rows = await driver.all<BatchRow>(
    `${SELECT_BATCH} ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY b.id DESC LIMIT ?`,
    params,
  );
  return rows.map(toBatch);
}

export async function batchEntries({ driver }: LedgerContext, batchId: number): Promise<BatchEntryRecord[]> {
  const rows = await driver.all<EntryRow>('SELECT * FROM batch_entries WHERE batch_id = ? ORDER BY id', [batchId]);
  return rows.map(toEntry);
}

/** Every uploaded export sent in the same batch file as this one (empty when it was not sent in a batch). */
export async function batchMates({ driver, selectExport }: LedgerContext, exportId: number): Promise<ExportRecord[]> {
  const rows = await driver.all<ExportRow>(
    `${selectExport} WHERE e.batch_id = (SELECT x.batch_id FROM exports x WHERE x.id = ?) AND e.status = 'uploaded' ORDER BY e.id`,
    [exportId],
  );
  return rows.map((row) => rowToRecord(row));
}

function lostBatch(id: number): BridgeError {
  return new BridgeError('LEDGER_LEASE_LOST', `Batch ${id} was taken over by another sender before this one finished`, {
    permanent: false,
  });
}
