/**
 * Export throughput: N signed deliveries of a realistic payload at concurrency C against a real
 * `serve` process and a real OpenSSH sshd, beside two baselines measured in the same run on the
 * same sshd: raw (put + rename over the same number of pre-opened connections as the pool) and
 * naive (connect, upload, disconnect per export).
 *
 *   npm run bench:export                       # N=2000, C=8
 *   BENCH_N=500 BENCH_C=4 npm run bench:export
 *   BENCH_WORKERS=2 npm run bench:export       # serve --workers 2
 *   BENCH_BASELINES=0 npm run bench:export     # the bridge alone, for quick before/after comparisons
 *   BENCH_PROFILE=/tmp/prof npm run bench:export  # CPU profile of the serve process
 *   BENCH_SFTP_DIR=/dev/shm npm run bench:export  # sshd stores on tmpfs: steadier where disk speed varies
 *   BENCH_WARMUP=400 (default), BENCH_POOL=4, BENCH_NAIVE_N=400, BENCH_KEEP=1 (keep the run's folder)
 *
 * Besides the three runs the issue asks for, it measures each part the bridge must do alone (a bare
 * signed-webhook receiver, the render, the ledger's claim and record, our transport's upload) and
 * the CPU every process used per file, and prints how much CPU per export is left for the bridge at
 * each target rate: the targets are checked against what this machine can give, not only against
 * the bridge.
 */
import { spawn } from 'node:child_process';
import { createHash, createHmac } from 'node:crypto';
import { mkdtempSync, openSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, startSshd } from '../src/dev/sshd.ts';
import { parseExportPayload, viewAnnotation } from '../src/annotation/index.ts';
import { SqliteLedger } from '../src/ledger/index.ts';
import { loadMappings } from '../src/mapping/index.ts';
import { silentLogger } from '../src/observability/logger.ts';
import { createTarget } from '../src/transport/index.ts';
import {
  measureNaive,
  measureRaw,
  resultOf,
  runConcurrently,
  type BaselineFile,
  type BaselineResult,
} from './support/baselines.ts';
import { HttpLoadConnection, prepareRequest } from './support/http-load.ts';
import { describeMachine, writeBenchResults } from './support/results.ts';

const machine = describeMachine();
const N = Number(process.env.BENCH_N ?? 2000);
const C = Number(process.env.BENCH_C ?? 8);
const POOL = Number(process.env.BENCH_POOL ?? 4);
const WORKERS = Number(process.env.BENCH_WORKERS ?? 1);
const NAIVE_N = Math.min(N, Number(process.env.BENCH_NAIVE_N ?? 400));
// Long enough for V8 to optimize the hot paths: the figure is the steady state of a long-running service.
const WARMUP = Number(process.env.BENCH_WARMUP ?? 400);
const SECRET = 'bench-secret-0123456789abcdef';
const root = fileURLToPath(new URL('../', import.meta.url));
const CLOCK_TICKS = 100; // USER_HZ: /proc reports CPU time in 1/100 s on Linux
const CORES = availableParallelism();

/**
 * User + system CPU seconds used so far by a process tree (Linux /proc; 0 elsewhere): each live
 * process's own time plus that of the children it has reaped, so connections that ended still count.
 */
function cpuSecondsOfTree(root: number | undefined): number {
  if (root === undefined) return 0;
  const stats = new Map<number, { parent: number; seconds: number }>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const fields = readFileSync(`/proc/${entry}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
      stats.set(Number(entry), {
        parent: Number(fields[1]),
        seconds: (Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14])) / CLOCK_TICKS,
      });
    } catch {
      // exited between the listing and the read
    }
  }
  let total = 0;
  const pending = [root];
  while (pending.length > 0) {
    const pid = pending.pop() as number;
    total += stats.get(pid)?.seconds ?? 0;
    for (const [child, stat] of stats) if (stat.parent === pid) pending.push(child);
  }
  return total;
}

/** CPU milliseconds per file that each party spent during a timed run. */
interface CpuShare {
  bridge?: number;
  sshd: number;
  client: number;
}

function sampleCpu(
  serve: number | undefined,
  sshd: number | undefined,
): { serve: number; sshd: number; client: number } {
  const own = process.cpuUsage();
  return { serve: cpuSecondsOfTree(serve), sshd: cpuSecondsOfTree(sshd), client: (own.user + own.system) / 1e6 };
}

function perFile(
  before: ReturnType<typeof sampleCpu>,
  after: ReturnType<typeof sampleCpu>,
  files: number,
  withBridge: boolean,
): CpuShare {
  const ms = (seconds: number): number => (seconds * 1000) / files;
  return {
    ...(withBridge ? { bridge: ms(after.serve - before.serve) } : {}),
    sshd: ms(after.sshd - before.sshd),
    client: ms(after.client - before.client),
  };
}

/** A bare node:http receiver (signature + JSON.parse + 200) in its own process, under the same load. */
async function measureWebhookFloor(timed: Buffer[], warmup: Buffer[]): Promise<{ serverMs: number; clientMs: number }> {
  const port = await freePort();
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', join(root, 'bench/support/webhook-floor.ts'), String(port), SECRET],
    { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] },
  );
  try {
    await new Promise<void>((resolve, reject) => {
      child.stdout.once('data', () => resolve());
      child.once('exit', (code) => reject(new Error(`webhook floor receiver exited with ${code}`)));
    });
    const connections = await Promise.all(Array.from({ length: C }, () => HttpLoadConnection.open('127.0.0.1', port)));
    const drive = (requests: Buffer[]): Promise<unknown> =>
      runConcurrently(0, requests.length, C, async (index, worker) => {
        const answer = await (connections[worker] as HttpLoadConnection).send(requests[index] as Buffer);
        if (answer.status !== 200) throw new Error(`webhook floor receiver answered ${answer.status}: ${answer.body}`);
      });
    await drive(warmup);
    const before = sampleCpu(child.pid, undefined);
    await drive(timed);
    const after = sampleCpu(child.pid, undefined);
    for (const connection of connections) connection.close();
    return {
      serverMs: ((after.serve - before.serve) * 1000) / timed.length,
      clientMs: ((after.client - before.client) * 1000) / timed.length,
    };
  } finally {
    child.kill();
  }
}

/** CPU ms per export of the product's ledger alone: claim before and record after, C at a time, on a fresh file. */
async function measureLedgerAlone(dir: string, count: number): Promise<number> {
  const ledger = new SqliteLedger({ path: join(dir, 'floor-ledger.db') });
  const owner = 'bench:floor';
  const reply = { statusCode: 200, body: { messages: [{ type: 'info', content: 'Exported INV-1.xml to erp' }] } };
  const one = async (i: number): Promise<void> => {
    const claim = await ledger.claim({
      idempotencyKey: `${i}:erp:${String(i).padStart(64, '0')}`,
      annotationId: 9_500_000 + i,
      requestId: `floor-${i}`,
      mappingName: 'generic-xml',
      mappingHash: 'floor',
      target: 'erp',
      plannedPath: `INV-${i}.xml`,
      sha256: String(i).padStart(64, '0'),
      bytes: 1707,
      owner,
      leaseMs: 60_000,
      documentRef: `INV-${i}`,
    });
    await ledger.complete(claim.record.id, owner, { remotePath: `INV-${i}.xml`, reply });
  };
  const drive = (from: number, to: number): Promise<unknown> => runConcurrently(from, to, C, one);
  try {
    await drive(0, WARMUP);
    const before = process.cpuUsage();
    await drive(WARMUP, WARMUP + count);
    const used = process.cpuUsage(before);
    return (used.user + used.system) / 1000 / count;
  } finally {
    await ledger.close();
  }
}

/** CPU ms per export of turning the parsed payload into the file (view + generic-xml render + sha256), alone. */
function measureRenderAlone(payloadText: string, count: number): number {
  const mapping = loadMappings(join(root, 'mappings')).get('generic-xml');
  if (!mapping) throw new Error('mapping generic-xml not found');
  const payload = parseExportPayload(JSON.parse(payloadText));
  let bytes = 0;
  const run = (times: number): void => {
    for (let i = 0; i < times; i++) {
      const file = mapping.render(viewAnnotation(payload));
      bytes += createHash('sha256').update(file.bytes).digest().length;
    }
  };
  run(WARMUP);
  const before = process.cpuUsage();
  run(count);
  const used = process.cpuUsage(before);
  if (bytes === 0) throw new Error('nothing rendered');
  return (used.user + used.system) / 1000 / count;
}

/** The product's own SFTP target (same pool size) uploading the bridge's files at concurrency C. */
async function measureTransport(
  sshd: Awaited<ReturnType<typeof startSshd>>,
  files: BaselineFile[],
): Promise<BaselineResult> {
  const target = createTarget(
    'floor',
    {
      url: sshd.url('inbound/transport'),
      hostKey: sshd.hostKeyFingerprint,
      privateKeyPath: sshd.privateKeyPath,
      pool: { size: POOL },
    },
    { logger: silentLogger() },
  );
  try {
    const upload = (file: BaselineFile, prefix: string): Promise<unknown> =>
      target.upload({ relativePath: `${prefix}${file.name}`, bytes: file.bytes, onExisting: 'fail' });
    await runConcurrently(0, Math.min(WARMUP, files.length), C, (index) =>
      upload(files[index] as BaselineFile, 'warmup-'),
    );
    return resultOf(
      'transport',
      files.length,
      await runConcurrently(0, files.length, C, (index) => upload(files[index] as BaselineFile, '')),
    );
  } finally {
    await target.close();
  }
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'rsb-bench-export-'));
  // Ledger, upload folders and sshd home go when the run ends (BENCH_KEEP=1 keeps them).
  process.once('exit', () => {
    if (process.env.BENCH_KEEP !== '1') rmSync(dir, { recursive: true, force: true });
  });
  // BENCH_SFTP_DIR=/dev/shm puts what the sshd stores on tmpfs: steadier figures where the disk's speed varies.
  const sftpDir = process.env.BENCH_SFTP_DIR
    ? mkdtempSync(join(process.env.BENCH_SFTP_DIR, 'rsb-bench-sftp-'))
    : join(dir, 'sftp');
  process.once('exit', () => {
    if (process.env.BENCH_KEEP !== '1') rmSync(sftpDir, { recursive: true, force: true });
  });
  const sshd = await startSshd({ baseDir: sftpDir });
  const server = {
    host: sshd.host,
    port: sshd.port,
    username: sshd.username,
    privateKey: sshd.privateKey,
    hostKeyFingerprint: sshd.hostKeyFingerprint,
  };
  // Untimed: on this machine the first few thousand files created cost sshd (kernel time in open and
  // link) up to 3× more than later ones, which would bill the run measured first for the machine's cold start.
  const coldStart = Array.from({ length: Math.max(N, 2000) }, (_, i) => ({
    name: `cold-${i}.xml`,
    bytes: Buffer.alloc(1707, 'x'),
  }));
  await measureRaw({ server, remoteDir: 'cold-start', files: coldStart, concurrency: POOL });
  const configFile = join(dir, 'bridge.yaml');
  const port = await freePort();
  writeFileSync(
    configFile,
    [
      'server:',
      '  host: 127.0.0.1',
      `  port: ${port}`,
      `  workers: ${WORKERS}`,
      `  secret: ${SECRET}`,
      `ledger:\n  url: sqlite:${join(dir, 'ledger.db')}`,
      `mappingsDir: ${join(root, 'mappings')}`,
      // The production default: one line per export, written to a file as a service's stdout would be.
      'logLevel: info',
      'targets:',
      '  erp:',
      `    url: ${sshd.url('inbound')}`,
      `    hostKey: "${sshd.hostKeyFingerprint}"`,
      `    privateKeyPath: ${sshd.privateKeyPath}`,
      `    pool: { size: ${Math.max(1, Math.round(POOL / WORKERS))} }`,
      'routes:',
      '  - mapping: generic-xml',
      '    target: erp',
      '',
    ].join('\n'),
  );

  // BENCH_PROFILE=DIR writes a CPU profile of the serve process there.
  const profile = process.env.BENCH_PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_PROFILE}`] : [];
  const serveLog = openSync(join(dir, 'serve.log'), 'w');
  const child = spawn(
    process.execPath,
    [...profile, join(root, 'bin/rossum-sftp-bridge'), 'serve', '--config', configFile],
    { stdio: ['ignore', serveLog, 'inherit'] },
  );
  const url = `http://127.0.0.1:${port}/webhooks/rossum`;
  for (let tries = 0; ; tries++) {
    if (child.exitCode !== null) throw new Error(`serve exited with ${child.exitCode}`);
    const ready = await fetch(url.replace('/webhooks/rossum', '/healthz'))
      .then((r) => r.ok)
      .catch(() => false);
    if (ready) break;
    if (tries > 300) throw new Error('serve did not start within 30 s');
    await new Promise((resolve) => setTimeout(resolve, 100));
  }

  const template = JSON.parse(readFileSync(join(root, 'test/fixtures/rossum/export-invoice.json'), 'utf8')) as {
    annotation: { id: number };
    request_id: string;
  };
  // Serialized up front and sent over C keep-alive connections: the load generator shares the cores.
  const requests = Array.from({ length: N + WARMUP }, (_, i) => {
    template.annotation.id = 9_000_000 + i;
    template.request_id = `bench-${i}`;
    const body = JSON.stringify(template);
    const signature = `sha256=${createHmac('sha256', SECRET).update(body).digest('hex')}`;
    return prepareRequest({
      host: '127.0.0.1',
      port,
      path: '/webhooks/rossum',
      headers: { 'content-type': 'application/json', 'x-rossum-signature-sha256': signature },
      body,
    });
  });
  const connections = await Promise.all(Array.from({ length: C }, () => HttpLoadConnection.open('127.0.0.1', port)));
  const sendOn = async (connection: HttpLoadConnection, index: number): Promise<void> => {
    const response = await connection.send(requests[index] as Buffer);
    const reply = JSON.parse(response.body) as { messages?: Array<{ type: string; content: string }> };
    if (response.status !== 200 || reply.messages?.[0]?.type !== 'info')
      throw new Error(`delivery ${index}: ${response.status} ${response.body}`);
  };

  const send = (index: number, worker: number): Promise<void> =>
    sendOn(connections[worker] as HttpLoadConnection, index);
  await runConcurrently(0, WARMUP, C, send);

  const cpuBefore = sampleCpu(child.pid, sshd.pid);
  const bridge = resultOf('bridge', N, await runConcurrently(WARMUP, N + WARMUP, C, send));
  const bridgeCpu = perFile(cpuBefore, sampleCpu(child.pid, sshd.pid), N, true);

  for (const connection of connections) connection.close();
  child.kill('SIGTERM');
  await new Promise((resolve) => child.once('exit', resolve));

  if (process.env.BENCH_BASELINES === '0') {
    // Quick comparisons while tuning the bridge: its own figures only.
    await sshd.stop();
    process.stdout.write(
      `bridge: ${bridge.filesPerSecond.toFixed(1)} exports/s, p50 ${bridge.p50Ms.toFixed(1)} ms, p99 ${bridge.p99Ms.toFixed(1)} ms; CPU per export: bridge ${(bridgeCpu.bridge ?? 0).toFixed(3)} ms, sshd ${bridgeCpu.sshd.toFixed(3)} ms, load generator ${bridgeCpu.client.toFixed(3)} ms\n`,
    );
    return;
  }
  const files: BaselineFile[] = readdirSync(sshd.inboundDir)
    .filter((name) => name.endsWith('.xml'))
    .slice(0, N)
    .map((name) => ({ name, bytes: readFileSync(join(sshd.inboundDir, name)) }));
  // The floor of any bridge on this machine: receiving the signed webhook, and our own transport
  // uploading the same files, each measured alone. No mapping, ledger or glue can make it cheaper.
  const webhookFloor = await measureWebhookFloor(requests.slice(WARMUP), requests.slice(0, WARMUP));
  requests.length = 0; // the work below runs in this process: don't make its GC carry 50 MB of requests
  const ledgerFloorMs = await measureLedgerAlone(dir, N);
  const renderFloorMs = measureRenderAlone(JSON.stringify(template), N);
  const transportBefore = sampleCpu(undefined, sshd.pid);
  const transportRun = await measureTransport(sshd, files);
  const transportCpu = perFile(transportBefore, sampleCpu(undefined, sshd.pid), files.length, false);

  const rawBefore = sampleCpu(undefined, sshd.pid);
  const raw = await measureRaw({ server, remoteDir: 'raw', files, concurrency: POOL });
  const rawCpu = perFile(rawBefore, sampleCpu(undefined, sshd.pid), files.length, false);
  const naive = await measureNaive({ server, remoteDir: 'naive', files: files.slice(0, NAIVE_N), concurrency: C });
  await sshd.stop();

  const fmt = (value: number, digits = 1): string => value.toFixed(digits);
  const rows = [
    [
      'bridge (webhook → mapping → ledger → pooled SFTP)',
      N,
      fmt(bridge.filesPerSecond),
      fmt(bridge.p50Ms),
      fmt(bridge.p99Ms),
    ],
    [
      `raw (put + rename, ${POOL} open connections)`,
      raw.files,
      fmt(raw.filesPerSecond),
      fmt(raw.p50Ms),
      fmt(raw.p99Ms),
    ],
    [
      `naive (connect/upload/disconnect, ${C} at once)`,
      naive.files,
      fmt(naive.filesPerSecond),
      fmt(naive.p50Ms),
      fmt(naive.p99Ms),
    ],
    [
      `(floor) the bridge's transport alone, ${POOL} pooled connections, ${C} at once`,
      transportRun.files,
      fmt(transportRun.filesPerSecond),
      fmt(transportRun.p50Ms),
      fmt(transportRun.p99Ms),
    ],
  ];
  const out = (line: string): void => void process.stdout.write(`${line}\n`);
  out(
    `\nexport benchmark: N=${N}, C=${C}, connections=${POOL} (${WORKERS} worker${WORKERS > 1 ? 's' : ''} × ${Math.max(1, Math.round(POOL / WORKERS))}), payload export-invoice.json (3 lines), mapping generic-xml, ${files[0]?.bytes.length ?? 0} bytes per file`,
  );
  out('| run | files | files/s | p50 ms | p99 ms |');
  out('|---|---:|---:|---:|---:|');
  for (const row of rows) out(`| ${row.join(' | ')} |`);
  const ofRaw = (bridge.filesPerSecond / raw.filesPerSecond) * 100;
  const ofNaive = bridge.filesPerSecond / naive.filesPerSecond;
  out('');
  // Issue 10 withdrew the 80 % target: on 2 cores the parts alone need more CPU than is left at that rate.
  out(`bridge vs raw:   ${fmt(ofRaw)} % (target ≥ 40 %)  ${ofRaw >= 40 ? 'met' : 'NOT met'}`);
  out(`bridge vs naive: ${fmt(ofNaive)}× (target ≥ 30×)  ${ofNaive >= 30 ? 'met' : 'NOT met'}`);
  // Where the machine's CPU went, per file: everything runs on these cores, so this is the ceiling.
  const total = (share: CpuShare): number => (share.bridge ?? 0) + share.sshd + share.client;
  out('');
  out(`CPU per file (ms, user + system, ${CORES} cores):`);
  out('| run | bridge | sshd | load generator / raw client | total | ceiling at 100 % of all cores |');
  out('|---|---:|---:|---:|---:|---:|');
  out(
    `| bridge | ${fmt(bridgeCpu.bridge ?? 0, 2)} | ${fmt(bridgeCpu.sshd, 2)} | ${fmt(bridgeCpu.client, 2)} | ${fmt(total(bridgeCpu), 2)} | ${fmt((CORES * 1000) / total(bridgeCpu), 0)} files/s |`,
  );
  out(
    `| raw | – | ${fmt(rawCpu.sshd, 2)} | ${fmt(rawCpu.client, 2)} | ${fmt(total(rawCpu), 2)} | ${fmt((CORES * 1000) / total(rawCpu), 0)} files/s |`,
  );
  out(
    `| (floor) transport alone | – | ${fmt(transportCpu.sshd, 2)} | ${fmt(transportCpu.client, 2)} (upload) | ${fmt(total(transportCpu), 2)} | |`,
  );
  out(
    `| (floor) bare webhook receiver | ${fmt(webhookFloor.serverMs, 2)} | – | ${fmt(webhookFloor.clientMs, 2)} | ${fmt(webhookFloor.serverMs + webhookFloor.clientMs, 2)} | |`,
  );
  out('');
  // What is left for the bridge at a target rate once sshd and the load generator have had theirs.
  const budgetAt = (rate: number): number => (CORES * 1000 - rate * (bridgeCpu.sshd + bridgeCpu.client)) / rate;
  const goals = [
    { name: '40 % of raw', rate: 0.4 * raw.filesPerSecond },
    { name: '30× naive', rate: 30 * naive.filesPerSecond },
  ];
  for (const goal of goals) {
    out(
      `At ${goal.name} (${fmt(goal.rate, 0)}/s), sshd and the load generator alone would use ${fmt((goal.rate * (bridgeCpu.sshd + bridgeCpu.client)) / 1000, 2)} of ${CORES} cores, leaving ${fmt(budgetAt(goal.rate), 2)} ms of CPU per export for the bridge (it used ${fmt(bridgeCpu.bridge ?? 0, 2)}).`,
    );
  }
  // Each part the issue requires, measured alone (warm, uncontended: optimistic), summed: a lower bound.
  // The cheaper of the two uploaders counts (raw's client skips the size check, ours pipelines).
  const uploadFloor = Math.min(transportCpu.client, rawCpu.client);
  const floor = webhookFloor.serverMs + renderFloorMs + ledgerFloorMs + uploadFloor;
  out(
    `Parts alone, CPU ms per export: bare signed-webhook receiver ${fmt(webhookFloor.serverMs, 2)} + render ${fmt(renderFloorMs, 2)} + ledger claim/record ${fmt(ledgerFloorMs, 2)} + upload ${fmt(uploadFloor, 2)} = ${fmt(floor, 2)} ms, ` +
      goals
        .map(
          (goal) =>
            `${floor > budgetAt(goal.rate) ? 'MORE than' : 'within'} the ${fmt(budgetAt(goal.rate), 2)} ms left at ${goal.name}`,
        )
        .join(', ') +
      '.',
  );
  out('');
  out(
    `bridge p99:      ${fmt(bridge.p99Ms)} ms at C=${C} (target < 100 ms)  ${bridge.p99Ms < 100 ? 'met' : 'NOT met'}`,
  );
  writeBenchResults({
    bench: 'export',
    command: 'npm run bench:export',
    setup: `${N.toLocaleString('en')} signed deliveries of \`export-invoice.json\`, concurrency ${C}, a real \`serve\` process (${WORKERS} worker${WORKERS > 1 ? 's' : ''}), SQLite ledger, ${POOL} connections, mapping generic-xml (${files[0]?.bytes.length ?? 0} bytes per file); baselines on the same sshd in the same run${process.env.BENCH_SFTP_DIR ? `, sshd files under ${process.env.BENCH_SFTP_DIR}` : ''}.`,
    machine,
    tables: [
      { columns: ['run', '>files', '>files/s', '>p50 ms', '>p99 ms'], rows },
      {
        columns: ['CPU ms per file', '>bridge process', '>sshd', '>load generator / raw client'],
        rows: [
          ['bridge run', fmt(bridgeCpu.bridge ?? 0, 2), fmt(bridgeCpu.sshd, 2), fmt(bridgeCpu.client, 2)],
          ['raw run', '–', fmt(rawCpu.sshd, 2), fmt(rawCpu.client, 2)],
        ],
      },
      {
        columns: ['part, measured alone', '>CPU ms per export'],
        rows: [
          ['a bare signed-webhook receiver (node:http, HMAC, JSON.parse, no framework)', fmt(webhookFloor.serverMs, 2)],
          ['the render', fmt(renderFloorMs, 2)],
          ["the ledger's claim and record", fmt(ledgerFloorMs, 2)],
          ['the cheaper of the two uploaders', fmt(uploadFloor, 2)],
          ['**total**', `**${fmt(floor, 2)}**`],
        ],
      },
    ],
    notes: [
      `p99 < 100 ms at C=${C}: ${bridge.p99Ms < 100 ? '**met**' : '**not met**'} (${fmt(bridge.p99Ms)} ms).`,
      `≥ 40 % of raw: ${ofRaw >= 40 ? '**met**' : '**not met**'} (${fmt(ofRaw)} %).`,
      `≥ 30× naive: ${ofNaive >= 30 ? '**met**' : '**not met**'} (${fmt(ofNaive)}×).`,
    ],
  });
}

main().catch((error: unknown) => {
  process.stderr.write(`bench failed: ${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});
