/**
 * Ack loop figures against a real OpenSSH sshd and the simulated Rossum:
 *  1. one full pass over a folder of N ack files (default 10,000: 80 % `.ok`, 20 % `.err` rejections,
 *     each rejection told to Rossum: GET + PATCH + note + PATCH) — wall time and peak memory;
 *  2. the delay from an ack landing to Rossum being told, with the loop running at its poll interval.
 * Targets (issue 4): ≤ 10 s and ≤ 256 MB for 10,000 files; delay ≤ poll interval + 1 s. Prints
 * figures; asserts nothing.
 *
 *   npm run bench:acks
 *   BENCH_N=2000 BENCH_POLL_MS=2000 npm run bench:acks
 */
import { mkdtempSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startAcks } from '../src/ack/index.ts';
import { bridgeConfigSchema } from '../src/config/index.ts';
import { startSshd } from '../src/dev/sshd.ts';
import { SqliteLedger } from '../src/ledger/index.ts';
import { createLogger } from '../src/observability/logger.ts';
import { ErpSimulator } from '../test/support/erp-simulator.ts';
import { RossumSimulator } from '../test/support/rossum-simulator.ts';

const N = Number(process.env.BENCH_N ?? 10_000);
const REJECTED_EVERY = 5;
const POLL_MS = Number(process.env.BENCH_POLL_MS ?? 1_000);
const LATENCY_SAMPLES = Number(process.env.BENCH_LATENCY_SAMPLES ?? 8);
const FIRST = 1_000_000;

const dir = mkdtempSync(join(tmpdir(), 'rsb-bench-acks-'));
const sshd = await startSshd({ baseDir: join(dir, 'sshd') });
const simulator = await RossumSimulator.start();
const ledgerPath = join(dir, 'ledger.db');
const target = (url: string) => ({
  url,
  hostKey: sshd.hostKeyFingerprint,
  privateKey: sshd.privateKey,
  pool: { size: 4 },
});
const config = bridgeConfigSchema.parse({
  ledger: { url: `sqlite:${ledgerPath}` },
  mappingsDir: dir,
  logLevel: 'warn',
  targets: { erp: target(sshd.url('inbound')), 'erp-out': target(sshd.url('acks')) },
  routes: [{ mapping: 'erp', target: 'erp' }],
  rossum: { baseUrl: simulator.apiUrl, username: 'bridge@example.com', password: 'correct horse battery staple' },
  acks: {
    pollIntervalMs: POLL_MS,
    minAgeMs: 200,
    concurrency: 8,
    targets: { erp: { folder: '.', readFrom: 'erp-out' } },
    byMapping: { erp: { convention: 'companion', companion: { encoding: 'windows-1252' } } },
  },
});

// ── setup: N uploaded exports in the ledger, N acks in the folder (old enough to be complete) ──
const setupStarted = performance.now();
const ledger = new SqliteLedger({ path: ledgerPath });
const erp = new ErpSimulator(sshd.acksDir);
const past = new Date(Date.now() - 60_000);
for (let i = 0; i < N; i++) {
  const annotationId = FIRST + i;
  const stem = `INV-${annotationId}`;
  const claim = await ledger.claim({ idempotencyKey: `b-${i}`, annotationId, requestId: `r-${i}`, mappingName: 'erp', mappingHash: 'h', target: 'erp', plannedPath: `${stem}.xml`, sha256: 'f'.repeat(64), bytes: 1, owner: 'bench', leaseMs: 60_000 });
  await ledger.complete(claim.record.id, 'bench', { remotePath: `${stem}.xml`, reply: { statusCode: 200, body: { messages: [] } } });
  if (i % REJECTED_EVERY === 0) {
    simulator.addAnnotation(annotationId, { status: 'exported' });
    erp.err(stem, [`E102 Kreditor ${i} nicht im Stammsatz gefunden (Buchungskreis 1000)`, 'E207 Steuerkennzeichen V9 ungültig für Position 3']);
    utimesSync(join(sshd.acksDir, `${stem}.err`), past, past);
  } else {
    erp.ok(stem);
    utimesSync(join(sshd.acksDir, `${stem}.ok`), past, past);
  }
}
await ledger.close();
console.log(`setup: ${N} exports and ${N} ack files in ${((performance.now() - setupStarted) / 1000).toFixed(1)} s`);

// ── 1. one full pass ──
let peakRss = 0;
let peakHeap = 0;
const sample = () => {
  const usage = process.memoryUsage();
  peakRss = Math.max(peakRss, usage.rss);
  peakHeap = Math.max(peakHeap, usage.heapUsed);
};
const sampler = setInterval(sample, 20);
const baseline = process.memoryUsage().rss;
const running = await startAcks(config, { logger: createLogger({ level: 'warn' }), loop: false });
const lookStarted = performance.now();
await running.pass(); // first look: sizes and mtimes only
const lookMs = performance.now() - lookStarted;
const passStarted = performance.now();
const report = await running.pass();
const passMs = performance.now() - passStarted;
sample();
clearInterval(sampler);
const rejections = Math.ceil(N / REJECTED_EVERY);
const told = simulator.calls.filter((call) => call.method === 'POST' && call.path.endsWith('/v1/notes')).length;
const backlog = await running.ledger.outcomeBacklog();
await running.close();

// ── 2. ack landing → Rossum told, with the loop running ──
const delays: number[] = [];
const looping = await startAcks(config, { logger: createLogger({ level: 'warn' }), loop: true });
for (let s = 0; s < LATENCY_SAMPLES; s++) {
  const annotationId = FIRST + N + s;
  const stem = `INV-${annotationId}`;
  const seed = new SqliteLedger({ path: ledgerPath });
  const claim = await seed.claim({ idempotencyKey: `l-${s}`, annotationId, requestId: `l-${s}`, mappingName: 'erp', mappingHash: 'h', target: 'erp', plannedPath: `${stem}.xml`, sha256: 'f'.repeat(64), bytes: 1, owner: 'bench', leaseMs: 60_000 });
  await seed.complete(claim.record.id, 'bench', { remotePath: `${stem}.xml`, reply: { statusCode: 200, body: { messages: [] } } });
  await seed.close();
  simulator.addAnnotation(annotationId, { status: 'exported' });
  // Land at a random point of the poll cycle.
  await new Promise((resolve) => setTimeout(resolve, Math.random() * POLL_MS));
  const landed = performance.now();
  erp.err(stem, ['E500 Periode gesperrt']);
  while (simulator.annotation(annotationId).status !== 'failed_export') await new Promise((resolve) => setTimeout(resolve, 5));
  delays.push(performance.now() - landed);
}
await looping.close();
await simulator.close();
await sshd.stop();

const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(0)} MB`;
delays.sort((a, b) => a - b);
console.log('');
console.log(`acks bench (sshd loopback, SQLite ledger, simulated Rossum in this process; ${process.platform} ${process.arch}, node ${process.version})`);
console.log(`  files                               ${N} (${N - rejections} .ok, ${rejections} .err → ${told} notes told to Rossum)`);
console.log(`  first look (list, sizes only)       ${(lookMs / 1000).toFixed(2)} s`);
console.log(`  full pass (read, record, archive,   ${(passMs / 1000).toFixed(2)} s   target ≤ 10 s   (${report.files} files)`);
console.log(`    tell Rossum)`);
console.log(`  peak RSS / heap during the passes   ${mb(peakRss)} / ${mb(peakHeap)}   target ≤ 256 MB   (RSS before: ${mb(baseline)})`);
console.log(`  outbox after the pass               ${JSON.stringify(backlog)}`);
console.log(`  ack landed → Rossum told            median ${(delays[Math.floor(delays.length / 2)]! / 1000).toFixed(2)} s, max ${(delays.at(-1)! / 1000).toFixed(2)} s   target ≤ ${((POLL_MS + 1000) / 1000).toFixed(1)} s (poll ${POLL_MS} ms + 1 s)`);
process.exit(0);
