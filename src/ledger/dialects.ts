import type { Dialect } from './driver.ts';

/** Every SQL difference between the two ledgers, side by side. */
export const sqliteDialect: Dialect = {
  name: 'sqlite',
  inList: (column, values, params) => {
    params.push(...values);
    return `${column} IN (${values.map(() => '?').join(', ')})`;
  },
  // One writer at a time (BEGIN IMMEDIATE): nothing to lock or skip.
  forUpdate: '',
  skipLocked: '',
  requestIdsOf: `(SELECT group_concat(request_id, char(10)) FROM export_requests r WHERE r.export_id = e.id)`,
  ddl: { id: 'INTEGER PRIMARY KEY AUTOINCREMENT', big: 'INTEGER', blob: 'BLOB' },
};

export const postgresDialect: Dialect = {
  name: 'postgres',
  // One array parameter: the statement text stays the same whatever the list's length.
  inList: (column, values, params) => {
    params.push(values);
    return `${column} = ANY(?)`;
  },
  forUpdate: ' FOR UPDATE',
  skipLocked: ' FOR UPDATE SKIP LOCKED',
  requestIdsOf: `(SELECT string_agg(request_id, E'\\n' ORDER BY received_at) FROM export_requests r WHERE r.export_id = e.id)`,
  ddl: { id: 'BIGSERIAL PRIMARY KEY', big: 'BIGINT', blob: 'BYTEA' },
};
