/**
 * The little a ledger operation needs from a database. Operations are written once against it with
 * `?` placeholders; each driver maps them to its library, and the `Dialect` holds every SQL
 * difference between the two databases.
 */
export interface Queries {
  /** Runs a statement; resolves to the number of rows it changed. */
  run(sql: string, params?: readonly unknown[]): Promise<number>;
  get<Row>(sql: string, params?: readonly unknown[]): Promise<Row | undefined>;
  all<Row>(sql: string, params?: readonly unknown[]): Promise<Row[]>;
}

export interface Driver extends Queries {
  readonly dialect: Dialect;
  /**
   * Runs `work` atomically. SQLite: a savepoint inside the group commit of this event-loop turn
   * (resolves after that COMMIT). PostgreSQL: BEGIN … COMMIT on one pooled connection.
   */
  transaction<T>(work: (tx: Queries) => Promise<T>): Promise<T>;
  /** Proves the store accepts writes, changing nothing. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

export interface Dialect {
  readonly name: 'sqlite' | 'postgres';
  /** `column IN (values)`: pushes what it needs onto `params` and returns the SQL. */
  inList(column: string, values: readonly unknown[], params: unknown[]): string;
  /** Appended to a SELECT whose rows the transaction will change: others wait for it. */
  readonly forUpdate: string;
  /** Appended to a SELECT that leases work: rows another transaction holds are passed over. */
  readonly skipLocked: string;
  /** The export's request ids, newline-separated, for `SELECT … FROM exports e`. */
  readonly requestIdsOf: string;
  /** Column types in migrations. */
  readonly ddl: { readonly id: string; readonly big: string; readonly blob: string };
}
