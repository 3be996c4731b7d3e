import pg from 'pg';
import { BridgeError } from '../errors.ts';
import { nameParts } from './ack-rules.ts';
import { postgresDialect } from './dialects.ts';
import type { Driver, Queries } from './driver.ts';
import { NAME_UPLOAD, postgresMigrations, UNNAMED_UPLOADS } from './migrations.ts';
import { SqlLedger } from './sql-ledger.ts';

const MIGRATION_LOCK = 7_261_100_001;

/** BIGINT columns hold epoch ms and ids: safe as JS numbers. */
const types = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === 20
      ? (value: string) => Number(value)
      : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
};

/** For several replicas: the unique idempotency key and row locks decide who uploads. */
export class PostgresLedger extends SqlLedger {
  declare readonly kind: 'postgres';

  static async connect(url: string, options: { now?: () => number; max?: number } = {}): Promise<PostgresLedger> {
    return new PostgresLedger(await PostgresDriver.connect(url, options.max ?? 10), options.now);
  }
}

/** `?` placeholders → `$1, $2, …`, rewritten once per statement text. */
class PostgresQueries implements Queries {
  constructor(
    protected readonly target: pg.Pool | pg.PoolClient,
    protected readonly texts: Map<string, string>,
  ) {}

  protected text(sql: string): string {
    let text = this.texts.get(sql);
    if (text === undefined) {
      let position = 0;
      text = sql.replace(/\?/g, () => `$${++position}`);
      this.texts.set(sql, text);
    }
    return text;
  }

  async run(sql: string, params: readonly unknown[] = []): Promise<number> {
    return (await this.target.query(this.text(sql), params as unknown[])).rowCount ?? 0;
  }

  async get<Row>(sql: string, params: readonly unknown[] = []): Promise<Row | undefined> {
    return (await this.target.query(this.text(sql), params as unknown[])).rows[0] as Row | undefined;
  }

  async all<Row>(sql: string, params: readonly unknown[] = []): Promise<Row[]> {
    return (await this.target.query(this.text(sql), params as unknown[])).rows as Row[];
  }
}

export class PostgresDriver extends PostgresQueries implements Driver {
  readonly dialect = postgresDialect;

  private constructor(private readonly pool: pg.Pool) {
    super(pool, new Map());
  }

  static async connect(url: string, max: number): Promise<PostgresDriver> {
    const pool = new pg.Pool({ connectionString: url, max, types });
    // An idle client's error must not crash the process; the next query reconnects.
    pool.on('error', () => {});
    const driver = new PostgresDriver(pool);
    try {
      await driver.transaction((tx) => driver.migrate(tx));
    } catch (error) {
      await pool.end().catch(() => {});
      throw new BridgeError('LEDGER_UNAVAILABLE', `Cannot open the PostgreSQL ledger: ${(error as Error).message}`, {
        permanent: false,
        cause: error,
      });
    }
    return driver;
  }

  /** In one transaction under an advisory lock, so racing replicas migrate once. */
  private async migrate(tx: Queries): Promise<void> {
    await tx.get('SELECT pg_advisory_xact_lock(?)', [MIGRATION_LOCK]);
    await tx.run('CREATE TABLE IF NOT EXISTS ledger_schema (version INTEGER NOT NULL)');
    const stored = await tx.get<{ version: number }>('SELECT version FROM ledger_schema');
    if (!stored) await tx.run('INSERT INTO ledger_schema (version) VALUES (0)');
    let current = stored?.version ?? 0;
    if (current > postgresMigrations.length) {
      throw new Error(
        `ledger schema version ${current} is newer than this program knows (${postgresMigrations.length}); upgrade the bridge`,
      );
    }
    for (; current < postgresMigrations.length; current++) {
      // Several statements in one text: sent as a simple query, without parameters.
      await tx.run(postgresMigrations[current] as string);
      await tx.run('UPDATE ledger_schema SET version = ?', [current + 1]);
    }
    for (const row of await tx.all<{ id: number; remote_path: string }>(UNNAMED_UPLOADS)) {
      const { name, stem } = nameParts(row.remote_path);
      await tx.run(NAME_UPLOAD, [name, stem, row.id]);
    }
  }

  async transaction<T>(work: (tx: Queries) => Promise<T>): Promise<T> {
    const { client, lost } = await this.checkOut();
    try {
      await client.query('BEGIN');
      const result = await work(new PostgresQueries(client, this.texts));
      await client.query('COMMIT');
      return result;
    } catch (error) {
      if (!lost()) await client.query('ROLLBACK').catch(() => {});
      throw error;
    } finally {
      // A client whose connection died is destroyed, not handed to the next transaction.
      client.release(lost());
    }
  }

  /**
   * A pooled client with an 'error' listener from the moment the pool hands it over. While checked out,
   * the pool no longer listens for its errors, and the hand-over happens inside the socket read that
   * finished the previous query: a server shutting down (57P01) that wrote its goodbye into the same
   * read would find no listener (and end the process) if the listener were added after an `await`.
   * The listener stays until the client is released; the running query rejects anyway.
   */
  private checkOut(): Promise<{ client: pg.PoolClient; lost: () => Error | undefined }> {
    return new Promise((resolveCheckOut, rejectCheckOut) => {
      this.pool.connect((error, client, release) => {
        if (error || !client) {
          rejectCheckOut(error ?? new Error('the PostgreSQL pool handed out no client'));
          return;
        }
        let lost: Error | undefined;
        const onError = (clientError: Error): void => {
          lost ??= clientError;
        };
        client.on('error', onError);
        const pooledRelease = release;
        client.release = (destroy?: boolean | Error) => {
          client.off('error', onError);
          pooledRelease(destroy);
        };
        resolveCheckOut({ client, lost: () => lost });
      });
    });
  }

  async ping(): Promise<void> {
    await this.transaction((tx) => tx.get('SELECT 1 FROM ledger_schema FOR UPDATE'));
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}
