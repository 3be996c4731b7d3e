import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ConsoleActionRefused,
  consoleLedgerOf,
  exportPageQuery,
  openLedger,
  SqliteLedger,
  type ConsoleExportFilter,
  type Ledger,
} from '../../src/ledger/index.ts';
import { usePostgres } from '../support/postgres.ts';
import { seedExports } from './seed.ts';

const START = Date.UTC(2026, 10, 1);
const STEP = 60_000;
const ROWS = 3000;

let sqlite: SqliteLedger;

beforeAll(() => {
  sqlite = new SqliteLedger({ path: join(mkdtempSync(join(tmpdir(), 'rsb-console-ledger-')), 'ledger.db') });
  seedExports(sqlite.db, ROWS, { start: START, stepMs: STEP });
});

afterAll(async () => {
  await sqlite?.close();
});

/** Every page of a filter, following the cursors. */
async function allPages(ledger: Ledger, filter: ConsoleExportFilter, pageSize: number): Promise<number[]> {
  const view = consoleLedgerOf(ledger);
  const ids: number[] = [];
  let after = null;
  for (let guard = 0; guard < 10_000; guard++) {
    const page = await view.listExports(filter, after, pageSize);
    ids.push(...page.rows.map((row) => row.id));
    if (!page.next) return ids;
    after = page.next;
  }
  throw new Error('paging did not end');
}

const FILTERS: Record<string, ConsoleExportFilter> = {
  everything: {},
  state: { state: 'rejected' },
  mapping: { mappingName: 'datev-csv' },
  target: { target: 'archive' },
  dates: { createdFrom: START + 500 * STEP, createdTo: START + 900 * STEP },
  combined: {
    state: 'accepted',
    mappingName: 'generic-xml',
    target: 'erp',
    createdFrom: START + 100 * STEP,
    createdTo: START + 2500 * STEP,
  },
  searchDocument: { search: 'INV-100042' },
  searchFile: { search: 'INV-100043.xml' },
  searchAnnotation: { search: String(2_000_044) },
};

describe('console ledger operations', () => {
  it('keyset pages return each matching export exactly once, newest first, whatever the page size', async () => {
    const rows = sqlite.db
      .prepare('SELECT id, created_at, mapping_name, target, coalesce(ack_state, status) AS state FROM exports')
      .all() as Array<{
      id: number;
      created_at: number;
      mapping_name: string;
      target: string;
      state: string;
    }>;
    const expected = (keep: (row: (typeof rows)[number]) => boolean): number[] =>
      rows
        .filter(keep)
        .sort((a, b) => b.created_at - a.created_at || b.id - a.id)
        .map((row) => row.id);
    expect(await allPages(sqlite, FILTERS.everything as ConsoleExportFilter, 97)).toEqual(expected(() => true));
    expect(await allPages(sqlite, FILTERS.state as ConsoleExportFilter, 50)).toEqual(
      expected((row) => row.state === 'rejected'),
    );
    expect(await allPages(sqlite, FILTERS.combined as ConsoleExportFilter, 40)).toEqual(
      expected(
        (row) =>
          row.state === 'accepted' &&
          row.mapping_name === 'generic-xml' &&
          row.target === 'erp' &&
          row.created_at >= START + 100 * STEP &&
          row.created_at < START + 2500 * STEP,
      ),
    );
    expect((await allPages(sqlite, FILTERS.dates as ConsoleExportFilter, 33)).length).toBe(400);
  });

  it('search finds an export by document number, file name or annotation id, exactly', async () => {
    const view = consoleLedgerOf(sqlite);
    expect((await view.listExports({ search: 'INV-100042' }, null, 10)).rows.map((row) => row.documentRef)).toEqual([
      'INV-100042',
    ]);
    const byFile = (await view.listExports({ search: 'INV-100043.xml' }, null, 10)).rows;
    expect(byFile.every((row) => row.fileName === 'INV-100043.xml')).toBe(true);
    expect((await view.listExports({ search: '2000044' }, null, 10)).rows.map((row) => row.annotationId)).toEqual([
      2_000_044,
    ]);
    expect((await view.listExports({ search: 'INV-10004' }, null, 10)).rows).toEqual([]);
  });

  it('no list query scans the exports table (EXPLAIN QUERY PLAN), on the first page or a later one', () => {
    for (const [name, filter] of Object.entries(FILTERS)) {
      for (const after of [null, { createdAt: START + 1000 * STEP, id: 1000 }]) {
        const { sql, params } = exportPageQuery(filter, after, 50);
        const plan = (sqlite.db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...params) as Array<{ detail: string }>).map(
          (step) => step.detail,
        );
        const scans = plan.filter((step) => /^SCAN /.test(step) && !/USING (COVERING )?INDEX/.test(step));
        expect(scans, `${name}: ${plan.join(' | ')}`).toEqual([]);
        // Newest first comes from the index order, except for a search (a handful of rows sorted).
        if (!filter.search) expect(plan.join(' | '), name).not.toContain('TEMP B-TREE');
      }
    }
  });

  it('the overview counts by hour, reason and delivery', async () => {
    const overview = await consoleLedgerOf(sqlite).overview(START);
    expect(overview.exportsPerHour.reduce((sum, hour) => sum + hour.count, 0)).toBe(ROWS);
    expect(overview.exportsPerHour[0]).toEqual({ hour: START, count: 60 });
    const failed = sqlite.db
      .prepare(
        `SELECT count(*) AS n FROM exports WHERE status IN ('failed', 'retryable') OR ack_state IN ('rejected', 'ack_timeout', 'ack_invalid')`,
      )
      .get() as { n: number };
    expect(overview.failuresByReason.reduce((sum, reason) => sum + reason.count, 0)).toBe(failed.n);
    const pending = sqlite.db.prepare(`SELECT count(*) AS n FROM ack_outcomes WHERE delivery = 'pending'`).get() as {
      n: number;
    };
    expect(overview.pendingDeliveries.reduce((sum, kind) => sum + kind.count, 0)).toBe(pending.n);
    expect(overview.ackLatencyPerHour.every((hour) => hour.averageMs >= 30_000 && hour.maxMs <= 630_000)).toBe(true);
  });

  it('re-delivering an outcome queues it now and records who asked; a delivered one is refused', async () => {
    const view = consoleLedgerOf(sqlite);
    const pending = sqlite.db
      .prepare(`SELECT id, export_id FROM ack_outcomes WHERE delivery = 'pending' ORDER BY id LIMIT 1`)
      .get() as { id: number; export_id: number };
    const delivered = sqlite.db
      .prepare(`SELECT id FROM ack_outcomes WHERE delivery = 'delivered' ORDER BY id LIMIT 1`)
      .get() as { id: number };
    sqlite.db
      .prepare('UPDATE ack_outcomes SET delivery = ?, next_attempt_at = ?, last_error = ? WHERE id = ?')
      .run('failed', START + 99 * 86_400_000, 'HTTP 400', pending.id);
    const before = await view.changeMark();
    await view.redeliverOutcome(pending.id, 'olga');
    const [outcome] = (await sqlite.outcomes(pending.export_id)).filter((candidate) => candidate.id === pending.id);
    expect(outcome?.delivery).toBe('pending');
    expect(outcome?.nextAttemptAt).toBeLessThanOrEqual(Date.now());
    expect((await sqlite.events(pending.export_id)).at(-1)).toMatchObject({
      kind: 'console_redeliver',
      detail: { by: 'olga', outcomeId: pending.id, previousDelivery: 'failed' },
    });
    expect(await view.actionsOfExport(pending.export_id)).toEqual([
      expect.objectContaining({ actor: 'olga', action: 'redeliver' }),
    ]);
    expect(await view.changeMark()).toBeGreaterThan(before);
    await expect(view.redeliverOutcome(delivered.id, 'olga')).rejects.toBeInstanceOf(ConsoleActionRefused);
    await expect(view.redeliverOutcome(999_999_999, 'olga')).rejects.toMatchObject({ reason: 'not_found' });
  });
});

describe('console ledger operations on PostgreSQL', () => {
  const postgres = usePostgres();
  let ledger: Ledger;
  beforeAll(async () => {
    ledger = await openLedger(postgres().url);
  });
  afterAll(async () => {
    await ledger?.close();
  });

  it('pages, searches, counts and records actions the same way', async () => {
    const now = Date.now();
    for (let i = 0; i < 25; i++) {
      const claim = await ledger.claim({
        idempotencyKey: `pg-${i}`,
        annotationId: 900 + i,
        requestId: `r-${i}`,
        mappingName: i % 2 ? 'a' : 'b',
        mappingHash: 'h',
        target: 'erp',
        plannedPath: `F-${i}.xml`,
        sha256: 's',
        bytes: 10,
        owner: 'test',
        leaseMs: 60_000,
        documentRef: `DOC-${i}`,
      });
      await ledger.complete(claim.record.id, 'test', {
        remotePath: `F-${i}.xml`,
        reply: { statusCode: 200, body: {} },
      });
    }
    const view = consoleLedgerOf(ledger);
    expect((await allPages(ledger, {}, 7)).length).toBe(25);
    expect((await allPages(ledger, { mappingName: 'a', state: 'uploaded' }, 4)).length).toBe(12);
    expect((await view.listExports({ search: 'DOC-3' }, null, 10)).rows.map((row) => row.annotationId)).toEqual([903]);
    expect((await view.listExports({ search: 'F-4.xml' }, null, 10)).rows.map((row) => row.annotationId)).toEqual([
      904,
    ]);
    expect((await view.listExports({ search: '905' }, null, 10)).rows.map((row) => row.documentRef)).toEqual(['DOC-5']);
    expect(await view.filterChoices()).toEqual({ mappings: ['a', 'b'], targets: ['erp'] });
    const overview = await view.overview(now - 3_600_000);
    expect(overview.exportsPerHour.reduce((sum, hour) => sum + hour.count, 0)).toBe(25);
    const recorded = await ledger.recordAck({
      source: 'erp',
      fileName: 'nobody.csv',
      sha256: 'e'.repeat(64),
      convention: 'csv',
      disposition: 'unmatched',
      entries: [],
    });
    expect((await view.openAckFiles(5)).map((file) => file.fileName)).toEqual(['nobody.csv']);
    await view.markAckFileHandled(recorded.ackFileId, 'olga', 'checked');
    expect(await view.openAckFiles(5)).toEqual([]);
    expect(await view.ackFile(recorded.ackFileId)).toMatchObject({ handledBy: 'olga' });
    await expect(view.markAckFileHandled(recorded.ackFileId, 'olga', 'again')).rejects.toMatchObject({
      reason: 'conflict',
    });
    expect(await view.changeMark()).toBeGreaterThan(0);
  });

  it('no list query reads the exports table sequentially on 50,000 analysed rows (EXPLAIN)', async () => {
    const admin = new pg.Client({ connectionString: postgres().url });
    await admin.connect();
    await admin.query('CREATE DATABASE console_plans');
    await admin.end();
    const url = postgres().url.replace(/\/postgres$/, '/console_plans');
    await (await openLedger(url)).close();
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      await client.query(`INSERT INTO exports (idempotency_key, annotation_id, mapping_name, mapping_hash, target, planned_path, remote_path, remote_name, sha256, bytes, status,
          created_at, updated_at, document_ref, ack_state)
        SELECT 'k' || i, 3000000 + i, (ARRAY['a', 'b', 'c'])[1 + i % 3], 'h', (ARRAY['erp', 'archive'])[1 + i % 2], 'F-' || i || '.xml', 'F-' || i || '.xml', 'F-' || i || '.xml',
          's', 10, 'uploaded', ${START} + i * 1000, ${START} + i * 1000, 'DOC-' || i, (ARRAY['accepted', 'accepted', 'accepted', 'awaiting_ack', 'rejected', NULL])[1 + i % 6]
        FROM generate_series(1, 50000) AS i`);
      await client.query('ANALYZE exports');
      const filters: Record<string, ConsoleExportFilter> = {
        ...FILTERS,
        dates: { createdFrom: START + 1_000_000, createdTo: START + 2_000_000 },
        rare: { state: 'ack_invalid' },
      };
      for (const [name, filter] of Object.entries(filters)) {
        for (const after of [null, { createdAt: START + 30_000_000, id: 30_000 }]) {
          const { sql, params } = exportPageQuery(filter, after, 50);
          let placeholder = 0;
          const plan = (await client.query(`EXPLAIN ${sql.replace(/\?/g, () => `$${++placeholder}`)}`, params)).rows
            .map((row: Record<string, string>) => row['QUERY PLAN'])
            .join('\n');
          expect(plan, `${name}:\n${plan}`).not.toMatch(/Seq Scan on exports/);
        }
      }
    } finally {
      await client.end();
    }
  });
});
