import { closeSync, mkdirSync, openSync, chmodSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { BridgeError } from '../errors.ts';
import { sqliteMigrations } from './sqlite-migrations.ts';
import type { ClaimInput, ClaimResult, ExportFilter, ExportRecord, ExportStatus, Ledger, LedgerEvent, StoredReply } from './types.ts';

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
  };
}

export interface SqliteLedgerOptions {
  /** File path, or `:memory:`. */
  path: string;
  now?: () => number;
}

/** The embedded default: one file, WAL, owner-only permissions. */
export class SqliteLedger implements Ledger {
  readonly kind = 'sqlite' as const;
  readonly db: Database.Database;
  private readonly now: () => number;

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
      this.db.pragma('journal_mode = WAL');
      this.db.pragma('synchronous = NORMAL');
      this.db.pragma('busy_timeout = 5000');
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
    const current = this.db.pragma('user_version', { simple: true }) as number;
    if (current > sqliteMigrations.length) {
      throw new Error(`ledger schema version ${current} is newer than this program knows (${sqliteMigrations.length}); upgrade the bridge`);
    }
    const apply = this.db.transaction(() => {
      for (let version = current; version < sqliteMigrations.length; version++) {
        this.db.exec(sqliteMigrations[version] as string);
        this.db.pragma(`user_version = ${version + 1}`);
      }
    });
    apply.immediate();
  }

  private selectByKey(key: string): ExportRecord | undefined {
    const row = this.db.prepare(`${SELECT_EXPORT} WHERE e.idempotency_key = ?`).get(key) as ExportRow | undefined;
    return row ? rowToRecord(row) : undefined;
  }

  private selectById(id: number): ExportRecord | undefined {
    const row = this.db.prepare(`${SELECT_EXPORT} WHERE e.id = ?`).get(id) as ExportRow | undefined;
    return row ? rowToRecord(row) : undefined;
  }

  private addEvent(exportId: number, kind: string, detail: Record<string, unknown>): void {
    this.db.prepare('INSERT INTO export_events (export_id, at, kind, detail) VALUES (?, ?, ?, ?)').run(exportId, this.now(), kind, JSON.stringify(detail));
  }

  async claim(input: ClaimInput): Promise<ClaimResult> {
    const run = this.db.transaction((): ClaimResult => {
      const now = this.now();
      const inserted = this.db
        .prepare(
          `INSERT INTO exports (idempotency_key, annotation_id, mapping_name, mapping_hash, target, planned_path, sha256, bytes, status,
             attempts, lease_owner, lease_expires_at, created_at, updated_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'uploading', 1, ?, ?, ?, ?)
           ON CONFLICT (idempotency_key) DO NOTHING`,
        )
        .run(input.idempotencyKey, input.annotationId, input.mappingName, input.mappingHash, input.target, input.plannedPath, input.sha256, input.bytes, input.owner, now + input.leaseMs, now, now);
      const existing = this.selectByKey(input.idempotencyKey) as ExportRecord;
      this.db.prepare('INSERT OR IGNORE INTO export_requests (export_id, request_id, received_at) VALUES (?, ?, ?)').run(existing.id, input.requestId, now);
      if (inserted.changes === 1) {
        this.addEvent(existing.id, 'claimed', { requestId: input.requestId, plannedPath: input.plannedPath, mappingHash: input.mappingHash });
        return { outcome: 'claimed', record: this.selectById(existing.id) as ExportRecord, takeover: false };
      }
      if (existing.status === 'uploading' && existing.leaseExpiresAt !== null && existing.leaseExpiresAt > now && existing.leaseOwner !== input.owner) {
        this.addEvent(existing.id, 'duplicate_in_progress', { requestId: input.requestId });
        return { outcome: 'in_progress', record: this.selectById(existing.id) as ExportRecord };
      }
      if (existing.status === 'uploading' || existing.status === 'retryable') {
        this.db
          .prepare(`UPDATE exports SET status = 'uploading', lease_owner = ?, lease_expires_at = ?, attempts = attempts + 1, updated_at = ? WHERE id = ?`)
          .run(input.owner, now + input.leaseMs, now, existing.id);
        this.addEvent(existing.id, 'takeover', { requestId: input.requestId, previousStatus: existing.status, previousOwner: existing.leaseOwner });
        return { outcome: 'claimed', record: this.selectById(existing.id) as ExportRecord, takeover: true };
      }
      this.addEvent(existing.id, 'duplicate_answered', { requestId: input.requestId, status: existing.status });
      return { outcome: 'done', record: this.selectById(existing.id) as ExportRecord };
    });
    return run.immediate();
  }

  async complete(id: number, owner: string, result: { remotePath: string; reply: StoredReply }): Promise<void> {
    const run = this.db.transaction(() => {
      const now = this.now();
      const changed = this.db
        .prepare(
          `UPDATE exports SET status = 'uploaded', remote_path = ?, reply = ?, error_code = NULL, error = NULL, lease_owner = NULL,
             lease_expires_at = NULL, updated_at = ?, uploaded_at = ? WHERE id = ? AND lease_owner = ?`,
        )
        .run(result.remotePath, JSON.stringify(result.reply), now, now, id, owner);
      if (changed.changes !== 1) throw lostLease(id);
      this.addEvent(id, 'uploaded', { remotePath: result.remotePath });
    });
    run.immediate();
  }

  async fail(id: number, owner: string, failure: { code: string; message: string; permanent: boolean; reply: StoredReply }): Promise<void> {
    const run = this.db.transaction(() => {
      const now = this.now();
      const changed = this.db
        .prepare(
          `UPDATE exports SET status = ?, error_code = ?, error = ?, reply = ?, lease_owner = NULL, lease_expires_at = NULL, updated_at = ?
           WHERE id = ? AND lease_owner = ?`,
        )
        .run(failure.permanent ? 'failed' : 'retryable', failure.code, failure.message, failure.permanent ? JSON.stringify(failure.reply) : null, now, id, owner);
      if (changed.changes !== 1) throw lostLease(id);
      this.addEvent(id, failure.permanent ? 'failed' : 'transient_failure', { code: failure.code, message: failure.message });
    });
    run.immediate();
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
    if (filter.mappingName !== undefined) (where.push('e.mapping_name = ?'), params.push(filter.mappingName));
    if (filter.target !== undefined) (where.push('e.target = ?'), params.push(filter.target));
    if (filter.annotationId !== undefined) (where.push('e.annotation_id = ?'), params.push(filter.annotationId));
    if (filter.createdAfter !== undefined) (where.push('e.created_at >= ?'), params.push(filter.createdAfter));
    if (filter.createdBefore !== undefined) (where.push('e.created_at < ?'), params.push(filter.createdBefore));
    const sql = `${SELECT_EXPORT} ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY e.id LIMIT ?`;
    params.push(filter.limit ?? 1000);
    return (this.db.prepare(sql).all(...params) as ExportRow[]).map(rowToRecord);
  }

  async events(exportId: number): Promise<LedgerEvent[]> {
    const rows = this.db.prepare('SELECT id, export_id, at, kind, detail FROM export_events WHERE export_id = ? ORDER BY id').all(exportId) as Array<{
      id: number;
      export_id: number;
      at: number;
      kind: string;
      detail: string;
    }>;
    return rows.map((row) => ({ id: row.id, exportId: row.export_id, at: row.at, kind: row.kind, detail: JSON.parse(row.detail) as Record<string, unknown> }));
  }

  async recordEvent(exportId: number, kind: string, detail: Record<string, unknown> = {}): Promise<void> {
    this.addEvent(exportId, kind, detail);
  }

  async ping(): Promise<void> {
    // BEGIN IMMEDIATE takes the write lock: proves the file is writable without changing data.
    this.db.exec('BEGIN IMMEDIATE; ROLLBACK;');
  }

  async close(): Promise<void> {
    if (this.db.open) this.db.close();
  }
}

function lostLease(id: number): BridgeError {
  return new BridgeError('LEDGER_LEASE_LOST', `Export ${id} was taken over by another worker before this one finished`, { permanent: false });
}
