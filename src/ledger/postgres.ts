import pg from 'pg';
import { BridgeError } from '../errors.ts';
import { existingClaimOutcome } from './claim-rules.ts';
import { postgresMigrations } from './postgres-migrations.ts';
import { ackTransition, EMPTY_BACKLOG, initialDelivery, nameParts, rowToOutcome, type OutcomeRow } from './ack-rules.ts';
import { rowToRecord, type ExportRow } from './sqlite.ts';
import type {
  AckDelivery,
  AckFileInput,
  AckLookup,
  AckOutcome,
  AckOutcomeDetail,
  ClaimInput,
  ClaimResult,
  ExportFilter,
  ExportRecord,
  HoldState,
  Ledger,
  LedgerEvent,
  OutcomeSettlement,
  RecordAckResult,
  StoredReply,
} from './types.ts';

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
      // Rows uploaded before the ack columns existed get the name and stem acks are matched on.
      const old = await client.query<{ id: number; remote_path: string }>('SELECT id, remote_path FROM exports WHERE remote_path IS NOT NULL AND remote_name IS NULL');
      for (const row of old.rows) {
        const { name, stem } = nameParts(row.remote_path);
        await client.query('UPDATE exports SET remote_name = $1, remote_stem = $2 WHERE id = $3', [name, stem, row.id]);
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
           attempts, lease_owner, lease_expires_at, created_at, updated_at, document_ref, rossum_base_url)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'uploading', 1, $9, $10, $11, $11, $12, $13)
         ON CONFLICT (idempotency_key) DO NOTHING RETURNING id`,
        [
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
          input.documentRef ?? null,
          input.rossumBaseUrl ?? null,
        ],
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
      const outcome = existingClaimOutcome(existing, input.owner, now);
      if (outcome === 'in_progress') {
        await this.addEvent(client, id, 'duplicate_in_progress', { requestId: input.requestId });
        return { outcome: 'in_progress', record: existing };
      }
      if (outcome === 'takeover') {
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
           lease_expires_at = NULL, updated_at = $3, uploaded_at = $3, remote_name = $6, remote_stem = $7 WHERE id = $4 AND lease_owner = $5`,
        [result.remotePath, JSON.stringify(result.reply), now, id, owner, nameParts(result.remotePath).name, nameParts(result.remotePath).stem],
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
    if (filter.state && filter.state.length > 0) add('coalesce(e.ack_state, e.status) = ANY(?)', filter.state);
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

  // ── acknowledgements ──

  async awaitAcks(rules: ReadonlyArray<{ mappingName: string; deadlineMs: number; since: number }>): Promise<number> {
    return this.transaction(async (client) => {
      const now = this.now();
      let adopted = 0;
      for (const rule of rules) {
        const updated = await client.query<{ id: number; ack_deadline_at: number }>(
          `UPDATE exports SET ack_state = 'awaiting_ack', ack_deadline_at = uploaded_at + $1, updated_at = $2
           WHERE mapping_name = $3 AND status = 'uploaded' AND ack_state IS NULL AND uploaded_at >= $4 RETURNING id, ack_deadline_at`,
          [rule.deadlineMs, now, rule.mappingName, rule.since],
        );
        for (const row of updated.rows) await this.addEvent(client, row.id, 'awaiting_ack', { deadlineAt: row.ack_deadline_at });
        adopted += updated.rowCount ?? 0;
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
      params.push(lookup.mappingNames);
      mappings = ` AND e.mapping_name = ANY($3)`;
    }
    return this.select(
      this.pool,
      `e.target = $1 AND ${column} = $2 AND e.status = 'uploaded'${mappings}
       ORDER BY CASE WHEN e.ack_state IS NULL OR e.ack_state IN ('awaiting_ack', 'ack_timeout', 'ack_invalid') THEN 0 ELSE 1 END, e.id DESC LIMIT 1`,
      params,
    );
  }

  async recordAck(input: AckFileInput): Promise<RecordAckResult> {
    return (await this.recordAcks([input]))[0] as RecordAckResult;
  }

  async recordAcks(inputs: readonly AckFileInput[]): Promise<RecordAckResult[]> {
    if (inputs.length === 0) return [];
    // Files in name order: two processes recording overlapping batches take their locks in the same order.
    const order = inputs.map((input, index) => ({ input, index })).sort((a, b) => (a.input.fileName < b.input.fileName ? -1 : a.input.fileName > b.input.fileName ? 1 : 0));
    return this.transaction(async (client) => {
      const results: RecordAckResult[] = new Array<RecordAckResult>(inputs.length);
      for (const { input, index } of order) results[index] = await this.recordOneAck(client, input);
      return results;
    });
  }

  private async recordOneAck(client: pg.PoolClient, input: AckFileInput): Promise<RecordAckResult> {
    const now = this.now();
    const inserted = await client.query<{ id: number }>(
      `INSERT INTO ack_files (source, file_name, sha256, convention, disposition, error, received_at) VALUES ($1, $2, $3, $4, $5, $6, $7)
       ON CONFLICT (source, file_name, sha256) DO NOTHING RETURNING id`,
      [input.source, input.fileName, input.sha256, input.convention, input.disposition, input.error ?? null, now],
    );
    if (inserted.rows.length === 0) {
      const existing = await client.query<{ id: number }>('SELECT id FROM ack_files WHERE source = $1 AND file_name = $2 AND sha256 = $3', [input.source, input.fileName, input.sha256]);
      const ackFileId = existing.rows[0]?.id as number;
      return { ackFileId, alreadyRecorded: true, outcomes: await this.outcomesOfFile(client, ackFileId) };
    }
    const ackFileId = inserted.rows[0]?.id as number;
    for (const entry of input.entries) {
      // Row lock: a concurrent ack or timeout for the same export waits and then sees this decision.
      const locked = await client.query('SELECT id FROM exports WHERE id = $1 FOR UPDATE', [entry.exportId]);
      if (locked.rows.length === 0) continue;
      const record = (await this.select(client, 'e.id = $1', [entry.exportId])) as ExportRecord;
      const previous = record.ackState ?? record.status;
      const { state, kind } = ackTransition(previous, entry.verdict);
      const detail: AckOutcomeDetail = {
        ackFile: input.fileName,
        messages: entry.messages,
        erpReference: entry.erpReference ?? null,
        previousState: previous,
        ...(input.landedAt !== undefined ? { landedAt: input.landedAt } : {}),
      };
      if (state !== null) {
        await client.query('UPDATE exports SET ack_state = $1, ack_at = $2, ack_file = $3, erp_reference = coalesce($4, erp_reference), updated_at = $2 WHERE id = $5', [
          state,
          now,
          input.fileName,
          entry.erpReference ?? null,
          record.id,
        ]);
      }
      await this.addEvent(client, record.id, kind === 'duplicate' ? 'ack_duplicate' : `ack_${kind}`, {
        ackFile: input.fileName,
        verdict: entry.verdict,
        codes: entry.messages.map((m) => m.code).filter(Boolean),
        ...(entry.erpReference ? { erpReference: entry.erpReference } : {}),
      });
      const delivery = initialDelivery(kind, entry, record.holdState);
      await client.query(
        `INSERT INTO ack_outcomes (export_id, ack_file_id, dedupe_key, kind, detail, delivery, next_attempt_at, created_at, delivered_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8) ON CONFLICT (dedupe_key) DO NOTHING`,
        [record.id, ackFileId, `file:${ackFileId}:${entry.index}`, kind, JSON.stringify(detail), delivery, now, delivery === 'pending' ? null : now],
      );
    }
    return { ackFileId, alreadyRecorded: false, outcomes: await this.outcomesOfFile(client, ackFileId) };
  }

  private async outcomesOfFile(client: pg.PoolClient, ackFileId: number): Promise<AckOutcome[]> {
    const result = await client.query<OutcomeRow>('SELECT * FROM ack_outcomes WHERE ack_file_id = $1 ORDER BY id', [ackFileId]);
    return result.rows.map(rowToOutcome);
  }

  async markAckFileArchived(ackFileId: number, archivedTo: string | null): Promise<void> {
    await this.markAckFilesArchived([{ ackFileId, archivedTo }]);
  }

  async markAckFilesArchived(archived: ReadonlyArray<{ ackFileId: number; archivedTo: string | null }>): Promise<void> {
    if (archived.length === 0) return;
    await this.pool.query(
      `UPDATE ack_files SET archived_to = coalesce(a.archived_to, '(deleted)'), archived_at = $3
       FROM unnest($1::bigint[], $2::text[]) AS a (id, archived_to) WHERE ack_files.id = a.id`,
      [archived.map((item) => item.ackFileId), archived.map((item) => item.archivedTo), this.now()],
    );
  }

  async expireAcks(limit = 500, targets?: readonly string[]): Promise<AckOutcome[]> {
    if (targets?.length === 0) return [];
    return this.transaction(async (client) => {
      const now = this.now();
      const due = await client.query<{ id: number; ack_deadline_at: number }>(
        `UPDATE exports SET ack_state = 'ack_timeout', updated_at = $1
         WHERE id IN (SELECT id FROM exports WHERE ack_state = 'awaiting_ack' AND ack_deadline_at < $1 AND ($3::text[] IS NULL OR target = ANY($3::text[]))
                      ORDER BY ack_deadline_at LIMIT $2 FOR UPDATE SKIP LOCKED)
         RETURNING id, ack_deadline_at`,
        [now, limit, targets === undefined ? null : [...targets]],
      );
      const outcomes: AckOutcome[] = [];
      for (const row of due.rows) {
        await this.addEvent(client, row.id, 'ack_timeout', { deadlineAt: row.ack_deadline_at });
        const detail: AckOutcomeDetail = { messages: [], previousState: 'awaiting_ack', deadlineAt: row.ack_deadline_at };
        const inserted = await client.query<OutcomeRow>(
          `INSERT INTO ack_outcomes (export_id, dedupe_key, kind, detail, delivery, next_attempt_at, created_at)
           VALUES ($1, $2, 'timeout', $3, 'pending', $4, $4) ON CONFLICT (dedupe_key) DO NOTHING RETURNING *`,
          [row.id, `timeout:${row.id}:${row.ack_deadline_at}`, JSON.stringify(detail), now],
        );
        if (inserted.rows[0]) outcomes.push(rowToOutcome(inserted.rows[0]));
      }
      return outcomes;
    });
  }

  async claimOutcomes(owner: string, leaseMs: number, limit = 200): Promise<AckOutcome[]> {
    const now = this.now();
    const result = await this.pool.query<OutcomeRow>(
      `UPDATE ack_outcomes SET lease_owner = $1, lease_expires_at = $2, attempts = attempts + 1
       WHERE id IN (SELECT id FROM ack_outcomes WHERE delivery = 'pending' AND next_attempt_at <= $3 AND (lease_expires_at IS NULL OR lease_expires_at < $3)
                    ORDER BY next_attempt_at, id LIMIT $4 FOR UPDATE SKIP LOCKED)
       RETURNING *`,
      [owner, now + leaseMs, now, limit],
    );
    return result.rows.map(rowToOutcome).sort((a, b) => a.nextAttemptAt - b.nextAttemptAt || a.id - b.id);
  }

  async settleOutcome(id: number, owner: string, settlement: OutcomeSettlement): Promise<void> {
    await this.transaction(async (client) => {
      const now = this.now();
      const found = await client.query<{ export_id: number; kind: string }>('SELECT export_id, kind FROM ack_outcomes WHERE id = $1 AND lease_owner = $2 FOR UPDATE', [id, owner]);
      const row = found.rows[0];
      if (!row) throw lostOutcomeLease(id);
      if (settlement.delivery === 'retry') {
        await client.query('UPDATE ack_outcomes SET next_attempt_at = $1, last_error = $2, lease_owner = NULL, lease_expires_at = NULL WHERE id = $3', [settlement.retryAt, settlement.error, id]);
        await this.addEvent(client, row.export_id, 'rossum_delivery_retry', { outcome: row.kind, error: settlement.error, retryAt: settlement.retryAt });
        return;
      }
      const error = settlement.delivery === 'failed' ? settlement.error : null;
      await client.query('UPDATE ack_outcomes SET delivery = $1, delivered_at = $2, last_error = coalesce($3, last_error), lease_owner = NULL, lease_expires_at = NULL WHERE id = $4', [
        settlement.delivery,
        now,
        error,
        id,
      ]);
      if (settlement.delivery !== 'not_needed') {
        await this.addEvent(client, row.export_id, settlement.delivery === 'failed' ? 'rossum_delivery_failed' : 'rossum_told', {
          outcome: row.kind,
          via: settlement.delivery === 'by_hold' ? 'held export reply' : 'api',
          ...(error ? { error } : {}),
          ...(settlement.delivery !== 'failed' && settlement.note ? { note: settlement.note } : {}),
        });
      }
    });
  }

  async outcomes(exportId: number): Promise<AckOutcome[]> {
    const result = await this.pool.query<OutcomeRow>('SELECT * FROM ack_outcomes WHERE export_id = $1 ORDER BY id', [exportId]);
    return result.rows.map(rowToOutcome);
  }

  async outcomeBacklog(): Promise<Record<AckDelivery, number>> {
    const result = await this.pool.query<{ delivery: AckDelivery; n: string }>('SELECT delivery, count(*) AS n FROM ack_outcomes GROUP BY delivery');
    const backlog = { ...EMPTY_BACKLOG };
    for (const row of result.rows) backlog[row.delivery] = Number(row.n);
    return backlog;
  }

  async startHold(exportId: number, until: number): Promise<void> {
    const changed = await this.pool.query(`UPDATE exports SET hold_until = $1, hold_state = 'pending', updated_at = $2 WHERE id = $3 AND hold_state IS NULL`, [until, this.now(), exportId]);
    if (changed.rowCount === 1) await this.addEvent(this.pool, exportId, 'hold_started', { until });
  }

  async moveHold(exportId: number, from: readonly HoldState[], to: HoldState): Promise<boolean> {
    const changed = await this.pool.query('UPDATE exports SET hold_state = $1, updated_at = $2 WHERE id = $3 AND hold_state = ANY($4)', [to, this.now(), exportId, from]);
    if (changed.rowCount === 1) await this.addEvent(this.pool, exportId, `hold_${to}`, {});
    return changed.rowCount === 1;
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

function lostOutcomeLease(id: number): BridgeError {
  return new BridgeError('LEDGER_LEASE_LOST', `Ack outcome ${id} was taken over by another process before this one finished`, { permanent: false });
}

function lostLease(id: number): BridgeError {
  return new BridgeError('LEDGER_LEASE_LOST', `Export ${id} was taken over by another worker before this one finished`, { permanent: false });
}
