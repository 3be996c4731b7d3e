import { createConnection } from 'node:net';
import { performance } from 'node:perf_hooks';
import { posix } from 'node:path';
import type { ConnectConfig } from 'ssh2';
import SftpClient from 'ssh2-sftp-client';
import { fingerprintOfKey } from '../../src/transport/index.ts';

/**
 * Baselines for the export benchmark, measured against the same sshd in the same run:
 * - raw:   the same files, put + rename over ssh2-sftp-client connections opened beforehand
 *          (the ceiling: no webhook, mapping, ledger or pool bookkeeping);
 * - naive: connect, put, rename, end for every file (what a simple integration does).
 */
export interface BaselineServer {
  host: string;
  port: number;
  username: string;
  privateKey?: string;
  passphrase?: string;
  password?: string;
  /** Pin the host key like the product does (costs the same on both sides); omit to accept any. */
  hostKeyFingerprint?: string;
}

export interface BaselineFile {
  /** Name relative to `remoteDir`. */
  name: string;
  bytes: Buffer;
}

export interface BaselineOptions {
  server: BaselineServer;
  /** Folder the files go to, relative to the SFTP start folder or absolute; created before timing starts. */
  remoteDir: string;
  files: BaselineFile[];
  /** Parallel workers: connections (raw) or simultaneous connect-upload-disconnect cycles (naive). */
  concurrency: number;
}

export interface BaselineResult {
  name: 'raw' | 'naive' | 'bridge' | 'transport';
  files: number;
  seconds: number;
  filesPerSecond: number;
  /** Per-file latency in milliseconds. */
  p50Ms: number;
  p99Ms: number;
}

export async function measureRaw(options: BaselineOptions): Promise<BaselineResult> {
  const clients = await Promise.all(
    Array.from({ length: Math.max(1, options.concurrency) }, () => connect(options.server)),
  );
  try {
    await ensureDir(clients[0] as SftpClient, options.remoteDir);
    return await timed('raw', options, clients.length, async (worker, file) => {
      await putAndRename(clients[worker] as SftpClient, options.remoteDir, file);
    });
  } finally {
    await Promise.all(clients.map((client) => client.end().catch(() => undefined)));
  }
}

export async function measureNaive(options: BaselineOptions): Promise<BaselineResult> {
  const setup = await connect(options.server);
  try {
    await ensureDir(setup, options.remoteDir);
  } finally {
    await setup.end();
  }
  return timed('naive', options, Math.max(1, options.concurrency), async (_worker, file) => {
    const client = await connect(options.server);
    try {
      await putAndRename(client, options.remoteDir, file);
    } finally {
      await client.end();
    }
  });
}

/** Per-item latencies of a concurrent run, with the figures every table shows. */
export interface ConcurrentRun {
  seconds: number;
  /** Milliseconds per item, sorted. */
  latencies: number[];
}

/**
 * Runs `work(index, worker)` for every index in [from, to) on `workers` loops that take the next index
 * from one counter, so a slow item holds back only its own loop.
 */
export async function runConcurrently(
  from: number,
  to: number,
  workers: number,
  work: (index: number, worker: number) => Promise<unknown>,
): Promise<ConcurrentRun> {
  const latencies: number[] = [];
  let next = from;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: workers }, async (_, worker) => {
      while (next < to) {
        const index = next++;
        const begin = performance.now();
        await work(index, worker);
        latencies.push(performance.now() - begin);
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  return { seconds, latencies };
}

/** The row of the results table for a run of `files` items. */
export function resultOf(name: BaselineResult['name'], files: number, run: ConcurrentRun): BaselineResult {
  return {
    name,
    files,
    seconds: run.seconds,
    filesPerSecond: files / run.seconds,
    p50Ms: percentile(run.latencies, 0.5),
    p99Ms: percentile(run.latencies, 0.99),
  };
}

async function timed(
  name: BaselineResult['name'],
  options: BaselineOptions,
  workers: number,
  work: (worker: number, file: BaselineFile) => Promise<void>,
): Promise<BaselineResult> {
  const run = await runConcurrently(0, options.files.length, workers, (index, worker) =>
    work(worker, options.files[index] as BaselineFile),
  );
  return resultOf(name, options.files.length, run);
}

function percentile(sorted: number[], q: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] as number;
}

async function putAndRename(client: SftpClient, remoteDir: string, file: BaselineFile): Promise<void> {
  const finalPath = posix.join(remoteDir, file.name);
  const tempPath = posix.join(remoteDir, `.${file.name}.part`);
  await client.put(file.bytes, tempPath);
  await client.rename(tempPath, finalPath);
}

async function ensureDir(client: SftpClient, remoteDir: string): Promise<void> {
  if (!(await client.exists(remoteDir))) await client.mkdir(remoteDir, true);
}

async function connect(server: BaselineServer): Promise<SftpClient> {
  const client = new SftpClient('baseline', { error: () => undefined, end: () => undefined, close: () => undefined });
  const pinned = server.hostKeyFingerprint;
  const config: ConnectConfig = {
    host: server.host,
    port: server.port,
    username: server.username,
    readyTimeout: 20_000,
    // Like the product's pool: small SFTP requests must not wait for Nagle.
    sock: createConnection({ host: server.host, port: server.port, noDelay: true }),
    ...(server.privateKey !== undefined ? { privateKey: server.privateKey } : {}),
    ...(server.passphrase !== undefined ? { passphrase: server.passphrase } : {}),
    ...(server.password !== undefined ? { password: server.password } : {}),
    ...(pinned ? { hostVerifier: (key: Buffer) => fingerprintOfKey(key) === pinned } : {}),
  };
  await client.connect(config);
  return client;
}
