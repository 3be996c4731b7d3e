import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import {
  createTarget,
  isTransportError,
  type Target,
  type TargetConfigInput,
  type TransportError,
  type TransportHooks,
} from '../../src/transport/index.ts';
import { silentLogger } from '../../src/observability/logger.ts';
import type { LyingSftpServer } from '../support/lying-sftp-server.ts';
import { startSshd, type SshdInstance, type StartSshdOptions } from '../support/sshd.ts';
import { TcpProxy } from '../support/tcp-proxy.ts';

export function tempDir(prefix = 'bridge-transport-'): { path: string; remove(): void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

/** One private sshd per test file (tests in a file share it; each uses its own sub-folder). */
export async function withSshd(
  options: Partial<StartSshdOptions> = {},
): Promise<{ sshd: SshdInstance; cleanup(): Promise<void> }> {
  const dir = tempDir('bridge-sshd-');
  const sshd = await startSshd({ baseDir: dir.path, ...options });
  return {
    sshd,
    async cleanup() {
      await sshd.stop();
      dir.remove();
    },
  };
}

/** One private sshd for the calling file or describe block: started before its tests, stopped after them. */
export function useSshd(options: Partial<StartSshdOptions> = {}): () => SshdInstance {
  let started: { sshd: SshdInstance; cleanup(): Promise<void> } | undefined;
  beforeAll(async () => {
    started = await withSshd(options);
  });
  afterAll(async () => {
    await started?.cleanup();
  });
  return () => {
    if (!started) throw new Error('useSshd: the sshd is not started yet (call it from a test or a hook)');
    return started.sshd;
  };
}

/** A private sshd behind a delay proxy (a WAN round trip each way) for the calling file or describe block. */
export function useSshdBehindProxy(oneWayDelayMs: number): { readonly sshd: SshdInstance; readonly proxy: TcpProxy } {
  const sshd = useSshd();
  let proxy: TcpProxy | undefined;
  beforeAll(async () => {
    proxy = await TcpProxy.start(sshd().port, sshd().host, { oneWayDelayMs });
  });
  afterAll(async () => {
    await proxy?.close();
  });
  return {
    get sshd() {
      return sshd();
    },
    get proxy() {
      if (!proxy) throw new Error('useSshdBehindProxy: the proxy is not started yet (use it from a test or a hook)');
      return proxy;
    },
  };
}

let counter = 0;

/** A fresh folder name under inbound/ so tests sharing one sshd never see each other's files. */
export function uniqueFolder(label: string): string {
  counter++;
  return `inbound/${label}-${process.pid}-${counter}`;
}

export function sftpTarget(
  sshd: SshdInstance,
  folder: string,
  overrides: Partial<TargetConfigInput> = {},
  metrics?: TransportHooks,
): Target {
  return createTarget(
    'erp',
    {
      url: sshd.url(folder),
      hostKey: sshd.hostKeyFingerprint,
      privateKey: sshd.privateKey,
      ...overrides,
    },
    { logger: silentLogger(), ...(metrics ? { metrics } : {}) },
  );
}

/** An sftpTarget on `folder` whose connections go through `proxy` (a delayed or failing link) instead of straight to sshd. */
export function sftpTargetVia(
  proxy: { readonly port: number },
  sshd: SshdInstance,
  folder: string,
  overrides: Partial<TargetConfigInput> = {},
): Target {
  const viaProxy = new URL(sshd.url(folder));
  viaProxy.port = String(proxy.port);
  return sftpTarget(sshd, folder, { ...overrides, url: viaProxy.toString() });
}

/** A target on `dir` (created) of the in-process lying SFTP server, one attempt per operation unless overridden. */
export function lyingTarget(
  server: LyingSftpServer,
  dir: string,
  overrides: Partial<TargetConfigInput> = {},
  metrics?: TransportHooks,
): Target {
  mkdirSync(join(server.root, dir), { recursive: true });
  return createTarget(
    'liar',
    {
      url: server.url(dir),
      hostKey: server.hostKeyFingerprint,
      password: server.password,
      retry: { attempts: 1 },
      ...overrides,
    },
    { logger: silentLogger(), ...(metrics ? { metrics } : {}) },
  );
}

export function fileUrl(path: string): string {
  return `file://${path}`;
}

/** The TransportError an operation fails with; throws if it succeeds or fails with anything else. */
export async function failure(promise: Promise<unknown>): Promise<TransportError> {
  try {
    await promise;
  } catch (error) {
    if (isTransportError(error)) return error;
    throw error;
  }
  throw new Error('expected the operation to fail');
}

/**
 * Uploads every file at once while an observer lists `folder` (the target's folder on local disk) in a
 * tight loop and reads every final name it sees: a file under its final name must be complete.
 */
export async function uploadWhileObserving(
  target: Target,
  folder: string,
  expected: ReadonlyMap<string, Buffer>,
): Promise<{ violations: string[]; reads: number }> {
  let stop = false;
  let reads = 0;
  const violations: string[] = [];
  const observer = (async () => {
    while (!stop) {
      for (const name of existsSync(folder) ? readdirSync(folder) : []) {
        const want = expected.get(name);
        if (!want) continue; // temporary names are allowed to be partial
        let got: Buffer;
        try {
          got = readFileSync(join(folder, name));
        } catch {
          continue; // renamed away between the listing and the read
        }
        reads++;
        if (!got.equals(want)) violations.push(`${name}: ${got.length} of ${want.length} bytes`);
      }
      await new Promise((resolve) => setImmediate(resolve));
    }
  })();
  try {
    await Promise.all(
      [...expected].map(([name, bytes]) => target.upload({ relativePath: name, bytes, onExisting: 'fail' })),
    );
  } finally {
    stop = true;
    await observer;
  }
  return { violations, reads };
}
