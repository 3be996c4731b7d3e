import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll } from 'vitest';
import { freePort } from '../../src/dev/index.ts';

const run = promisify(execFile);

export interface PostgresInstance {
  url: string;
  port: number;
  stop(): Promise<void>;
  /** Fast shutdown, data kept: the ledger's server is gone until `start`. */
  halt(): Promise<void>;
  /** Starts the halted cluster again on the same port. */
  start(): Promise<void>;
}

function binDir(): string {
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root) ? readdirSync(root).sort((a, b) => Number(b) - Number(a)) : [];
  const version = versions.find((v) => existsSync(join(root, v, 'bin', 'postgres')));
  if (!version)
    throw new Error('PostgreSQL server binaries not found under /usr/lib/postgresql: apt-get install -y postgresql');
  return join(root, version, 'bin');
}

/** A private, throw-away PostgreSQL cluster on a free loopback port (trust auth, data in a temp dir). */
export async function startPostgres(): Promise<PostgresInstance> {
  const bin = binDir();
  const dataDir = mkdtempSync(join(tmpdir(), 'rsb-pg-'));
  const asRoot = process.getuid?.() === 0;
  // PostgreSQL refuses to run as root: hand the folder to the postgres user.
  const wrap = (command: string, args: string[]): [string, string[]] =>
    asRoot ? ['runuser', ['-u', 'postgres', '--', command, ...args]] : [command, args];
  if (asRoot) {
    const { stdout } = await run('id', ['-u', 'postgres']);
    const { stdout: gid } = await run('id', ['-g', 'postgres']);
    chownSync(dataDir, Number(stdout.trim()), Number(gid.trim()));
  }
  const [initCommand, initArgs] = wrap(join(bin, 'initdb'), [
    '-D',
    dataDir,
    '-U',
    'bridge',
    '--auth=trust',
    '-E',
    'UTF8',
    '--no-sync',
  ]);
  await run(initCommand, initArgs);
  const port = await freePort();
  const [command, args] = wrap(join(bin, 'postgres'), [
    '-D',
    dataDir,
    '-p',
    String(port),
    '-h',
    '127.0.0.1',
    '-k',
    dataDir,
    '-c',
    'fsync=off',
    '-c',
    'max_connections=200',
  ]);
  const url = `postgres://bridge@127.0.0.1:${port}/postgres`;
  const launch = async (): Promise<ChildProcess> => {
    const started: ChildProcess = spawn(command, args, { stdio: 'ignore' });
    const deadline = Date.now() + 20_000;
    for (;;) {
      try {
        await run(join(bin, 'pg_isready'), ['-h', '127.0.0.1', '-p', String(port)]);
        return started;
      } catch {
        if (Date.now() > deadline) throw new Error('PostgreSQL did not start within 20 s');
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
  };
  let child = await launch();
  const halt = async (): Promise<void> => {
    if (child.exitCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    // runuser does not pass signals on: signal the postmaster itself (fast shutdown).
    const postmasterPid = Number(readFileSync(join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
    if (postmasterPid > 0) process.kill(postmasterPid, 'SIGINT');
    else child.kill('SIGINT');
    await exited;
  };
  return {
    url,
    port,
    halt,
    async start() {
      if (child.exitCode === null) return;
      child = await launch();
    },
    async stop() {
      await halt();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** A private PostgreSQL for the calling file or describe block: started before its tests, stopped after them. */
export function usePostgres(): () => PostgresInstance {
  let postgres: PostgresInstance | undefined;
  beforeAll(async () => {
    postgres = await startPostgres();
  }, 60_000);
  afterAll(async () => {
    await postgres?.stop();
  });
  return () => {
    if (!postgres) throw new Error('usePostgres: PostgreSQL is not started yet (call it from a test or a hook)');
    return postgres;
  };
}
