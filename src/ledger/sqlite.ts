import { chmodSync, closeSync, mkdirSync, openSync, statSync } from 'node:fs';
import { dirname, parse } from 'node:path';
import Database from 'better-sqlite3';
import { BridgeError } from '../errors.ts';
import { nameParts } from './ack-rules.ts';
import { sqliteDialect } from './dialects.ts';
import type { Driver, Queries } from './driver.ts';
import { NAME_UPLOAD, sqliteMigrations, UNNAMED_UPLOADS } from './migrations.ts';
import { SqlLedger } from './sql-ledger.ts';

export interface SqliteLedgerOptions {
  /** File path, or `:memory:`. */
  path: string;
  /** `full` fsyncs the WAL at every commit (one fsync per group commit); `normal` (default) at checkpoints. */
  synchronous?: 'normal' | 'full';
  now?: () => number;
}

/** The embedded default: one file, WAL, owner-only permissions. */
export class SqliteLedger extends SqlLedger {
  declare readonly kind: 'sqlite';
  readonly db: Database.Database;

  constructor(options: SqliteLedgerOptions) {
    const driver = new SqliteDriver(options);
    super(driver, options.now);
    this.db = driver.db;
  }
}

interface QueuedWork {
  work: (tx: Queries) => Promise<unknown>;
  settle: (error: Error | undefined, value?: unknown) => void;
}

/** better-sqlite3 is synchronous: each query runs at once, and the promises only keep one shape for both drivers. */
export class SqliteDriver implements Driver {
  readonly dialect = sqliteDialect;
  readonly db: Database.Database;
  private readonly statements = new Map<string, Database.Statement>();
  /** Transactions waiting for the group commit at the end of this event-loop turn. */
  private queued: QueuedWork[] = [];
  private flushScheduled = false;
  /** The batch being committed; the next one starts after it. */
  private committing: Promise<void> = Promise.resolve();

  constructor(options: SqliteLedgerOptions) {
    if (options.path !== ':memory:') createOwnerOnly(options.path);
    try {
      this.db = new Database(options.path);
      this.db.pragma('busy_timeout = 5000');
      this.db.pragma('journal_mode = WAL');
      this.db.pragma(`synchronous = ${options.synchronous === 'full' ? 'FULL' : 'NORMAL'}`);
      this.db.pragma('foreign_keys = ON');
      this.migrate();
    } catch (error) {
      throw new BridgeError(
        'LEDGER_UNAVAILABLE',
        `Cannot open the SQLite ledger at ${options.path}: ${(error as Error).message}`,
        {
          permanent: false,
          cause: error,
        },
      );
    }
  }

  private migrate(): void {
    // Read the version under the write lock: processes starting together (serve workers, acks) migrate once.
    const apply = this.db.transaction(() => {
      const current = this.db.pragma('user_version', { simple: true }) as number;
      if (current > sqliteMigrations.length) {
        throw new Error(
          `ledger schema version ${current} is newer than this program knows (${sqliteMigrations.length}); upgrade the bridge`,
        );
      }
      for (let version = current; version < sqliteMigrations.length; version++) {
        this.db.exec(sqliteMigrations[version] as string);
        this.db.pragma(`user_version = ${version + 1}`);
      }
      const name = this.db.prepare(NAME_UPLOAD);
      for (const row of this.db.prepare(UNNAMED_UPLOADS).all() as Array<{ id: number; remote_path: string }>) {
        const { name: remoteName, stem } = nameParts(row.remote_path);
        name.run(remoteName, stem, row.id);
      }
    });
    apply.immediate();
  }

  /** Prepared once: the hot path runs the same few statements for every export. */
  private statement(sql: string): Database.Statement {
    let statement = this.statements.get(sql);
    if (!statement) {
      statement = this.db.prepare(sql);
      this.statements.set(sql, statement);
    }
    return statement;
  }

  async run(sql: string, params: readonly unknown[] = []): Promise<number> {
    return this.statement(sql).run(...params).changes;
  }

  async get<Row>(sql: string, params: readonly unknown[] = []): Promise<Row | undefined> {
    return this.statement(sql).get(...params) as Row | undefined;
  }

  async all<Row>(sql: string, params: readonly unknown[] = []): Promise<Row[]> {
    return this.statement(sql).all(...params) as Row[];
  }

  /**
   * Group commit: the transactions asked for during one event-loop turn run together on `setImmediate`,
   * each in its own savepoint inside one IMMEDIATE transaction, and every caller hears its result
   * only after that COMMIT. Concurrent claims and completions then append the index pages they
   * share to the WAL once instead of once each, and the write lock is held only while the batch runs.
   */
  transaction<T>(work: (tx: Queries) => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.queued.push({ work, settle: (error, value) => (error ? reject(error) : resolve(value as T)) });
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        setImmediate(this.flush);
      }
    });
  }

  private readonly flush = (): Promise<void> => {
    this.flushScheduled = false;
    const batch = this.queued;
    this.queued = [];
    this.committing = this.committing.then(() => this.commit(batch));
    return this.committing;
  };

  private async commit(batch: readonly QueuedWork[]): Promise<void> {
    if (batch.length === 0) return;
    const outcomes: Array<{ error?: Error; value?: unknown }> = [];
    try {
      this.statement('BEGIN IMMEDIATE').run();
      for (const { work } of batch) {
        this.statement('SAVEPOINT ledger_write').run();
        try {
          outcomes.push({ value: await work(this) });
          this.statement('RELEASE ledger_write').run();
        } catch (error) {
          this.statement('ROLLBACK TO ledger_write').run();
          this.statement('RELEASE ledger_write').run();
          outcomes.push({ error: error as Error });
        }
      }
      this.statement('COMMIT').run();
    } catch (error) {
      if (this.db.inTransaction) this.db.exec('ROLLBACK');
      for (const { settle } of batch) settle(error as Error);
      return;
    }
    for (const [index, { settle }] of batch.entries()) settle(outcomes[index]?.error, outcomes[index]?.value);
  }

  async ping(): Promise<void> {
    // The group commit's BEGIN IMMEDIATE takes the write lock: proves the file is writable without changing data.
    await this.transaction(async () => undefined);
  }

  async close(): Promise<void> {
    if (!this.db.open) return;
    await this.flush();
    this.db.close();
  }
}

/**
 * Owner-only before SQLite opens it: the ledger names customers' files and hosts. A folder that
 * already exists is tightened too, unless it is shared (sticky like /tmp, someone else's, or `/`).
 */
function createOwnerOnly(path: string): void {
  const folder = dirname(path);
  mkdirSync(folder, { recursive: true, mode: 0o700 });
  const stats = statSync(folder);
  const shared = (stats.mode & 0o1000) !== 0 || stats.uid !== process.getuid?.() || parse(folder).root === folder;
  if (!shared && (stats.mode & 0o077) !== 0) chmodSync(folder, stats.mode & 0o700);
  closeSync(openSync(path, 'a', 0o600));
  chmodSync(path, 0o600);
}
