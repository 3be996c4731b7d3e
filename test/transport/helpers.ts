import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTarget, isTransportError, type Target, type TargetConfigInput, type TransportError, type TransportHooks } from '../../src/transport/index.ts';
import { silentLogger } from '../../src/observability/logger.ts';
import { startSshd, type SshdInstance, type StartSshdOptions } from '../support/sshd.ts';

export function tempDir(prefix = 'bridge-transport-'): { path: string; remove(): void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

/** One private sshd per test file (tests in a file share it; each uses its own sub-folder). */
export async function withSshd(options: Partial<StartSshdOptions> = {}): Promise<{ sshd: SshdInstance; cleanup(): Promise<void> }> {
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

let counter = 0;

/** A fresh folder name under inbound/ so tests sharing one sshd never see each other's files. */
export function uniqueFolder(label: string): string {
  counter++;
  return `inbound/${label}-${process.pid}-${counter}`;
}

export function sftpTarget(sshd: SshdInstance, folder: string, overrides: Partial<TargetConfigInput> = {}, metrics?: TransportHooks): Target {
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
