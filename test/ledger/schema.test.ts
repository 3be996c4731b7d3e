import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { openLedger } from '../../src/ledger/index.ts';
import { postgresMigrations, sqliteMigrations } from '../../src/ledger/migrations.ts';
import { usePostgres } from '../support/postgres.ts';

/** The SQL the released versions ran, copied from them: a shipped migration must never change. */
const shipped = JSON.parse(
  readFileSync(join(import.meta.dirname, '../fixtures/ledger/shipped-migrations.json'), 'utf8'),
) as {
  sqlite: string[];
  postgres: string[];
};

describe('ledger migrations', () => {
  it('render, per dialect, exactly the SQL that shipped, version by version', () => {
    expect(sqliteMigrations.slice(0, shipped.sqlite.length)).toEqual(shipped.sqlite);
    expect(postgresMigrations.slice(0, shipped.postgres.length)).toEqual(shipped.postgres);
    expect(sqliteMigrations).toHaveLength(postgresMigrations.length);
  });
});

describe('postgres ledger upgrade', () => {
  const postgres = usePostgres();

  it('a cluster migrated by an earlier version reaches the current schema, and its old uploads can be matched and re-claimed', async () => {
    const admin = new pg.Client({ connectionString: postgres().url });
    await admin.connect();
    await admin.query('CREATE DATABASE ledger_v2');
    await admin.end();
    const url = postgres().url.replace(/\/postgres$/, '/ledger_v2');
    const old = new pg.Client({ connectionString: url });
    await old.connect();
    for (const sql of shipped.postgres.slice(0, 2)) await old.query(sql);
    await old.query(
      'CREATE TABLE ledger_schema (version INTEGER NOT NULL); INSERT INTO ledger_schema (version) VALUES (2)',
    );
    await old.query(
      `INSERT INTO exports (idempotency_key, annotation_id, mapping_name, mapping_hash, target, planned_path, remote_path, sha256, bytes, status, created_at, updated_at, uploaded_at)
       VALUES ('k', 1, 'm', 'h', 'erp', 'a/B_1.xml', 'a/B_1.xml', 's', 1, 'uploaded', 1, 1, 1)`,
    );
    await old.end();

    const ledger = await openLedger(url);
    expect(await ledger.findExportForAck({ target: 'erp', by: 'stem', value: 'B_1' })).toMatchObject({
      remotePath: 'a/B_1.xml',
      ackState: null,
    });
    const again = await ledger.claim({
      idempotencyKey: 'k',
      annotationId: 1,
      requestId: 'r-2',
      mappingName: 'm',
      mappingHash: 'h',
      target: 'erp',
      plannedPath: 'a/B_1.xml',
      sha256: 's',
      bytes: 1,
      owner: 'w',
      leaseMs: 60_000,
    });
    expect(again).toMatchObject({ outcome: 'done', record: { requestIds: ['r-2'], status: 'uploaded' } });
    await ledger.close();

    const check = new pg.Client({ connectionString: url });
    await check.connect();
    expect((await check.query('SELECT version FROM ledger_schema')).rows).toEqual([
      { version: postgresMigrations.length },
    ]);
    const indexes = (
      await check.query(`SELECT indexname FROM pg_indexes WHERE tablename = 'exports' AND indexname = 'exports_remote'`)
    ).rows;
    expect(indexes).toEqual([]); // migration 4 ran
    await check.end();
  });
});
