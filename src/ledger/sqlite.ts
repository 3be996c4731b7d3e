import { closeSync, mkdirSync, openSync, chmodSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { BridgeError } from '../errors.ts';
import { ackTransition, EMPTY_BACKLOG, initialDelivery, nameParts, rowToOutcome, type OutcomeRow } from './ack-rules.ts';
import { existingClaimOutcome } from './claim-rules.ts';
import { sqliteMigrations } from './sqlite-migrations.ts';
import type {
  AckDelivery,
  AckFileInput,
  AckLookup,
  AckOutcome,
  AckOutcomeDetail,
  AckState,
  ClaimInput,
  ClaimResult,
  ExportFilter,
  ExportRecord,
  ExportStatus,
  HoldState,
  Ledger,
  LedgerEvent,
  OutcomeSettlement,
  RecordAckResult,
  StoredReply,
} from './types.ts';

export interface ExportRow {
  id: number;
  idempotency_key: string;
  annotation_id: number;
  mapping_name: string;
  mapping_hash: string;
  target: string;
  planned_path: string;
  remote_path: string | null;
  sha256: string;
  bytes: number;
  status: ExportStatus;
  error_code: string | null;
  error: string | null;
  reply: string | null;
  attempts: number;
  lease_owner: string | null;
  lease_expires_at: number | null;
  created_at: number;
  updated_at: number;
  uploaded_at: number | null;
  request_ids: string | null;
  document_ref?: string | null;
  rossum_base_url?: string | null;
  ack_state?: AckState | null;
  ack_deadline_at?: number | null;
  ack_at?: number | null;
  ack_file?: string | null;
  erp_reference?: string | null;
  hold_until?: number | null;
  hold_state?: HoldState | null;
}

const SELECT_EXPORT = `
  SELECT e.*, (SELECT group_concat(request_id, char(10)) FROM export_requests r WHERE r.export_id = e.id) AS request_ids
  FROM exports e`;

export function rowToRecord(row: ExportRow): ExportRecord {
  return {
    id: row.id,
    idempotencyKey: row.idempotency_key,
    annotationId: row.annotation_id,
    mappingName: row.mapping_name,
    mappingHash: row.mapping_hash,
    target: row.target,
    plannedPath: row.planned_path,
    remotePath: row.remote_path,
    sha256: row.sha256,
    bytes: row.bytes,
    status: row.status,
    errorCode: row.error_code,
    error: row.error,
    reply: row.reply ? (JSON.parse(row.reply) as StoredReply) : null,
    attempts: row.attempts,
    leaseOwner: row.lease_owner,
    leaseExpiresAt: row.lease_expires_at,
    requestIds: row.request_ids ? row.request_ids.split('\n') : [],
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    uploadedAt: row.uploaded_at,
    documentRef: row.document_ref ?? null,
    rossumBaseUrl: row.rossum_base_url ?? null,
    ackState: row.ack_state ?? null,
    ackDeadlineAt: row.ack_deadline_at ?? null,
    ackAt: row.ack_at ?? null,
    ackFile: row.ack_file ?? null,
    erpReference: row.erp_reference ?? null,
    holdUntil: row.hold_until ?? null,
    holdState: row.hold_state ?? null,
  };
}

interface QueuedWrite {
  work: () => unknown;
  settle: (error: Error | undefined, value?: unknown) => void;
}

export interface SqliteLedgerOptions {
  /** File path, or `:memory:`. */
  path: string;
  /** `full` fsyncs the WAL at every commit (one fsync per group commit); `normal` (default) at checkpoints. */
  synchronous?: 'normal' | 'full';
  now?: () => number;
}

/** The embedded default: one file, WAL, owner-only permissions. */
export class SqliteLedger implements Ledger {
  readonly kind = 'sqlite' as const;
  readonly db: Database.Database;
  private readonly now: () => number;
  private readonly statements = new Map<string, Database.Statement>();
  /** Writes waiting for the group commit at the end of this event-loop turn. */
  private queuedWrites: QueuedWrite[] = [];

  constructor(options: SqliteLedgerOptions) {
    this.now = options.now ?? Date.now;
    if (options.path !== ':memory:') {
      mkdirSync(dirname(options.path), { recursive: true, mode: 0o700 });
      // Create it owner-only before SQLite opens it: the ledger names customers' files and hosts.
      closeSync(openSync(options.path, 'a', 0o600));
      chmodSync(options.path, 0o600);
    }
    try {
      this.db = new Database(options.path);
      this.db.pragma('busy_timeout = 5000');
      this.db.pragma('journal_mode = WAL');
      this.db.pragma(`synchronous = ${options.synchronous === 'full' ? 'FULL' : 'NORMAL'}`);
      this.db.pragma('foreign_keys = ON');
      this.migrate();
    } catch (error) {
      throw new BridgeError('LEDGER_UNAVAILABLE', `Cannot open the SQLite ledger at ${options.path}: ${(error as Error).message}`, {
        permanent: false,
        cause: error,
      });
    }
  }

  private migrate(): void {
    // Read the version under the write lock: processes starting together (serve workers, acks) migrate once.
    const apply = this.db.transaction(() => {
      const current = this.db.pragma('user_version', { simple: true }) as number;
      if (current > sqliteMigrations.length) {
        throw new Error(`ledger schema version ${current} is newer than this program knows (${sqliteMigrations.length}); upgrade the bridge`);
      }
      for (let version = current; version < sqliteMigrations.length; version++) {
        this.db.exec(sqliteMigrations[version] as string);
        this.db.pragma(`user_version = ${version + 1}`);
      }
    });
    apply.immediate();
    this.backfillRemoteNames();
  }

  /** Rows uploaded before the ack columns existed get the name and stem acks are matched on. */
  private backfillRemoteNames(): void {
    const rows = this.db.prepare('SELECT id, remote_path FROM exports WHERE remote_path IS NOT NULL AND remote_name IS NULL').all() as Array<{ id: number; remote_path: string }>;
    const update = this.db.prepare('UPDATE exports SET remote_name = ?, remote_stem = ? WHERE id = ?');
    this.db.transaction(() => {
      for (const row of rows) {
        const { name, stem } = nameParts(row.remote_path);
        update.run(name, stem, row.id);
      }
    })();
  }

  private selectByKey(key: string): ExportRecord | undefined {
    const row = this.stmt(`${SELECT_EXPORT} WHERE e.idempotency_key = ?`).get(key) as ExportRow | undefined;
    return row ? rowToRecord(row) : undefined;
  }

  private selectById(id: number): ExportRecord | undefined {
    const row = this.stmt(`${SELECT_EXPORT} WHERE e.id = ?`).get(id) as ExportRow | undefined;
    return row ? rowToRecord(row) : undefined;
  }

  private addEvent(exportId: number, kind: string, detail: Record<string, unknown>): void {
    this.stmt('INSERT INTO export_events (export_id, at, kind, detail) VALUES (?, ?, ?, ?)').run(exportId, this.now(), kind, JSON.stringify(detail));
  }

  async claim(input: ClaimInput): Promise<ClaimResult> {
    return this.write((): ClaimResult => {
      const now = this.now();
      const inserted = this.stmt(
          `INSERT INTO exports (idempotency_key, annotation_id, mapping_name, mapping_hash, target, planned_path, sha256, bytes, status,
             attempts, lease_owner, lease_expires_at, created_at, updated_at, document_ref, rossum_base_url)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'uploading', 1, ?, ?, ?, ?, ?, ?)
           ON CONFLICT (idempotency_key) DO NOTHING RETURNING *`,
        )
        .get(
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
          now,
          now,
          input.documentRef ?? null,
          input.rossumBaseUrl ?? null,
        ) as ExportRow | undefined;
      const addRequest = (exportId: number): void => {
        this.stmt('INSERT OR IGNORE INTO export_requests (export_id, request_id, received_at) VALUES (?, ?, ?)').run(exportId, input.requestId, now);
      };
      if (inserted) {
        addRequest(inserted.id);
        this.addEvent(inserted.id, 'claimed', { requestId: input.requestId, plannedPath: input.plannedPath, mappingHash: input.mappingHash });
        return { outcome: 'claimed', record: rowToRecord({ ...inserted, request_ids: input.requestId }), takeover: false };
      }
      const existing = this.selectByKey(input.idempotencyKey) as ExportRecord;
      addRequest(existing.id);
      const outcome = existingClaimOutcome(existing, input.owner, now);
      if (outcome === 'in_progress') {
        this.addEvent(existing.id, 'duplicate_in_progress', { requestId: input.requestId });
        return { outcome: 'in_progress', record: this.selectById(existing.id) as ExportRecord };
      }
      if (outcome === 'takeover') {
        this.stmt(`UPDATE exports SET status = 'uploading', lease_owner = ?, lease_expires_at = ?, attempts = attempts + 1, updated_at = ? WHERE id = ?`)
          .run(input.owner, now + input.leaseMs, now, existing.id);
        this.addEvent(existing.id, 'takeover', { requestId: input.requestId, previousStatus: existing.status, previousOwner: existing.leaseOwner });
        return { outcome: 'claimed', record: this.selectById(existing.id) as ExportRecord, takeover: true };
      }
      this.addEvent(existing.id, 'duplicate_answered', { requestId: input.requestId, status: existing.status });
      return { outcome: 'done', record: this.selectById(existing.id) as ExportRecord };
    });
  }

  async complete(id: number, owner: string, result: { remotePath: string; reply: StoredReply }): Promise<void> {
    return this.write(() => {
      const now = this.now();
      const changed = this.stmt(
          `UPDATE exports SET status = 'uploaded', remote_path = ?, reply = ?, error_code = NULL, error = NULL, lease_owner = NULL,
             lease_expires_at = NULL, updated_at = ?, uploaded_at = ?, remote_name = ?, remote_stem = ? WHERE id = ? AND lease_owner = ?`,
        )
        .run(result.remotePath, JSON.stringify(result.reply), now, now, nameParts(result.remotePath).name, nameParts(result.remotePath).stem, id, owner);
      if (changed.changes !== 1) throw lostLease(id);
      this.addEvent(id, 'uploaded', { remotePath: result.remotePath });
    });
  }

  async fail(id: number, owner: string, failure: { code: string; message: string; permanent: boolean; reply: StoredReply }): Promise<void> {
    return this.write(() => {
      const now = this.now();
      const changed = this.stmt(
          `UPDATE exports SET status = ?, error_code = ?, error = ?, reply = ?, lease_owner = NULL, lease_expires_at = NULL, updated_at = ?
           WHERE id = ? AND lease_owner = ?`,
        )
        .run(failure.permanent ? 'failed' : 'retryable', failure.code, failure.message, failure.permanent ? JSON.stringify(failure.reply) : null, now, id, owner);
      if (changed.changes !== 1) throw lostLease(id);
      this.addEvent(id, failure.permanent ? 'failed' : 'transient_failure', { code: failure.code, message: failure.message });
    });
  }

  async get(id: number): Promise<ExportRecord | undefined> {
    return this.selectById(id);
  }

  async list(filter: ExportFilter = {}): Promise<ExportRecord[]> {
    const where: string[] = [];
    const params: unknown[] = [];
    if (filter.status && filter.status.length > 0) {
      where.push(`e.status IN (${filter.status.map(() => '?').join(', ')})`);
      params.push(...filter.status);
    }
    if (filter.state && filter.state.length > 0) {
      where.push(`coalesce(e.ack_state, e.status) IN (${filter.state.map(() => '?').join(', ')})`);
      params.push(...filter.state);
    }
    if (filter.mappingName !== undefined) (where.push('e.mapping_name = ?'), params.push(filter.mappingName));
    if (filter.target !== undefined) (where.push('e.target = ?'), params.push(filter.target));
    if (filter.annotationId !== undefined) (where.push('e.annotation_id = ?'), params.push(filter.annotationId));
    if (filter.createdAfter !== undefined) (where.push('e.created_at >= ?'), params.push(filter.createdAfter));
    if (filter.createdBefore !== undefined) (where.push('e.created_at < ?'), params.push(filter.createdBefore));
    const sql = `${SELECT_EXPORT} ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY e.id LIMIT ?`;
    params.push(filter.limit ?? 1000);
    return (this.stmt(sql).all(...params) as ExportRow[]).map(rowToRecord);
  }

  async events(exportId: number): Promise<LedgerEvent[]> {
    const rows = this.stmt('SELECT id, export_id, at, kind, detail FROM export_events WHERE export_id = ? ORDER BY id').all(exportId) as Array<{
      id: number;
      export_id: number;
      at: number;
      kind: string;
      detail: string;
    }>;
    return rows.map((row) => ({ id: row.id, exportId: row.export_id, at: row.at, kind: row.kind, detail: JSON.parse(row.detail) as Record<string, unknown> }));
  }

  async recordEvent(exportId: number, kind: string, detail: Record<string, unknown> = {}): Promise<void> {
    return this.write(() => this.addEvent(exportId, kind, detail));
  }

  /**
   * Group commit: the writes asked for during one event-loop turn run together on `setImmediate`,
   * each in its own savepoint inside one IMMEDIATE transaction, and every caller hears its result
   * only after that COMMIT. Concurrent claims and completions then append the index pages they
   * share to the WAL once instead of once each, and the write lock is held only while the batch runs.
   */
  private write<T>(work: () => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      if (this.queuedWrites.length === 0) setImmediate(() => this.flushWrites());
      this.queuedWrites.push({ work, settle: (error, value) => (error ? reject(error) : resolve(value as T)) });
    });
  }

  private flushWrites(): void {
    const batch = this.queuedWrites;
    this.queuedWrites = [];
    if (batch.length === 0) return;
    const outcomes: Array<{ error?: Error; value?: unknown }> = [];
    try {
      this.db.exec('BEGIN IMMEDIATE');
      for (const { work } of batch) {
        try {
          outcomes.push({ value: this.db.transaction(work)() });
        } catch (error) {
          outcomes.push({ error: error as Error });
        }
      }
      this.db.exec('COMMIT');
    } catch (error) {
      if (this.db.inTransaction) this.db.exec('ROLLBACK');
      for (const { settle } of batch) settle(error as Error);
      return;
    }
    batch.forEach(({ settle }, index) => settle(outcomes[index]?.error, outcomes[index]?.value));
  }


  // ── acknowledgements ──

  /** Prepared once: the ack loop runs the same few statements for every file. */
  private stmt(sql: string): Database.Statement {
    let statement = this.statements.get(sql);
    if (!statement) {
      statement = this.db.prepare(sql);
      this.statements.set(sql, statement);
    }
    return statement;
  }

  async awaitAcks(rules: ReadonlyArray<{ mappingName: string; deadlineMs: number; since: number }>): Promise<number> {
    return this.write(() => {
      const now = this.now();
      let adopted = 0;
      for (const rule of rules) {
        const where = `mapping_name = ? AND status = 'uploaded' AND ack_state IS NULL AND uploaded_at >= ?`;
        this.stmt(`INSERT INTO export_events (export_id, at, kind, detail) SELECT id, ?, 'awaiting_ack', json_object('deadlineAt', uploaded_at + ?) FROM exports WHERE ${where}`)
          .run(now, rule.deadlineMs, rule.mappingName, rule.since);
        adopted += this.stmt(`UPDATE exports SET ack_state = 'awaiting_ack', ack_deadline_at = uploaded_at + ?, updated_at = ? WHERE ${where}`)
          .run(rule.deadlineMs, now, rule.mappingName, rule.since).changes;
      }
      return adopted;
    });
  }

  async findExportForAck(lookup: AckLookup): Promise<ExportRecord | undefined> {
    const column = { name: 'e.remote_name', stem: 'e.remote_stem', annotationId: 'e.annotation_id', documentRef: 'e.document_ref' }[lookup.by];
    const value = lookup.by === 'annotationId' ? Number(lookup.value) : lookup.value;
    if (lookup.by === 'annotationId' && !Number.isSafeInteger(value)) return undefined;
    const params: unknown[] = [lookup.target, value];
    let mappings = '';
    if (lookup.mappingNames && lookup.mappingNames.length > 0) {
      mappings = ` AND e.mapping_name IN (${lookup.mappingNames.map(() => '?').join(', ')})`;
      params.push(...lookup.mappingNames);
    }
    const row = this.stmt(
        `${SELECT_EXPORT} WHERE e.target = ? AND ${column} = ? AND e.status = 'uploaded'${mappings}
         ORDER BY CASE WHEN e.ack_state IS NULL OR e.ack_state IN ('awaiting_ack', 'ack_timeout', 'ack_invalid') THEN 0 ELSE 1 END, e.id DESC LIMIT 1`,
      )
      .get(...params) as ExportRow | undefined;
    return row ? rowToRecord(row) : undefined;
  }

  async recordAck(input: AckFileInput): Promise<RecordAckResult> {
    return (await this.recordAcks([input]))[0] as RecordAckResult;
  }

  async recordAcks(inputs: readonly AckFileInput[]): Promise<RecordAckResult[]> {
    if (inputs.length === 0) return [];
    // One commit for the batch: per-file commits each rewrote the same index pages into the WAL.
    return this.write((): RecordAckResult[] => inputs.map((input) => this.recordOneAck(input)));
  }

  private recordOneAck(input: AckFileInput): RecordAckResult {
    const now = this.now();
    const inserted = this.stmt(
        `INSERT INTO ack_files (source, file_name, sha256, convention, disposition, error, received_at) VALUES (?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (source, file_name, sha256) DO NOTHING RETURNING id`,
      )
      .get(input.source, input.fileName, input.sha256, input.convention, input.disposition, input.error ?? null, now) as { id: number } | undefined;
    if (!inserted) {
      const ackFileId = (this.stmt('SELECT id FROM ack_files WHERE source = ? AND file_name = ? AND sha256 = ?').get(input.source, input.fileName, input.sha256) as { id: number }).id;
      return { ackFileId, alreadyRecorded: true, outcomes: this.outcomesOfFile(ackFileId) };
    }
    const ackFileId = inserted.id;
    const outcomes: AckOutcome[] = [];
    for (const entry of input.entries) {
      const record = this.stmt('SELECT id, status, ack_state, hold_state FROM exports WHERE id = ?').get(entry.exportId) as
        | Pick<ExportRow, 'id' | 'status' | 'ack_state' | 'hold_state'>
        | undefined;
      if (!record) continue;
      const previous = record.ack_state ?? record.status;
      const { state, kind } = ackTransition(previous, entry.verdict);
      const detail: AckOutcomeDetail = {
        ackFile: input.fileName,
        messages: entry.messages,
        erpReference: entry.erpReference ?? null,
        previousState: previous,
        ...(input.landedAt !== undefined ? { landedAt: input.landedAt } : {}),
      };
      if (state !== null) {
        this.stmt('UPDATE exports SET ack_state = ?, ack_at = ?, ack_file = ?, erp_reference = coalesce(?, erp_reference), updated_at = ? WHERE id = ?')
          .run(state, now, input.fileName, entry.erpReference ?? null, now, record.id);
      }
      this.addEvent(record.id, kind === 'duplicate' ? 'ack_duplicate' : `ack_${kind}`, {
        ackFile: input.fileName,
        verdict: entry.verdict,
        codes: entry.messages.map((m) => m.code).filter(Boolean),
        ...(entry.erpReference ? { erpReference: entry.erpReference } : {}),
      });
      const delivery = initialDelivery(kind, entry, record.hold_state ?? null);
      const row = this.stmt(
          `INSERT INTO ack_outcomes (export_id, ack_file_id, dedupe_key, kind, detail, delivery, next_attempt_at, created_at, delivered_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (dedupe_key) DO NOTHING RETURNING *`,
        )
        .get(record.id, ackFileId, `file:${ackFileId}:${entry.index}`, kind, JSON.stringify(detail), delivery, now, now, delivery === 'pending' ? null : now) as OutcomeRow | undefined;
      if (row) outcomes.push(rowToOutcome(row));
    }
    return { ackFileId, alreadyRecorded: false, outcomes };
  }

  private outcomesOfFile(ackFileId: number): AckOutcome[] {
    return (this.stmt('SELECT * FROM ack_outcomes WHERE ack_file_id = ? ORDER BY id').all(ackFileId) as OutcomeRow[]).map(rowToOutcome);
  }

  async markAckFileArchived(ackFileId: number, archivedTo: string | null): Promise<void> {
    await this.markAckFilesArchived([{ ackFileId, archivedTo }]);
  }

  async markAckFilesArchived(archived: ReadonlyArray<{ ackFileId: number; archivedTo: string | null }>): Promise<void> {
    if (archived.length === 0) return;
    return this.write(() => {
      const now = this.now();
      const update = this.stmt('UPDATE ack_files SET archived_to = ?, archived_at = ? WHERE id = ?');
      for (const { ackFileId, archivedTo } of archived) update.run(archivedTo ?? '(deleted)', now, ackFileId);
    });
  }

  async expireAcks(limit = 500, targets?: readonly string[]): Promise<AckOutcome[]> {
    if (targets?.length === 0) return [];
    return this.write((): AckOutcome[] => {
      const now = this.now();
      const due = (
        targets === undefined
          ? this.stmt(`SELECT id, ack_deadline_at FROM exports WHERE ack_state = 'awaiting_ack' AND ack_deadline_at < ? ORDER BY ack_deadline_at LIMIT ?`).all(now, limit)
          : this.stmt(`SELECT id, ack_deadline_at FROM exports WHERE ack_state = 'awaiting_ack' AND ack_deadline_at < ? AND target IN (SELECT value FROM json_each(?)) ORDER BY ack_deadline_at LIMIT ?`).all(
              now,
              JSON.stringify(targets),
              limit,
            )
      ) as Array<{ id: number; ack_deadline_at: number }>;
      const outcomes: AckOutcome[] = [];
      for (const row of due) {
        this.stmt(`UPDATE exports SET ack_state = 'ack_timeout', updated_at = ? WHERE id = ? AND ack_state = 'awaiting_ack'`).run(now, row.id);
        this.addEvent(row.id, 'ack_timeout', { deadlineAt: row.ack_deadline_at });
        const detail: AckOutcomeDetail = { messages: [], previousState: 'awaiting_ack', deadlineAt: row.ack_deadline_at };
        const inserted = this.stmt(
            `INSERT INTO ack_outcomes (export_id, dedupe_key, kind, detail, delivery, next_attempt_at, created_at)
             VALUES (?, ?, 'timeout', ?, 'pending', ?, ?) ON CONFLICT (dedupe_key) DO NOTHING RETURNING *`,
          )
          .get(row.id, `timeout:${row.id}:${row.ack_deadline_at}`, JSON.stringify(detail), now, now) as OutcomeRow | undefined;
        if (inserted) outcomes.push(rowToOutcome(inserted));
      }
      return outcomes;
    });
  }

  async claimOutcomes(owner: string, leaseMs: number, limit = 200): Promise<AckOutcome[]> {
    return this.write((): AckOutcome[] => {
      const now = this.now();
      const rows = this.stmt(
          `SELECT * FROM ack_outcomes WHERE delivery = 'pending' AND next_attempt_at <= ? AND (lease_expires_at IS NULL OR lease_expires_at < ?)
           ORDER BY next_attempt_at, id LIMIT ?`,
        )
        .all(now, now, limit) as OutcomeRow[];
      const lease = this.stmt('UPDATE ack_outcomes SET lease_owner = ?, lease_expires_at = ?, attempts = attempts + 1 WHERE id = ?');
      for (const row of rows) lease.run(owner, now + leaseMs, row.id);
      return rows.map((row) => rowToOutcome({ ...row, attempts: row.attempts + 1 }));
    });
  }

  async settleOutcome(id: number, owner: string, settlement: OutcomeSettlement): Promise<void> {
    return this.write(() => {
      const now = this.now();
      const row = this.stmt('SELECT export_id, kind FROM ack_outcomes WHERE id = ? AND lease_owner = ?').get(id, owner) as { export_id: number; kind: string } | undefined;
      if (!row) throw lostOutcomeLease(id);
      if (settlement.delivery === 'retry') {
        this.stmt('UPDATE ack_outcomes SET next_attempt_at = ?, last_error = ?, lease_owner = NULL, lease_expires_at = NULL WHERE id = ?')
          .run(settlement.retryAt, settlement.error, id);
        this.addEvent(row.export_id, 'rossum_delivery_retry', { outcome: row.kind, error: settlement.error, retryAt: settlement.retryAt });
        return;
      }
      const error = settlement.delivery === 'failed' ? settlement.error : null;
      this.stmt('UPDATE ack_outcomes SET delivery = ?, delivered_at = ?, last_error = coalesce(?, last_error), lease_owner = NULL, lease_expires_at = NULL WHERE id = ?')
        .run(settlement.delivery, now, error, id);
      if (settlement.delivery !== 'not_needed') {
        this.addEvent(row.export_id, settlement.delivery === 'failed' ? 'rossum_delivery_failed' : 'rossum_told', {
          outcome: row.kind,
          via: settlement.delivery === 'by_hold' ? 'held export reply' : 'api',
          ...(error ? { error } : {}),
          ...(settlement.delivery !== 'failed' && settlement.note ? { note: settlement.note } : {}),
        });
      }
    });
  }

  async outcomes(exportId: number): Promise<AckOutcome[]> {
    return (this.stmt('SELECT * FROM ack_outcomes WHERE export_id = ? ORDER BY id').all(exportId) as OutcomeRow[]).map(rowToOutcome);
  }

  async outcomeBacklog(): Promise<Record<AckDelivery, number>> {
    const rows = this.stmt('SELECT delivery, count(*) AS n FROM ack_outcomes GROUP BY delivery').all() as Array<{ delivery: AckDelivery; n: number }>;
    const backlog = { ...EMPTY_BACKLOG };
    for (const row of rows) backlog[row.delivery] = row.n;
    return backlog;
  }

  async startHold(exportId: number, until: number): Promise<void> {
    return this.write(() => {
      const changed = this.stmt(`UPDATE exports SET hold_until = ?, hold_state = 'pending', updated_at = ? WHERE id = ? AND hold_state IS NULL`).run(until, this.now(), exportId);
      if (changed.changes === 1) this.addEvent(exportId, 'hold_started', { until });
    });
  }

  async moveHold(exportId: number, from: readonly HoldState[], to: HoldState): Promise<boolean> {
    return this.write(() => {
      const changed = this.stmt(`UPDATE exports SET hold_state = ?, updated_at = ? WHERE id = ? AND hold_state IN (${from.map(() => '?').join(', ')})`)
        .run(to, this.now(), exportId, ...from);
      if (changed.changes === 1) this.addEvent(exportId, `hold_${to}`, {});
      return changed.changes === 1;
    });
  }

  async ping(): Promise<void> {
    // BEGIN IMMEDIATE takes the write lock: proves the file is writable without changing data.
    this.db.exec('BEGIN IMMEDIATE; ROLLBACK;');
  }

  async close(): Promise<void> {
    if (this.db.open) this.flushWrites();
    if (this.db.open) this.db.close();
  }
}

function lostOutcomeLease(id: number): BridgeError {
  return new BridgeError('LEDGER_LEASE_LOST', `Ack outcome ${id} was taken over by another process before this one finished`, { permanent: false });
}

function lostLease(id: number): BridgeError {
  return new BridgeError('LEDGER_LEASE_LOST', `Export ${id} was taken over by another worker before this one finished`, { permanent: false });
}
