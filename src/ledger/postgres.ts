import pg from 'pg';
import { BridgeError } from '../errors.ts';
import { postgresMigrations } from './postgres-migrations.ts';
import { rowToRecord, type ExportRow } from './sqlite.ts';
import type { ClaimInput, ClaimResult, ExportFilter, ExportRecord, Ledger, LedgerEvent, StoredReply } from './types.ts';

const SELECT_EXPORT = `
  SELECT e.*, (SELECT string_agg(request_id, E'\\n' ORDER BY received_at) FROM export_requests r WHERE r.export_id = e.id) AS request_ids
  FROM exports e`;

const MIGRATION_LOCK = 7_261_100_001;

/** BIGINT columns hold epoch ms and ids: safe as JS numbers. */
const types = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === 20 ? (value: string) => Number(value) : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
};

/** For several replicas: the unique idempotency key and row locks decide who uploads. */
export class PostgresLedger implements Ledger {
  readonly kind = 'postgres' as const;

  private constructor(
    private readonly pool: pg.Pool,
    private readonly now: () => number,
  ) {}

  static async connect(url: string, options: { now?: () => number; max?: number } = {}): Promise<PostgresLedger> {
    const pool = new pg.Pool({ connectionString: url, max: options.max ?? 10, types });
    // An idle client's error must not crash the process; the next query reconnects.
    pool.on('error', () => {});
    const ledger = new PostgresLedger(pool, options.now ?? Date.now);
    try {
      await ledger.migrate();
    } catch (error) {
      await pool.end().catch(() => {});
      throw new BridgeError('LEDGER_UNAVAILABLE', `Cannot open the PostgreSQL ledger: ${(error as Error).message}`, { permanent: false, cause: error });
    }
    return ledger;
  }

  private async migrate(): Promise<void> {
    await this.transaction(async (client) => {
      await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
      await client.query('CREATE TABLE IF NOT EXISTS ledger_schema (version INTEGER NOT NULL)');
      const result = await client.query<{ version: number }>('SELECT version FROM ledger_schema');
      let current = result.rows[0]?.version ?? 0;
      if (result.rows.length === 0) await client.query('INSERT INTO ledger_schema (version) VALUES (0)');
      if (current > postgresMigrations.length) {
        throw new Error(`ledger schema version ${current} is newer than this program knows (${postgresMigrations.length}); upgrade the bridge`);
      }
      for (; current < postgresMigrations.length; current++) {
        await client.query(postgresMigrations[current] as string);
        await client.query('UPDATE ledger_schema SET version = $1', [current + 1]);
      }
    });
  }

  private async transaction<T>(work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    const client = await this.pool.connect();
    try {
      await client.query('BEGIN');
      const result = await work(client);
      await client.query('COMMIT');
      return result;
    } catch (error) {
      await client.query('ROLLBACK').catch(() => {});
      throw error;
    } finally {
      client.release();
    }
  }

  private async select(client: pg.PoolClient | pg.Pool, where: string, params: unknown[]): Promise<ExportRecord | undefined> {
    const result = await client.query<ExportRow>(`${SELECT_EXPORT} WHERE ${where}`, params);
    return result.rows[0] ? rowToRecord(result.rows[0]) : undefined;
  }

  private async addEvent(client: pg.PoolClient | pg.Pool, exportId: number, kind: string, detail: Record<string, unknown>): Promise<void> {
    await client.query('INSERT INTO export_events (export_id, at, kind, detail) VALUES ($1, $2, $3, $4)', [exportId, this.now(), kind, JSON.stringify(detail)]);
  }

  async claim(input: ClaimInput): Promise<ClaimResult> {
    return this.transaction(async (client) => {
      const now = this.now();
      const inserted = await client.query(
        `INSERT INTO exports (idempotency_key, annotation_id, mapping_name, mapping_hash, target, planned_path, sha256, bytes, status,
           attempts, lease_owner, lease_expires_at, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'uploading', 1, $9, $10, $11, $11)
         ON CONFLICT (idempotency_key) DO NOTHING RETURNING id`,
        [input.idempotencyKey, input.annotationId, input.mappingName, input.mappingHash, input.target, input.plannedPath, input.sha256, input.bytes, input.owner, now + input.leaseMs, now],
      );
      // Lock the row: concurrent claims of the same key queue here and see each other's decision.
      const locked = await client.query<{ id: number }>('SELECT id FROM exports WHERE idempotency_key = $1 FOR UPDATE', [input.idempotencyKey]);
      const id = locked.rows[0]?.id as number;
      await client.query('INSERT INTO export_requests (export_id, request_id, received_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING', [id, input.requestId, now]);
      const existing = (await this.select(client, 'e.id = $1', [id])) as ExportRecord;
      if ((inserted.rowCount ?? 0) === 1) {
        await this.addEvent(client, id, 'claimed', { requestId: input.requestId, plannedPath: input.plannedPath, mappingHash: input.mappingHash });
        return { outcome: 'claimed', record: existing, takeover: false };
      }
      if (existing.status === 'uploading' && existing.leaseExpiresAt !== null && existing.leaseExpiresAt > now && existing.leaseOwner !== input.owner) {
        await this.addEvent(client, id, 'duplicate_in_progress', { requestId: input.requestId });
        return { outcome: 'in_progress', record: existing };
      }
      if (existing.status === 'uploading' || existing.status === 'retryable') {
        await client.query(
          `UPDATE exports SET status = 'uploading', lease_owner = $1, lease_expires_at = $2, attempts = attempts + 1, updated_at = $3 WHERE id = $4`,
          [input.owner, now + input.leaseMs, now, id],
        );
        await this.addEvent(client, id, 'takeover', { requestId: input.requestId, previousStatus: existing.status, previousOwner: existing.leaseOwner });
        return { outcome: 'claimed', record: (await this.select(client, 'e.id = $1', [id])) as ExportRecord, takeover: true };
      }
      await this.addEvent(client, id, 'duplicate_answered', { requestId: input.requestId, status: existing.status });
      return { outcome: 'done', record: existing };
    });
  }

  async complete(id: number, owner: string, result: { remotePath: string; reply: StoredReply }): Promise<void> {
    await this.transaction(async (client) => {
      const now = this.now();
      const changed = await client.query(
        `UPDATE exports SET status = 'uploaded', remote_path = $1, reply = $2, error_code = NULL, error = NULL, lease_owner = NULL,
           lease_expires_at = NULL, updated_at = $3, uploaded_at = $3 WHERE id = $4 AND lease_owner = $5`,
        [result.remotePath, JSON.stringify(result.reply), now, id, owner],
      );
      if (changed.rowCount !== 1) throw lostLease(id);
      await this.addEvent(client, id, 'uploaded', { remotePath: result.remotePath });
    });
  }

  async fail(id: number, owner: string, failure: { code: string; message: string; permanent: boolean; reply: StoredReply }): Promise<void> {
    await this.transaction(async (client) => {
      const changed = await client.query(
        `UPDATE exports SET status = $1, error_code = $2, error = $3, reply = $4, lease_owner = NULL, lease_expires_at = NULL, updated_at = $5
         WHERE id = $6 AND lease_owner = $7`,
        [failure.permanent ? 'failed' : 'retryable', failure.code, failure.message, failure.permanent ? JSON.stringify(failure.reply) : null, this.now(), id, owner],
      );
      if (changed.rowCount !== 1) throw lostLease(id);
      await this.addEvent(client, id, failure.permanent ? 'failed' : 'transient_failure', { code: failure.code, message: failure.message });
    });
  }

  async get(id: number): Promise<ExportRecord | undefined> {
    return this.select(this.pool, 'e.id = $1', [id]);
  }

  async list(filter: ExportFilter = {}): Promise<ExportRecord[]> {
    const where: string[] = [];
    const params: unknown[] = [];
    const add = (sql: string, value: unknown): void => {
      params.push(value);
      where.push(sql.replace('?', `$${params.length}`));
    };
    if (filter.status && filter.status.length > 0) add('e.status = ANY(?)', filter.status);
    if (filter.mappingName !== undefined) add('e.mapping_name = ?', filter.mappingName);
    if (filter.target !== undefined) add('e.target = ?', filter.target);
    if (filter.annotationId !== undefined) add('e.annotation_id = ?', filter.annotationId);
    if (filter.createdAfter !== undefined) add('e.created_at >= ?', filter.createdAfter);
    if (filter.createdBefore !== undefined) add('e.created_at < ?', filter.createdBefore);
    params.push(filter.limit ?? 1000);
    const result = await this.pool.query<ExportRow>(`${SELECT_EXPORT} ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY e.id LIMIT $${params.length}`, params);
    return result.rows.map(rowToRecord);
  }

  async events(exportId: number): Promise<LedgerEvent[]> {
    const result = await this.pool.query<{ id: number; export_id: number; at: number; kind: string; detail: string }>(
      'SELECT id, export_id, at, kind, detail FROM export_events WHERE export_id = $1 ORDER BY id',
      [exportId],
    );
    return result.rows.map((row) => ({ id: row.id, exportId: row.export_id, at: row.at, kind: row.kind, detail: JSON.parse(row.detail) as Record<string, unknown> }));
  }

  async recordEvent(exportId: number, kind: string, detail: Record<string, unknown> = {}): Promise<void> {
    await this.addEvent(this.pool, exportId, kind, detail);
  }

  async ping(): Promise<void> {
    await this.transaction(async (client) => {
      await client.query('SELECT 1 FROM ledger_schema FOR UPDATE');
    });
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}

function lostLease(id: number): BridgeError {
  return new BridgeError('LEDGER_LEASE_LOST', `Export ${id} was taken over by another worker before this one finished`, { permanent: false });
}
