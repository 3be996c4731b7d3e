import type { Queries } from './driver.ts';
import { addEvent, type LedgerContext } from './export-operations.ts';
import type {
  AckDelivery,
  AckFileContent,
  KeptPayload,
  AckOutcomeKind,
  AckState,
  ExportRecord,
  ExportState,
  ExportStatus,
  HoldState,
} from './types.ts';

/**
 * What the operator console reads and the few things it may do. Every list is newest first and paged
 * by keyset (created_at, id) over an index that matches the filter (migration 5), so a page costs the
 * same on the millionth row as on the first.
 */
export interface ConsoleExportFilter {
  /** `coalesce(ack_state, status)`: what the export shows. */
  state?: ExportState;
  mappingName?: string;
  target?: string;
  /** Epoch ms, inclusive. */
  createdFrom?: number;
  /** Epoch ms, exclusive. */
  createdTo?: number;
  /** Exact document number, remote file name, or annotation id. */
  search?: string;
}

export interface ConsoleCursor {
  createdAt: number;
  id: number;
}

export interface ConsoleExportRow {
  id: number;
  annotationId: number;
  mappingName: string;
  target: string;
  documentRef: string | null;
  fileName: string | null;
  plannedPath: string;
  state: ExportState;
  status: ExportStatus;
  ackState: AckState | null;
  holdState: HoldState | null;
  errorCode: string | null;
  createdAt: number;
  uploadedAt: number | null;
  ackAt: number | null;
  /** Delivery state of the newest thing Rossum must hear about this export, if any. */
  rossumDelivery: AckDelivery | null;
}

export interface ConsoleExportPage {
  rows: ConsoleExportRow[];
  /** Pass back to get the next (older) page; null on the last one. */
  next: ConsoleCursor | null;
}

export interface ConsoleAckFile {
  id: number;
  source: string;
  fileName: string;
  sha256: string;
  convention: string;
  disposition: 'matched' | 'unmatched' | 'invalid';
  error: string | null;
  receivedAt: number;
  archivedTo: string | null;
  handledAt: number | null;
  handledBy: string | null;
}

export interface ConsoleAction {
  id: number;
  at: number;
  actor: string;
  action: string;
  exportId: number | null;
  ackFileId: number | null;
  detail: Record<string, unknown>;
}

export interface ConsoleOverview {
  /** Epoch ms of each hour's start → exports created in it. */
  exportsPerHour: Array<{ hour: number; count: number }>;
  failuresByReason: Array<{ reason: string; count: number }>;
  /** Upload → ack, per hour of the ack. */
  ackLatencyPerHour: Array<{ hour: number; averageMs: number; maxMs: number; count: number }>;
  pendingDeliveries: Array<{ kind: AckOutcomeKind; count: number; oldestAt: number }>;
  failedDeliveries: number;
  openAckFiles: number;
}

/** The console's view of the ledger: reads, plus the three recorded operator actions. */
export interface ConsoleLedger {
  listExports(filter: ConsoleExportFilter, after: ConsoleCursor | null, limit: number): Promise<ConsoleExportPage>;
  /** The values the filters offer. */
  filterChoices(): Promise<{ mappings: string[]; targets: string[] }>;
  ackFilesOfExport(exportId: number): Promise<ConsoleAckFile[]>;
  openAckFiles(limit: number): Promise<ConsoleAckFile[]>;
  ackFile(id: number): Promise<ConsoleAckFile | undefined>;
  actionsOfExport(exportId: number): Promise<ConsoleAction[]>;
  overview(since: number): Promise<ConsoleOverview>;
  /** Grows whenever anything happens to any export: the live view polls it. */
  changeMark(): Promise<number>;
  /** Queues a pending or failed outcome for delivery now (the acks process sends it). */
  redeliverOutcome(outcomeId: number, actor: string): Promise<void>;
  markAckFileHandled(ackFileId: number, actor: string, note: string): Promise<void>;
  /** The rendered bytes kept after a transient upload failure (none once uploaded or failed for good). */
  keptPayload(exportId: number): Promise<KeptPayload | undefined>;
  /** Takes a retryable export's lease for an operator's retry and records who asked; refused when not retryable. */
  claimForRetry(exportId: number, input: { owner: string; leaseMs: number; actor: string }): Promise<ExportRecord>;
  /** The ack file's content as read (undefined when it was not read or predates migration 10). */
  ackFileContent(ackFileId: number): Promise<AckFileContent | undefined>;
}

const HOUR_MS = 3_600_000;

interface ExportListRow {
  id: number;
  annotation_id: number;
  mapping_name: string;
  target: string;
  document_ref: string | null;
  remote_name: string | null;
  planned_path: string;
  status: ExportStatus;
  ack_state: AckState | null;
  hold_state: HoldState | null;
  error_code: string | null;
  created_at: number;
  uploaded_at: number | null;
  ack_at: number | null;
  rossum_delivery: AckDelivery | null;
}

const LIST_COLUMNS = `e.id, e.annotation_id, e.mapping_name, e.target, e.document_ref, e.remote_name, e.planned_path, e.status, e.ack_state, e.hold_state,
  e.error_code, e.created_at, e.uploaded_at, e.ack_at,
  (SELECT o.delivery FROM ack_outcomes o WHERE o.export_id = e.id ORDER BY o.id DESC LIMIT 1) AS rossum_delivery`;

/** The SQL and parameters of one page; exported so a test can EXPLAIN exactly what runs. */
export function exportPageQuery(
  filter: ConsoleExportFilter,
  after: ConsoleCursor | null,
  limit: number,
): { sql: string; params: unknown[] } {
  const where: string[] = [];
  const params: unknown[] = [];
  const add = (condition: string, ...values: unknown[]): void => {
    where.push(condition);
    params.push(...values);
  };
  if (filter.state !== undefined) add('coalesce(e.ack_state, e.status) = ?', filter.state);
  if (filter.mappingName !== undefined) add('e.mapping_name = ?', filter.mappingName);
  if (filter.target !== undefined) add('e.target = ?', filter.target);
  if (filter.createdFrom !== undefined) add('e.created_at >= ?', filter.createdFrom);
  if (filter.createdTo !== undefined) add('e.created_at < ?', filter.createdTo);
  const search = filter.search?.trim();
  if (search) {
    // One indexed lookup per meaning of the text, so the search never scans the table.
    const lookups = ['SELECT id FROM exports WHERE document_ref = ?', 'SELECT id FROM exports WHERE remote_name = ?'];
    const values: unknown[] = [search, search];
    if (/^\d{1,15}$/.test(search)) {
      lookups.push('SELECT id FROM exports WHERE annotation_id = ?');
      values.push(Number(search));
    }
    add(`e.id IN (${lookups.join(' UNION ')})`, ...values);
  }
  if (after) add('(e.created_at, e.id) < (?, ?)', after.createdAt, after.id);
  params.push(limit + 1);
  const sql = `SELECT ${LIST_COLUMNS} FROM exports e ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY e.created_at DESC, e.id DESC LIMIT ?`;
  return { sql, params };
}

export async function listConsoleExports(
  { driver }: LedgerContext,
  filter: ConsoleExportFilter,
  after: ConsoleCursor | null,
  limit: number,
): Promise<ConsoleExportPage> {
  const { sql, params } = exportPageQuery(filter, after, limit);
  const found = await driver.all<ExportListRow>(sql, params);
  const rows = found.slice(0, limit).map(toListRow);
  const last = rows.at(-1);
  return { rows, next: found.length > limit && last ? { createdAt: last.createdAt, id: last.id } : null };
}

function toListRow(row: ExportListRow): ConsoleExportRow {
  return {
    id: Number(row.id),
    annotationId: Number(row.annotation_id),
    mappingName: row.mapping_name,
    target: row.target,
    documentRef: row.document_ref,
    fileName: row.remote_name,
    plannedPath: row.planned_path,
    state: row.ack_state ?? row.status,
    status: row.status,
    ackState: row.ack_state,
    holdState: row.hold_state,
    errorCode: row.error_code,
    createdAt: Number(row.created_at),
    uploadedAt: row.uploaded_at === null ? null : Number(row.uploaded_at),
    ackAt: row.ack_at === null ? null : Number(row.ack_at),
    rossumDelivery: row.rossum_delivery,
  };
}

export async function filterChoices({ driver }: LedgerContext): Promise<{ mappings: string[]; targets: string[] }> {
  // Loose index scans (a handful of distinct values): each step jumps to the next value in its index.
  const distinct = async (column: 'mapping_name' | 'target'): Promise<string[]> => {
    const values: string[] = [];
    let last: string | undefined;
    for (let step = 0; step < 200; step++) {
      const row = await driver.get<{ value: string | null }>(
        `SELECT min(${column}) AS value FROM exports${last === undefined ? '' : ` WHERE ${column} > ?`}`,
        last === undefined ? [] : [last],
      );
      if (!row || row.value === null) break;
      values.push(row.value);
      last = row.value;
    }
    return values;
  };
  return { mappings: await distinct('mapping_name'), targets: await distinct('target') };
}

interface AckFileRow {
  id: number;
  source: string;
  file_name: string;
  sha256: string;
  convention: string;
  disposition: ConsoleAckFile['disposition'];
  error: string | null;
  received_at: number;
  archived_to: string | null;
  handled_at: number | null;
  handled_by: string | null;
}

function toAckFile(row: AckFileRow): ConsoleAckFile {
  return {
    id: Number(row.id),
    source: row.source,
    fileName: row.file_name,
    sha256: row.sha256,
    convention: row.convention,
    disposition: row.disposition,
    error: row.error,
    receivedAt: Number(row.received_at),
    archivedTo: row.archived_to,
    handledAt: row.handled_at === null ? null : Number(row.handled_at),
    handledBy: row.handled_by,
  };
}

const ACK_FILE_COLUMNS =
  'id, source, file_name, sha256, convention, disposition, error, received_at, archived_to, handled_at, handled_by';

export async function ackFilesOfExport({ driver }: LedgerContext, exportId: number): Promise<ConsoleAckFile[]> {
  const rows = await driver.all<AckFileRow>(
    `SELECT ${ACK_FILE_COLUMNS} FROM ack_files WHERE id IN (SELECT ack_file_id FROM ack_outcomes WHERE export_id = ? AND ack_file_id IS NOT NULL) ORDER BY id`,
    [exportId],
  );
  return rows.map(toAckFile);
}

export async function openAckFiles({ driver }: LedgerContext, limit: number): Promise<ConsoleAckFile[]> {
  const rows = await driver.all<AckFileRow>(
    `SELECT ${ACK_FILE_COLUMNS} FROM ack_files WHERE disposition <> 'matched' AND handled_at IS NULL ORDER BY received_at DESC LIMIT ?`,
    [limit],
  );
  return rows.map(toAckFile);
}

export async function ackFile({ driver }: LedgerContext, id: number): Promise<ConsoleAckFile | undefined> {
  const row = await driver.get<AckFileRow>(`SELECT ${ACK_FILE_COLUMNS} FROM ack_files WHERE id = ?`, [id]);
  return row ? toAckFile(row) : undefined;
}

export async function actionsOfExport({ driver }: LedgerContext, exportId: number): Promise<ConsoleAction[]> {
  const rows = await driver.all<{
    id: number;
    at: number;
    actor: string;
    action: string;
    export_id: number | null;
    ack_file_id: number | null;
    detail: string;
  }>(
    'SELECT id, at, actor, action, export_id, ack_file_id, detail FROM console_actions WHERE export_id = ? ORDER BY id',
    [exportId],
  );
  return rows.map((row) => ({
    id: Number(row.id),
    at: Number(row.at),
    actor: row.actor,
    action: row.action,
    exportId: row.export_id === null ? null : Number(row.export_id),
    ackFileId: row.ack_file_id === null ? null : Number(row.ack_file_id),
    detail: JSON.parse(row.detail) as Record<string, unknown>,
  }));
}

export async function overview({ driver }: LedgerContext, since: number): Promise<ConsoleOverview> {
  const perHour = await driver.all<{ hour: number | string; n: number | string }>(
    `SELECT (created_at / ${HOUR_MS}) AS hour, count(*) AS n FROM exports WHERE created_at >= ? GROUP BY (created_at / ${HOUR_MS}) ORDER BY hour`,
    [since],
  );
  const failures = await driver.all<{ reason: string; n: number | string }>(
    `SELECT coalesce(error_code, ack_state, status) AS reason, count(*) AS n FROM exports
     WHERE coalesce(ack_state, status) IN ('failed', 'retryable', 'rejected', 'ack_timeout', 'ack_invalid') AND created_at >= ?
     GROUP BY coalesce(error_code, ack_state, status) ORDER BY n DESC, reason LIMIT 12`,
    [since],
  );
  const latency = await driver.all<{
    hour: number | string;
    average: number | string;
    longest: number | string;
    n: number | string;
  }>(
    `SELECT (ack_at / ${HOUR_MS}) AS hour, avg(ack_at - uploaded_at) AS average, max(ack_at - uploaded_at) AS longest, count(*) AS n FROM exports
     WHERE ack_at IS NOT NULL AND ack_at >= ? AND uploaded_at IS NOT NULL GROUP BY (ack_at / ${HOUR_MS}) ORDER BY hour`,
    [since],
  );
  const pending = await driver.all<{ kind: AckOutcomeKind; n: number | string; oldest: number | string }>(
    `SELECT kind, count(*) AS n, min(created_at) AS oldest FROM ack_outcomes WHERE delivery = 'pending' GROUP BY kind ORDER BY kind`,
  );
  const failed = await driver.get<{ n: number | string }>(
    `SELECT count(*) AS n FROM ack_outcomes WHERE delivery = 'failed'`,
  );
  const open = await driver.get<{ n: number | string }>(
    `SELECT count(*) AS n FROM ack_files WHERE disposition <> 'matched' AND handled_at IS NULL`,
  );
  return {
    exportsPerHour: perHour.map((row) => ({ hour: Number(row.hour) * HOUR_MS, count: Number(row.n) })),
    failuresByReason: failures.map((row) => ({ reason: row.reason, count: Number(row.n) })),
    ackLatencyPerHour: latency.map((row) => ({
      hour: Number(row.hour) * HOUR_MS,
      averageMs: Math.round(Number(row.average)),
      maxMs: Number(row.longest),
      count: Number(row.n),
    })),
    pendingDeliveries: pending.map((row) => ({ kind: row.kind, count: Number(row.n), oldestAt: Number(row.oldest) })),
    failedDeliveries: Number(failed?.n ?? 0),
    openAckFiles: Number(open?.n ?? 0),
  };
}

export async function changeMark({ driver }: LedgerContext): Promise<number> {
  const row = await driver.get<{ mark: number | string | null }>('SELECT max(id) AS mark FROM export_events');
  return Number(row?.mark ?? 0);
}

export async function recordAction(
  tx: Queries,
  at: number,
  actor: string,
  action: string,
  target: { exportId?: number; ackFileId?: number },
  detail: Record<string, unknown>,
): Promise<void> {
  await tx.run(
    'INSERT INTO console_actions (at, actor, action, export_id, ack_file_id, detail) VALUES (?, ?, ?, ?, ?, ?)',
    [at, actor, action, target.exportId ?? null, target.ackFileId ?? null, JSON.stringify(detail)],
  );
}

export function redeliverOutcome(
  { driver, now: clock }: LedgerContext,
  outcomeId: number,
  actor: string,
): Promise<void> {
  return driver.transaction(async (tx) => {
    const now = clock();
    const row = await tx.get<{
      export_id: number;
      kind: string;
      delivery: AckDelivery;
      lease_expires_at: number | null;
    }>(`SELECT export_id, kind, delivery, lease_expires_at FROM ack_outcomes WHERE id = ?${driver.dialect.forUpdate}`, [
      outcomeId,
    ]);
    if (!row) throw refused('not_found', `Rossum outcome ${outcomeId} does not exist`);
    if (row.delivery !== 'pending' && row.delivery !== 'failed') {
      throw refused(
        'conflict',
        `Rossum outcome ${outcomeId} is ${row.delivery}: only a pending or failed outcome is delivered again`,
      );
    }
    if (row.lease_expires_at !== null && Number(row.lease_expires_at) > now) {
      throw refused('conflict', `Rossum outcome ${outcomeId} is being delivered right now; look again in a moment`);
    }
    await tx.run(
      `UPDATE ack_outcomes SET delivery = 'pending', next_attempt_at = ?, lease_owner = NULL, lease_expires_at = NULL WHERE id = ?`,
      [now, outcomeId],
    );
    const detail = { outcomeId, outcome: row.kind, previousDelivery: row.delivery, by: actor };
    await addEvent(tx, Number(row.export_id), now, 'console_redeliver', detail);
    await recordAction(tx, now, actor, 'redeliver', { exportId: Number(row.export_id) }, detail);
  });
}

export function markAckFileHandled(
  context: LedgerContext,
  ackFileId: number,
  actor: string,
  note: string,
): Promise<void> {
  return context.driver.transaction(async (tx) => {
    const now = context.now();
    const changed = await tx.run(
      `UPDATE ack_files SET handled_at = ?, handled_by = ? WHERE id = ? AND disposition <> 'matched' AND handled_at IS NULL`,
      [now, actor, ackFileId],
    );
    if (changed !== 1)
      throw refused(
        'conflict',
        `Ack file ${ackFileId} is not an open unmatched or unreadable file (already handled, matched, or unknown)`,
      );
    await recordAction(tx, now, actor, 'ack_file_handled', { ackFileId }, { note });
  });
}

/** An operator action the ledger's current state does not allow; nothing was changed. */
export class ConsoleActionRefused extends Error {
  constructor(
    readonly reason: 'not_found' | 'conflict',
    message: string,
  ) {
    super(message);
    this.name = 'ConsoleActionRefused';
  }
}

export function refused(reason: 'not_found' | 'conflict', message: string): ConsoleActionRefused {
  return new ConsoleActionRefused(reason, message);
}
