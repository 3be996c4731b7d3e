import { mkdirSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Machine-readable bench results: each bench writes `bench/results/<bench>.json` (or under
 * `BENCH_RESULTS_DIR`) next to the table it prints, and `npm run bench:readme` turns those files into
 * the README's tables, so the README cannot say what no run measured.
 */

export interface BenchTable {
  /** Markdown header cells; a cell starting with `>` is right-aligned (numbers). */
  columns: string[];
  rows: Array<Array<string | number>>;
}

export interface BenchMachine {
  cpu: string;
  cores: number;
  node: string;
  platform: string;
  /** 1, 5 and 15 minute load averages when the bench started. */
  loadAverage: [number, number, number];
}

export interface BenchResults {
  bench: string;
  /** The command that produced the file, e.g. `npm run bench:render`. */
  command: string;
  /** One line on what was measured (sizes, concurrency), shown above the tables. */
  setup: string;
  measuredAt: string;
  machine: BenchMachine;
  tables: BenchTable[];
  /** Short verdicts printed under the tables (targets met or not). */
  notes: string[];
}

export const DEFAULT_RESULTS_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', 'results');

/** Call when the bench starts: the load average then says how busy the machine was before the bench added its own. */
export function describeMachine(): BenchMachine {
  const [one, five, fifteen] = loadavg();
  return {
    cpu: cpus()[0]?.model.trim() ?? 'unknown CPU',
    cores: availableParallelism(),
    node: process.version,
    platform: `${process.platform} ${process.arch}`,
    loadAverage: [round2(one ?? 0), round2(five ?? 0), round2(fifteen ?? 0)],
  };
}

export function writeBenchResults(results: Omit<BenchResults, 'measuredAt'> & { measuredAt?: string }): string {
  const dir = process.env.BENCH_RESULTS_DIR ?? DEFAULT_RESULTS_DIR;
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${results.bench}.json`);
  const full: BenchResults = { ...results, measuredAt: results.measuredAt ?? new Date().toISOString() };
  writeFileSync(file, `${JSON.stringify(full, null, 2)}\n`);
  process.stdout.write(`results written to ${file}\n`);
  return file;
}

function round2(value: number): number {
  return Math.round(value * 100) / 100;
}
