/**
 * Console list speed over a big ledger (issue 14): 100,000 exports seeded into a SQLite ledger, the
 * bridge started on it with the console on, and each page fetched over HTTP by a signed-in session —
 * the whole path (cookie check, ledger query, template) that an operator's browser waits for.
 * Target: the first page and a filtered page each answer in < 200 ms. Prints figures; asserts nothing.
 *
 *   npm run bench:console
 *   BENCH_N=20000 BENCH_RUNS=50 npm run bench:console
 */
import { mkdtempSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { hashPassword } from '../src/console/index.ts';
import { bridgeConfigSchema } from '../src/config/index.ts';
import { consoleLedgerOf, SqliteLedger, type ConsoleExportFilter } from '../src/ledger/index.ts';
import { createLogger } from '../src/observability/logger.ts';
import { startBridge } from '../src/process/index.ts';
import { repoRoot } from '../test/support/bridge.ts';
import { Session } from '../test/console/harness.ts';
import { seedExports } from '../test/console/seed.ts';

const N = Number(process.env.BENCH_N ?? 100_000);
const RUNS = Number(process.env.BENCH_RUNS ?? 30);
const STEP_MS = 2_000;
const PASSWORD = 'bench-password-123';

const dir = mkdtempSync(join(tmpdir(), 'rsb-bench-console-'));
const ledgerPath = join(dir, 'ledger.db');
const seeding = performance.now();
const seeded = new SqliteLedger({ path: ledgerPath });
const start = Date.now() - N * STEP_MS;
seedExports(seeded.db, N, { start, stepMs: STEP_MS });
await seeded.close();
console.log(`seeded ${N.toLocaleString('en')} exports in ${Math.round(performance.now() - seeding)} ms`);

const config = bridgeConfigSchema.parse({
  server: { host: '127.0.0.1', port: 0, secret: 'bench-hook-secret-0123456789abcdef' },
  ledger: { url: `sqlite:${ledgerPath}` },
  mappingsDir: join(repoRoot, 'mappings'),
  targets: { erp: { url: `file://${join(dir, 'out')}` }, archive: { url: `file://${join(dir, 'archive')}` } },
  routes: [{ mapping: 'generic-xml', target: 'erp' }],
  console: {
    enabled: true,
    users: [{ name: 'bench', passwordHash: await hashPassword(PASSWORD), role: 'viewer' }],
    sessionSecret: 'bench-session-secret-0123456789abcdef',
  },
});
const bridge = await startBridge(config, { logger: createLogger({ level: 'warn' }) });
const session = new Session(`${new URL(bridge.url).origin}/console`);
if ((await session.signIn('bench', PASSWORD)).status !== 303) throw new Error('bench sign-in failed');

const deepCursor = `${start + 10_000 * STEP_MS}.${10_001}`;
const day = new Date(start + Math.floor(N / 2) * STEP_MS).toISOString().slice(0, 10);
const pages: Array<[string, string]> = [
  ['first page (no filter)', '/exports'],
  ['filtered: state = rejected', '/exports?state=rejected'],
  ['filtered: mapping = datev-csv', '/exports?mapping=datev-csv'],
  ['filtered: target + state + mapping', '/exports?target=archive&state=accepted&mapping=sap-idoc'],
  [`filtered: one day (${day})`, `/exports?from=${day}&to=${day}`],
  ['search: document number', `/exports?q=INV-${100000 + Math.floor(N / 3)}`],
  ['deep page (after row ~90 %)', `/exports?after=${deepCursor}`],
  ['deep page, filtered (state = accepted)', `/exports?state=accepted&after=${deepCursor}`],
  ['live refresh rows (first page)', '/exports/rows'],
  ['overview (24 h of exports, cached 10 s)', '/overview'],
];

const quantile = (sorted: number[], q: number): number =>
  sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN;
console.log(
  `load average before: ${loadavg()
    .map((value) => value.toFixed(2))
    .join(' ')}`,
);
console.log(
  `${'page'.padEnd(42)} ${'median'.padStart(8)} ${'p95'.padStart(8)} ${'max'.padStart(8)}   (ms over ${RUNS} runs, HTTP incl. rendering)`,
);
for (const [name, path] of pages) {
  for (let warm = 0; warm < 3; warm++) await (await session.request(path)).arrayBuffer();
  const times: number[] = [];
  for (let run = 0; run < RUNS; run++) {
    const began = performance.now();
    const response = await session.request(path);
    await response.arrayBuffer();
    if (response.status !== 200) throw new Error(`${path} answered ${response.status}`);
    times.push(performance.now() - began);
  }
  times.sort((a, b) => a - b);
  const target =
    name.startsWith('first') || name.startsWith('filtered')
      ? quantile(times, 0.95) < 200
        ? '  ✓ < 200 ms'
        : '  ✗ ≥ 200 ms'
      : '';
  console.log(
    `${name.padEnd(42)} ${quantile(times, 0.5).toFixed(1).padStart(8)} ${quantile(times, 0.95).toFixed(1).padStart(8)} ${(times.at(-1) ?? 0).toFixed(1).padStart(8)}${target}`,
  );
}

// The ledger's share alone (no HTTP, no template), on a second connection to the same file.
const reader = new SqliteLedger({ path: ledgerPath });
const view = consoleLedgerOf(reader);
const filters: Array<[string, ConsoleExportFilter]> = [
  ['ledger only: first page', {}],
  ['ledger only: state = rejected', { state: 'rejected' }],
  ['ledger only: target + state + mapping', { target: 'archive', state: 'accepted', mappingName: 'sap-idoc' }],
];
for (const [name, filter] of filters) {
  const times: number[] = [];
  for (let run = 0; run < RUNS + 3; run++) {
    const began = performance.now();
    await view.listExports(filter, null, config.console.pageSize);
    if (run >= 3) times.push(performance.now() - began);
  }
  times.sort((a, b) => a - b);
  console.log(
    `${name.padEnd(42)} ${quantile(times, 0.5).toFixed(1).padStart(8)} ${quantile(times, 0.95).toFixed(1).padStart(8)} ${(times.at(-1) ?? 0).toFixed(1).padStart(8)}`,
  );
}
await reader.close();
await bridge.close();
