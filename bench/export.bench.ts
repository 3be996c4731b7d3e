/**
 * Export throughput: N signed deliveries of a realistic payload at concurrency C against a real
 * `serve` process and a real OpenSSH sshd, beside two baselines measured in the same run on the
 * same sshd: raw (put + rename over the same number of pre-opened connections as the pool) and
 * naive (connect, upload, disconnect per export).
 *
 *   npm run bench:export                       # N=2000, C=8
 *   BENCH_N=500 BENCH_C=4 npm run bench:export
 */
import { spawn } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { Agent, request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, startSshd } from '../src/dev/sshd.ts';
import { measureNaive, measureRaw, type BaselineFile, type BaselineResult } from './support/baselines.ts';

const N = Number(process.env.BENCH_N ?? 2000);
const C = Number(process.env.BENCH_C ?? 8);
const POOL = Number(process.env.BENCH_POOL ?? 4);
const WORKERS = Number(process.env.BENCH_WORKERS ?? 1);
const NAIVE_N = Math.min(N, Number(process.env.BENCH_NAIVE_N ?? 400));
// Long enough for V8 to optimize the hot paths: the figure is the steady state of a long-running service.
const WARMUP = Number(process.env.BENCH_WARMUP ?? 400);
const SECRET = 'bench-secret-0123456789abcdef';
const root = fileURLToPath(new URL('../', import.meta.url));

function percentile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] ?? 0;
}

/** User + system CPU seconds a process has used so far (Linux /proc; 0 elsewhere). */
function cpuSecondsOf(pid: number | undefined): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return 0;
  }
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'rsb-bench-export-'));
  const sshd = await startSshd({ baseDir: join(dir, 'sftp') });
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
      'logLevel: warn',
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
  const child = spawn(process.execPath, [...profile, join(root, 'bin/rossum-sftp-bridge'), 'serve', '--config', configFile], { stdio: ['ignore', 'inherit', 'inherit'] });
  const url = `http://127.0.0.1:${port}/webhooks/rossum`;
  for (let tries = 0; ; tries++) {
    if (child.exitCode !== null) throw new Error(`serve exited with ${child.exitCode}`);
    const ready = await fetch(url.replace('/webhooks/rossum', '/healthz')).then((r) => r.ok).catch(() => false);
    if (ready) break;
    if (tries > 300) throw new Error('serve did not start within 30 s');
    await new Promise((resolve) => setTimeout(resolve, 100));
  }

  const template = JSON.parse(readFileSync(join(root, 'test/fixtures/rossum/export-invoice.json'), 'utf8')) as { annotation: { id: number }; request_id: string };
  const bodies = Array.from({ length: N + WARMUP }, (_, i) => {
    template.annotation.id = 9_000_000 + i;
    template.request_id = `bench-${i}`;
    const body = JSON.stringify(template);
    return { body, signature: `sha256=${createHmac('sha256', SECRET).update(body).digest('hex')}` };
  });

  // node:http with keep-alive: the load generator shares the 2 cores, so it should cost little CPU.
  const agent = new Agent({ keepAlive: true, maxSockets: C });
  const post = (body: string, signature: string): Promise<{ status: number; text: string }> =>
    new Promise((resolve, reject) => {
      const request = httpRequest(url, { method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'x-rossum-signature-sha256': signature } }, (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () => resolve({ status: response.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
        response.on('error', reject);
      });
      request.on('error', reject);
      request.end(body);
    });
  const send = async (index: number): Promise<number> => {
    const { body, signature } = bodies[index] as { body: string; signature: string };
    const started = performance.now();
    const response = await post(body, signature);
    const reply = JSON.parse(response.text) as { messages?: Array<{ type: string; content: string }> };
    if (response.status !== 200 || reply.messages?.[0]?.type !== 'info') throw new Error(`delivery ${index}: ${response.status} ${response.text}`);
    return performance.now() - started;
  };

  for (let i = 0; i < WARMUP; i += C) await Promise.all(Array.from({ length: Math.min(C, WARMUP - i) }, (_, k) => send(i + k)));

  const latencies: number[] = [];
  let next = WARMUP;
  const cpuBefore = cpuSecondsOf(child.pid);
  const started = performance.now();
  await Promise.all(
    Array.from({ length: C }, async () => {
      while (next < N + WARMUP) latencies.push(await send(next++));
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  const bridgeCpuMs = ((cpuSecondsOf(child.pid) - cpuBefore) * 1000) / N;
  latencies.sort((a, b) => a - b);
  const bridge: BaselineResult = { name: 'raw', files: N, seconds, filesPerSecond: N / seconds, p50Ms: percentile(latencies, 0.5), p99Ms: percentile(latencies, 0.99) };

  agent.destroy();
  child.kill('SIGTERM');
  await new Promise((resolve) => child.once('exit', resolve));

  const files: BaselineFile[] = readdirSync(sshd.inboundDir)
    .filter((name) => name.endsWith('.xml'))
    .slice(0, N)
    .map((name) => ({ name, bytes: readFileSync(join(sshd.inboundDir, name)) }));
  const server = { host: sshd.host, port: sshd.port, username: sshd.username, privateKey: sshd.privateKey, hostKeyFingerprint: sshd.hostKeyFingerprint };
  const raw = await measureRaw({ server, remoteDir: 'raw', files, concurrency: POOL });
  const naive = await measureNaive({ server, remoteDir: 'naive', files: files.slice(0, NAIVE_N), concurrency: C });
  await sshd.stop();

  const fmt = (value: number, digits = 1): string => value.toFixed(digits);
  const rows = [
    ['bridge (webhook → mapping → ledger → pooled SFTP)', N, fmt(bridge.filesPerSecond), fmt(bridge.p50Ms), fmt(bridge.p99Ms)],
    [`raw (put + rename, ${POOL} open connections)`, raw.files, fmt(raw.filesPerSecond), fmt(raw.p50Ms), fmt(raw.p99Ms)],
    [`naive (connect/upload/disconnect, ${C} at once)`, naive.files, fmt(naive.filesPerSecond), fmt(naive.p50Ms), fmt(naive.p99Ms)],
  ];
  const out = (line: string): void => void process.stdout.write(`${line}\n`);
  out(`\nexport benchmark: N=${N}, C=${C}, connections=${POOL} (${WORKERS} worker${WORKERS > 1 ? 's' : ''} × ${Math.max(1, Math.round(POOL / WORKERS))}), payload export-invoice.json (3 lines), mapping generic-xml, ${files[0]?.bytes.length ?? 0} bytes per file`);
  out('| run | files | files/s | p50 ms | p99 ms |');
  out('|---|---:|---:|---:|---:|');
  for (const row of rows) out(`| ${row.join(' | ')} |`);
  const ofRaw = (bridge.filesPerSecond / raw.filesPerSecond) * 100;
  const ofNaive = bridge.filesPerSecond / naive.filesPerSecond;
  out('');
  out(`bridge vs raw:   ${fmt(ofRaw)} % (target ≥ 80 %)  ${ofRaw >= 80 ? 'met' : 'NOT met'}`);
  out(`bridge vs naive: ${fmt(ofNaive)}× (target ≥ 30×)  ${ofNaive >= 30 ? 'met' : 'NOT met'}`);
  out(`bridge CPU:      ${fmt(bridgeCpuMs, 2)} ms per export (serve process, user + system)`);
  out(`bridge p99:      ${fmt(bridge.p99Ms)} ms at C=${C} (target < 100 ms)  ${bridge.p99Ms < 100 ? 'met' : 'NOT met'}`);
}

main().catch((error: unknown) => {
  process.stderr.write(`bench failed: ${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});
