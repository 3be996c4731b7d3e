/**
 * Exports over a WAN link: a TCP delay proxy (fixed one-way delay, optional jitter) between the
 * bridge and a real OpenSSH sshd. For each round trip, in one run, on the same proxy and the same
 * number of connections:
 *  - the bridge: a real `serve` process, signed webhook calls, 16 deliveries in flight;
 *  - raw put + rename (ssh2-sftp-client, TCP_NODELAY on) over the same number of open connections;
 *  - connect-per-file (connect, put, rename, end) with as many at once as there are connections.
 * Then a burst: 2,000 deliveries at concurrency 64 over one connection, each called the way Rossum
 * calls a hook (src/rossum/hook-call.ts: 30 s timeout, 5 attempts, 503 retried), and the ledger and
 * the ERP folder checked afterwards: every annotation exported exactly once.
 * Prints figures beside the targets of issue 10; asserts nothing.
 *
 *   npm run bench:wan
 *   BENCH_RTTS=100 BENCH_BURST=0 npm run bench:wan      # one round trip, no burst: a quick run
 *   BENCH_RTTS=none npm run bench:wan                   # the burst alone
 *   BENCH_INFLIGHT=1 npm run bench:wan                  # pool.inflightPerConnection (default: the config's)
 *   BENCH_N=320 BENCH_C=16 BENCH_CONNECTIONS=2 BENCH_JITTER_MS=0 BENCH_RAW_N=40 BENCH_NAIVE_N=12
 *   BENCH_BURST_N=2000 BENCH_BURST_C=64 BENCH_RETRY_DELAY_S=30
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { freePort, startSshd } from '../src/dev/sshd.ts';
import { callHook, type HookCallOutcome } from '../src/rossum/hook-call.ts';
import { signSha256 } from '../src/rossum/hook-call.ts';
import { TcpProxy } from '../test/support/tcp-proxy.ts';
import { measureNaive, measureRaw, resultOf, runConcurrently, type BaselineFile } from './support/baselines.ts';
import { HttpLoadConnection, prepareRequest } from './support/http-load.ts';

// BENCH_RTTS=none runs the burst alone.
const RTTS = (process.env.BENCH_RTTS ?? '20,100,250')
  .split(',')
  .filter((value) => value.trim() !== '' && value !== 'none')
  .map(Number);
const N = Number(process.env.BENCH_N ?? 320);
const C = Number(process.env.BENCH_C ?? 16);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 2);
const INFLIGHT = process.env.BENCH_INFLIGHT ? Number(process.env.BENCH_INFLIGHT) : undefined;
const JITTER_MS = Number(process.env.BENCH_JITTER_MS ?? 0);
const RAW_N = Number(process.env.BENCH_RAW_N ?? 40);
const NAIVE_N = Number(process.env.BENCH_NAIVE_N ?? 12);
const WARMUP = Number(process.env.BENCH_WARMUP ?? 48);
const BURST = process.env.BENCH_BURST !== '0';
const BURST_N = Number(process.env.BENCH_BURST_N ?? 2000);
const BURST_C = Number(process.env.BENCH_BURST_C ?? 64);
const RETRY_DELAY_S = Number(process.env.BENCH_RETRY_DELAY_S ?? 30);
const SECRET = 'bench-secret-0123456789abcdef';
const root = fileURLToPath(new URL('../', import.meta.url));
const out = (line: string): void => void process.stdout.write(`${line}\n`);
const fmt = (value: number, digits = 1): string => value.toFixed(digits);
const load = (): string =>
  loadavg()
    .map((value) => value.toFixed(2))
    .join(' ');

const dir = mkdtempSync(join(tmpdir(), 'rsb-bench-wan-'));
process.once('exit', () => {
  if (process.env.BENCH_KEEP !== '1') rmSync(dir, { recursive: true, force: true });
});
const children = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of children) child.kill('SIGKILL');
});

const sshd = await startSshd({ baseDir: join(dir, 'sftp') });
const proxy = await TcpProxy.start(sshd.port, sshd.host);
const template = JSON.parse(readFileSync(join(root, 'test/fixtures/rossum/export-invoice.json'), 'utf8')) as {
  annotation: { id: number };
  request_id: string;
};
let nextAnnotation = 9_000_000;
function payload(): string {
  template.annotation.id = nextAnnotation++;
  template.request_id = `wan-${template.annotation.id}`;
  return JSON.stringify(template);
}

/** A `serve` process whose one target reaches the sshd through the proxy. */
async function startServe(
  name: string,
  folder: string,
  pool: { size: number; inflightPerConnection?: number },
): Promise<{ url: string; port: number; ledgerPath: string; stop(): Promise<void> }> {
  const port = await freePort();
  const ledgerPath = join(dir, `${name}.db`);
  const configFile = join(dir, `${name}.json`);
  const viaProxy = new URL(sshd.url(folder));
  viaProxy.port = String(proxy.port);
  // JSON is YAML.
  writeFileSync(
    configFile,
    JSON.stringify({
      server: { host: '127.0.0.1', port, workers: 1, secret: SECRET },
      ledger: { url: `sqlite:${ledgerPath}` },
      mappingsDir: join(root, 'mappings'),
      logLevel: 'warn',
      targets: {
        erp: {
          url: viaProxy.toString(),
          hostKey: sshd.hostKeyFingerprint,
          privateKeyPath: sshd.privateKeyPath,
          pool,
        },
      },
      routes: [{ mapping: 'generic-xml', target: 'erp' }],
    }),
  );
  const child = spawn(process.execPath, [join(root, 'bin/rossum-sftp-bridge'), 'serve', '--config', configFile], {
    stdio: ['ignore', openSync(join(dir, `${name}.log`), 'w'), 'inherit'],
  });
  children.add(child);
  const url = `http://127.0.0.1:${port}/webhooks/rossum`;
  for (let tries = 0; ; tries++) {
    if (child.exitCode !== null) throw new Error(`serve exited with ${child.exitCode}; see ${dir}/${name}.log`);
    const ready = await fetch(`http://127.0.0.1:${port}/healthz`)
      .then((r) => r.ok)
      .catch(() => false);
    if (ready) break;
    if (tries > 300) throw new Error('serve did not start within 30 s');
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return {
    url,
    port,
    ledgerPath,
    async stop() {
      child.kill('SIGTERM');
      if (child.exitCode === null) await new Promise((resolve) => child.once('exit', resolve));
      children.delete(child);
    },
  };
}

const server = {
  host: '127.0.0.1',
  port: proxy.port,
  username: sshd.username,
  privateKey: sshd.privateKey,
  hostKeyFingerprint: sshd.hostKeyFingerprint,
};

interface Row {
  rtt: number;
  bridge: ReturnType<typeof resultOf>;
  raw: ReturnType<typeof resultOf>;
  naive: ReturnType<typeof resultOf>;
  load: string;
}

const pool = { size: CONNECTIONS, ...(INFLIGHT !== undefined ? { inflightPerConnection: INFLIGHT } : {}) };
const rows: Row[] = [];
for (const rtt of RTTS) {
  proxy.shape = { oneWayDelayMs: rtt / 2, jitterMs: JITTER_MS };
  // A fresh `serve` and fresh keep-alive connections per round trip: each figure starts from the same state.
  const serve = await startServe(`bridge-${rtt}`, `inbound/rtt-${rtt}`, pool);
  const connections = await Promise.all(
    Array.from({ length: C }, () => HttpLoadConnection.open('127.0.0.1', serve.port)),
  );
  const requests = Array.from({ length: N + WARMUP }, () => {
    const body = payload();
    return prepareRequest({
      host: '127.0.0.1',
      port: serve.port,
      path: '/webhooks/rossum',
      headers: { 'content-type': 'application/json', 'x-rossum-signature-sha256': signSha256(body, SECRET) },
      body,
    });
  });
  const send = async (index: number, worker: number): Promise<void> => {
    const response = await answerWithin(
      60_000,
      (connections[worker] as HttpLoadConnection).send(requests[index] as Buffer),
      `delivery ${index} at RTT ${rtt} ms`,
    );
    if (response.status !== 200) throw new Error(`delivery ${index}: ${response.status} ${response.body}`);
  };
  await runConcurrently(0, WARMUP, C, send);
  const loadBefore = load();
  const bridge = resultOf('bridge', N, await runConcurrently(WARMUP, N + WARMUP, C, send));
  for (const connection of connections) connection.close();
  await serve.stop();
  const landed = join(sshd.inboundDir, `rtt-${rtt}`);
  const files: BaselineFile[] = readdirSync(landed)
    .filter((name) => name.endsWith('.xml'))
    .slice(0, RAW_N)
    .map((name) => ({ name, bytes: readFileSync(join(landed, name)) }));
  process.stderr.write(`RTT ${rtt} ms: bridge done, raw and connect-per-file next\n`);
  const raw = await measureRaw({ server, remoteDir: `raw-${rtt}`, files, concurrency: CONNECTIONS });
  const naive = await measureNaive({
    server,
    remoteDir: `naive-${rtt}`,
    files: files.slice(0, NAIVE_N),
    concurrency: CONNECTIONS,
  });
  rows.push({ rtt, bridge, raw, naive, load: loadBefore });
  out(
    `RTT ${rtt} ms: bridge ${fmt(bridge.filesPerSecond)}/s p50 ${fmt(bridge.p50Ms, 0)} ms p99 ${fmt(bridge.p99Ms, 0)} ms; raw ${fmt(raw.filesPerSecond)}/s; connect-per-file ${fmt(naive.filesPerSecond, 2)}/s (load ${loadBefore})`,
  );
}
if (rows.length > 0) printTable();

function printTable(): void {
  out('');
  out(
    `WAN benchmark: ${CONNECTIONS} connections, ${C} deliveries in flight, inflightPerConnection ${INFLIGHT ?? 'default'}, jitter ${JITTER_MS} ms, payload export-invoice.json (3 lines), N=${N} (raw ${RAW_N}, connect-per-file ${NAIVE_N})`,
  );
  out(
    '| RTT ms | bridge exports/s | p50 ms | p99 ms | in-flight limit C/(3×RTT) | share | raw put+rename files/s | bridge/raw | connect-per-file files/s | load avg |',
  );
  out('|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|');
  for (const { rtt, bridge, raw, naive, load: loadAvg } of rows) {
    const limit = C / ((3 * rtt) / 1000);
    out(
      `| ${rtt} | ${fmt(bridge.filesPerSecond)} | ${fmt(bridge.p50Ms, 0)} | ${fmt(bridge.p99Ms, 0)} | ${fmt(limit)} | ${fmt((bridge.filesPerSecond / limit) * 100, 0)} % | ${fmt(raw.filesPerSecond, 2)} | ${fmt(bridge.filesPerSecond / raw.filesPerSecond)}× | ${fmt(naive.filesPerSecond, 2)} | ${loadAvg} |`,
    );
  }
  out('');
  for (const { rtt, bridge, raw } of rows) {
    const limit = C / ((3 * rtt) / 1000);
    const verdict = (ok: boolean): string => (ok ? 'met' : 'NOT met');
    if (rtt === 100) {
      out(`100 ms: ${fmt(bridge.filesPerSecond)} exports/s (target ≥ 40) ${verdict(bridge.filesPerSecond >= 40)}`);
      const ratio = bridge.filesPerSecond / raw.filesPerSecond;
      out(`100 ms: ${fmt(ratio)}× raw put+rename on ${CONNECTIONS} connections (target ≥ 8×) ${verdict(ratio >= 8)}`);
      out(`100 ms: p99 ${fmt(bridge.p99Ms, 0)} ms (target ≤ 1000 ms) ${verdict(bridge.p99Ms <= 1000)}`);
    }
    if (rtt === 250) {
      const share = bridge.filesPerSecond / limit;
      out(`250 ms: ${fmt(share * 100, 0)} % of the in-flight limit (target ≥ 70 %) ${verdict(share >= 0.7)}`);
    }
  }
}

if (BURST) await burst();
await proxy.close();
await sshd.stop();

/** A silent hang becomes an error naming what never answered. */
function answerWithin<T>(ms: number, promise: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** 2,000 deliveries at concurrency 64, one connection, 100 ms: each ends exported exactly once. */
async function burst(): Promise<void> {
  proxy.shape = { oneWayDelayMs: 50, jitterMs: JITTER_MS };
  mkdirSync(join(sshd.root, 'burst'), { recursive: true });
  const burstServe = await startServe('burst', 'burst', {
    size: 1,
    ...(INFLIGHT ? { inflightPerConnection: INFLIGHT } : {}),
  });
  const bodies = Array.from({ length: BURST_N }, () => payload());
  const annotationOf = (body: string): number => (JSON.parse(body) as { annotation: { id: number } }).annotation.id;
  const outcomes: HookCallOutcome[] = [];
  const started = performance.now();
  const loadBefore = load();
  const run = await runConcurrently(0, BURST_N, BURST_C, async (index) => {
    outcomes[index] = await callHook({
      url: burstServe.url,
      body: bodies[index] as string,
      secret: SECRET,
      retryDelayS: RETRY_DELAY_S,
    });
  });
  const seconds = (performance.now() - started) / 1000;
  await burstServe.stop();
  const exported = outcomes.filter((outcome) => outcome.annotationStatus === 'exported').length;
  const failed = outcomes.filter((outcome) => outcome.annotationStatus === 'failed_export').length;
  const first503 = outcomes.filter((outcome) => outcome.attempts[0]?.statusCode === 503).length;
  const retried = outcomes.filter((outcome) => outcome.attempts.length > 1).length;
  const ledger = new Database(burstServe.ledgerPath, { readonly: true });
  const rowsByAnnotation = new Map<number, { status: string; remote: string | null }[]>();
  for (const row of ledger.prepare('SELECT annotation_id, status, remote_path FROM exports').all() as Array<{
    annotation_id: number;
    status: string;
    remote_path: string | null;
  }>) {
    const list = rowsByAnnotation.get(Number(row.annotation_id)) ?? [];
    list.push({ status: row.status, remote: row.remote_path });
    rowsByAnnotation.set(Number(row.annotation_id), list);
  }
  ledger.close();
  const landed = readdirSync(join(sshd.root, 'burst'));
  const finals = landed.filter((name) => name.endsWith('.xml') && !name.startsWith('.'));
  const temps = landed.length - finals.length;
  let exactlyOnce = 0;
  let doubled = 0;
  for (const body of bodies) {
    const rowsOf = rowsByAnnotation.get(annotationOf(body)) ?? [];
    if (rowsOf.length === 1 && rowsOf[0]?.status === 'uploaded') exactlyOnce++;
    if (rowsOf.length > 1) doubled++;
  }
  out('');
  out(
    `Burst: ${BURST_N} deliveries at concurrency ${BURST_C}, 1 connection, RTT 100 ms, Rossum's retry policy (30 s timeout, 5 attempts, 503 retried after ${RETRY_DELAY_S} s); load avg before ${loadBefore}`,
  );
  out(`  exported ${exported} of ${BURST_N} (target ${BURST_N}), failed_export ${failed} (target 0)`);
  out(
    `  ledger: ${exactlyOnce} annotations with exactly one 'uploaded' row, ${doubled} with more than one row (target 0); ERP folder: ${finals.length} files (target ${BURST_N}), ${temps} temp files left`,
  );
  out(`  first answers 503: ${first503}; deliveries retried: ${retried}`);
  out(
    `  longest time to a final answer: ${fmt(run.latencies.at(-1) ?? 0, 0)} ms; p50 ${fmt(run.latencies[Math.floor(run.latencies.length / 2)] ?? 0, 0)} ms; whole burst ${fmt(seconds)} s (${fmt(BURST_N / seconds)}/s)`,
  );
}
