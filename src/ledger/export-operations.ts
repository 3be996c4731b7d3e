import { createHash } from 'node:crypto';
import { BridgeError } from '../errors.ts';
import { nameParts } from './ack-rules.ts';
import { existingClaimOutcome } from './claim-rules.ts';
import type { Driver, Queries } from './driver.ts';
import { rowToRecord, type ExportRow } from './rows.ts';
import type {
  ClaimInput,
  ClaimResult,
  ExportFilter,
  ExportRecord,
  FailureInput,
  LedgerEvent,
  StoredReply,
} from './types.ts';

/** What every operation works with: the database and the clock. */
export interface LedgerContext {
  readonly driver: Driver;
  readonly now: () => number;
  /** `SELECT e.*, request_ids FROM exports e`, in the driver's dialect. */
  readonly selectExport: string;
}

export function ledgerContext(driver: Driver, now: () => number = Date.now): LedgerContext {
  return { driver, now, selectExport: `SELECT e.*, ${driver.dialect.requestIdsOf} AS request_ids FROM exports e` };
}

export async function addEvent(
  tx: Queries,
  exportId: number,
  at: number,
  kind: string,
  detail: Record<string, unknown>,
): Promise<void> {
  await tx.run('INSERT INTO export_events (export_id, at, kind, detail) VALUES (?, ?, ?, ?)', [
    exportId,
    at,
    kind,
    JSON.stringify(detail),
  ]);
}

const INSERT_CLAIM = `INSERT INTO exports (idempotency_key, annotation_id, mapping_name, mapping_hash, target, planned_path, sha256, bytes, status,
    attempts, lease_owner, lease_expires_at, created_at, updated_at, document_ref, rossum_base_url, sequence_number, document_path)
  VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'uploading', 1, ?, ?, ?, ?, ?, ?, ?, ?)
  ON CONFLICT (idempotency_key) DO NOTHING RETURNING *`;
const ADD_REQUEST =
  'INSERT INTO export_requests (export_id, request_id, received_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING';
const TAKE_OVER = `UPDATE exports SET status = 'uploading', lease_owner = ?, lease_expires_at = ?, attempts = attempts + 1, updated_at = ? WHERE id = ? RETURNING *`;

export function claim({ driver, now: clock, selectExport }: LedgerContext, input: ClaimInput): Promise<ClaimResult> {
  return driver.transaction(async (tx): Promise<ClaimResult> => {
    const now = clock();
    const inserted = await tx.get<ExportRow>(INSERT_CLAIM, [
      input.idempotencyKey,
      input.annotationId,
      input.mappingName,
      input.mappingHash,
      input.target,
      input.plannedPath,
      input.sha256,
      input.bytes,
      input.owner,
      now + input.leaseMs,
      input.receivedAt ?? now,
      now,
      input.documentRef ?? null,
      input.rossumBaseUrl ?? null,
      input.sequenceNumber ?? null,
      input.documentPath ?? null,
    ]);
    if (inserted) {
      await tx.run(ADD_REQUEST, [inserted.id, input.requestId, now]);
      await addEvent(tx, inserted.id, now, 'claimed', {
        requestId: input.requestId,
        plannedPath: input.plannedPath,
        mappingHash: input.mappingHash,
      });
      return { outcome: 'claimed', record: rowToRecord(inserted, [input.requestId]), takeover: false };
    }
    // Lock the row: concurrent claims of the same key queue here and see each other's decision.
    const row = await tx.get<ExportRow>(`${selectExport} WHERE e.idempotency_key = ?${driver.dialect.forUpdate}`, [
      input.idempotencyKey,
    ]);
    if (!row) throw new Error(`export "${input.idempotencyKey}" neither inserted nor found`);
    const existing = rowToRecord(row);
    await tx.run(ADD_REQUEST, [existing.id, input.requestId, now]);
    if (!existing.requestIds.includes(input.requestId)) existing.requestIds.push(input.requestId);
    const outcome = existingClaimOutcome(existing, input.owner, now);
    if (outcome === 'in_progress') {
      await addEvent(tx, existing.id, now, 'duplicate_in_progress', { requestId: input.requestId });
      return { outcome: 'in_progress', record: existing };
    }
    if (outcome === 'takeover') {
      const taken = (await tx.get<ExportRow>(TAKE_OVER, [
        input.owner,
        now + input.leaseMs,
        now,
        existing.id,
      ])) as ExportRow;
      await addEvent(tx, existing.id, now, 'takeover', {
        requestId: input.requestId,
        previousStatus: existing.status,
        previousOwner: existing.leaseOwner,
      });
      return { outcome: 'claimed', record: rowToRecord(taken, existing.requestIds), takeover: true };
    }
    await addEvent(tx, existing.id, now, 'duplicate_answered', { requestId: input.requestId, status: existing.status });
    return { outcome: 'done', record: existing };
  });
}

export function recordDuplicate(
  { driver, now: clock }: LedgerContext,
  idempotencyKey: string,
  requestId: string,
): Promise<void> {
  return driver.transaction(async (tx) => {
    const row = await tx.get<{ id: number; status: string }>(
      'SELECT id, status FROM exports WHERE idempotency_key = ?',
      [idempotencyKey],
    );
    if (!row) return;
    const now = clock();
    await tx.run(ADD_REQUEST, [row.id, requestId, now]);
    await addEvent(tx, row.id, now, 'duplicate_answered', { requestId, status: row.status });
  });
}

const COMPLETE = `UPDATE exports SET status = 'uploaded', remote_path = ?, reply = ?, error_code = NULL, error = NULL, lease_owner = NULL,
    lease_expires_at = NULL, updated_at = ?, uploaded_at = ?, remote_name = ?, remote_stem = ? WHERE id = ? AND lease_owner = ?`;

export function complete(
  { driver, now: clock }: LedgerContext,
  id: number,
  owner: string,
  result: { remotePath: string; reply: StoredReply },
): Promise<void> {
  return driver.transaction(async (tx) => {
    const now = clock();
    const { name, stem } = nameParts(result.remotePath);
    const changed = await tx.run(COMPLETE, [
      result.remotePath,
      JSON.stringify(result.reply),
      now,
      now,
      name,
      stem,
      id,
      owner,
    ]);
    if (changed !== 1) throw lostLease(id);
    await tx.run(FREE_PAYLOAD, [id]);
    await addEvent(tx, id, now, 'uploaded', { remotePath: result.remotePath });
  });
}

const FREE_PAYLOAD = 'DELETE FROM export_payloads WHERE export_id = ?';
/** Kept only when they are the bytes whose sha256 the export recorded: a retry can then never upload others. */
const KEEP_PAYLOAD = `INSERT INTO export_payloads (export_id, sha256, content, kept_at) SELECT id, sha256, ?, ? FROM exports WHERE id = ? AND sha256 = ?
  ON CONFLICT (export_id) DO UPDATE SET content = excluded.content, sha256 = excluded.sha256, kept_at = excluded.kept_at`;

const FAIL = `UPDATE exports SET status = ?, error_code = ?, error = ?, reply = ?, lease_owner = NULL, lease_expires_at = NULL, updated_at = ?
  WHERE id = ? AND lease_owner = ?`;

export function fail(
  { driver, now: clock }: LedgerContext,
  id: number,
  owner: string,
  failure: FailureInput,
): Promise<void> {
  return driver.transaction(async (tx) => {
    const now = clock();
    const reply = failure.permanent ? JSON.stringify(failure.reply) : null;
    const changed = await tx.run(FAIL, [
      failure.permanent ? 'failed' : 'retryable',
      failure.code,
      failure.message,
      reply,
      now,
      id,
      owner,
    ]);
    if (changed !== 1) throw lostLease(id);
    let kept = false;
    if (failure.permanent) await tx.run(FREE_PAYLOAD, [id]);
    else if (failure.keep) {
      const sha256 = createHash('sha256').update(failure.keep).digest('hex');
      kept = (await tx.run(KEEP_PAYLOAD, [Buffer.from(failure.keep), now, id, sha256])) === 1;
    }
    await addEvent(tx, id, now, failure.permanent ? 'failed' : 'transient_failure', {
      code: failure.code,
      message: failure.message,
      ...(kept ? { keptForRetry: true } : {}),
    });
  });
}

export async function getExport(
  { driver, selectExport }: LedgerContext,
  id: number,
): Promise<ExportRecord | undefined> {
  const row = await driver.get<ExportRow>(`${selectExport} WHERE e.id = ?`, [id]);
  return row ? rowToRecord(row) : undefined;
}

export async function listExports(
  { driver, selectExport }: LedgerContext,
  filter: ExportFilter,
): Promise<ExportRecord[]> {
  const where: string[] = [];
  const params: unknown[] = [];
  const { inList } = driver.dialect;
  if (filter.status && filter.status.length > 0) where.push(inList('e.status', filter.status, params));
  if (filter.state && filter.state.length > 0)
    where.push(inList('coalesce(e.ack_state, e.status)', filter.state, params));
  const equal = (condition: string, value: unknown): void => {
    if (value === undefined) return;
    where.push(condition);
    params.push(value);
  };
  equal('e.mapping_name = ?', filter.mappingName);
  equal('e.target = ?', filter.target);
  equal('e.annotation_id = ?', filter.annotationId);
  equal('e.created_at >= ?', filter.createdAfter);
  equal('e.created_at < ?', filter.createdBefore);
  params.push(filter.limit ?? 1000);
  const rows = await driver.all<ExportRow>(
    `${selectExport} ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY e.id LIMIT ?`,
    params,
  );
  return rows.map((row) => rowToRecord(row));
}

export async function listEvents({ driver }: LedgerContext, exportId: number): Promise<LedgerEvent[]> {
  const rows = await driver.all<{ id: number; export_id: number; at: number; kind: string; detail: string }>(
    'SELECT id, export_id, at, kind, detail FROM export_events WHERE export_id = ? ORDER BY id',
    [exportId],
  );
  return rows.map((row) => ({
    id: row.id,
    exportId: row.export_id,
    at: row.at,
    kind: row.kind,
    detail: JSON.parse(row.detail) as Record<string, unknown>,
  }));
}

export function recordEvent(
  { driver, now }: LedgerContext,
  exportId: number,
  kind: string,
  detail: Record<string, unknown>,
): Promise<void> {
  return driver.transaction((tx) => addEvent(tx, exportId, now(), kind, detail));
}

export function lostLease(id: number): BridgeError {
  return new BridgeError(
    'LEDGER_LEASE_LOST',
    `Export ${id} was taken over by another worker before this one finished`,
    { permanent: false },
  );
}
