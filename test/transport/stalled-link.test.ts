import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Target, TargetConfigInput } from '../../src/transport/index.ts';
import { type LinkShape, TcpProxy } from '../support/tcp-proxy.ts';
import { failure, sftpTargetVia, uniqueFolder, useSshd } from './helpers.ts';

/**
 * Uploads whose link fails under them, in-process (so the mutation run sees these branches): a stall
 * that times an operation out, and TCP resets in the middle of a write and after the rename was sent.
 * Whatever an abandoned connection had queued must never reach the server later, a lost attempt's temp
 * file is removed by the retry, and an upload whose rename may have happened is never repeated.
 */
const sshdOf = useSshd();

interface Link {
  target: Target;
  proxy: TcpProxy;
  /** The target folder on sshd's disk. */
  dir: string;
  /** Names in the folder (none while it does not exist yet). */
  names(): string[];
  close(): Promise<void>;
}

/** A target on a fresh folder, reached through its own delay proxy (`shape`). */
async function linkTo(label: string, shape: LinkShape, overrides: Partial<TargetConfigInput>): Promise<Link> {
  const sshd = sshdOf();
  const proxy = await TcpProxy.start(sshd.port, sshd.host, shape);
  const folder = uniqueFolder(label);
  const target = sftpTargetVia(proxy, sshd, folder, overrides);
  const dir = join(sshd.root, folder);
  return {
    target,
    proxy,
    dir,
    names() {
      try {
        return readdirSync(dir);
      } catch {
        return [];
      }
    },
    async close() {
      proxy.resume();
      await target.close();
      await proxy.close();
    },
  };
}

async function waitFor(condition: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition() && Date.now() < deadline) await new Promise((resolve) => setImmediate(resolve));
}

describe('an upload on a link that fails under it', () => {
  it('abandoned on a stall, it is reset, not closed: nothing it queued reaches sshd after the link resumes', async () => {
    const link = await linkTo('stalled', {}, { pool: { size: 1, operationTimeoutMs: 400 }, retry: { attempts: 1 } });
    const { target, proxy } = link;
    try {
      await target.check();
      proxy.stall();
      const error = await failure(
        target.upload({ relativePath: 'stalled.xml', bytes: Buffer.alloc(4096, 65), onExisting: 'fail' }),
      );
      expect(error.code).toBe('OPERATION_TIMEOUT');
      // The OPEN (and what followed it) is held by the frozen link; the bridge has given up on it.
      expect(proxy.heldTransfers).toBeGreaterThan(0);
      const reachedBefore = proxy.bytesToServer;
      // Until the proxy has seen the bridge's side of the connection go, resuming would race it.
      await waitFor(() => proxy.open === 0, 5_000);
      expect(proxy.open).toBe(0);
      proxy.resume();
      expect(proxy.bytesToServer - reachedBefore).toBe(0);

      // The same link works again, and the folder holds the new file only: no temp of the abandoned try.
      await target.upload({ relativePath: 'after.xml', bytes: Buffer.from('<after/>'), onExisting: 'fail' });
      expect(link.names()).toEqual(['after.xml']);
    } finally {
      await link.close();
    }
  });

  it('reset mid-write, the retry on a new connection removes the temp file the lost one left and publishes once', async () => {
    // A slow link and one write at a time, so the write is still going when the reset comes.
    const link = await linkTo(
      'reset',
      { oneWayDelayMs: 40 },
      {
        pool: { size: 1, operationTimeoutMs: 5_000 },
        retry: { attempts: 2, minDelayMs: 0, maxDelayMs: 0 },
        upload: { writesInFlight: 1 },
      },
    );
    const content = Buffer.from(Array.from({ length: 400_000 }, (_, i) => (i * 13) % 241));
    const temps = (): string[] => link.names().filter((name) => name.endsWith('.part'));
    try {
      await link.target.check();
      const upload = link.target.upload({ relativePath: 'reset.pdf', bytes: content, onExisting: 'fail' });
      // Over 80 ms round trips the temp file exists for about a second.
      await waitFor(() => temps().length > 0, 5_000);
      expect(temps()).toHaveLength(1);
      link.proxy.reset();
      await upload;
      expect(link.names()).toEqual(['reset.pdf']);
      expect(readFileSync(join(link.dir, 'reset.pdf')).equals(content)).toBe(true);
    } finally {
      await link.close();
    }
  });

  it('reset after the rename was sent, it is not uploaded again (the rename may have happened), even under version', async () => {
    // The rename's answer spends 200 ms on the way back: the reset comes while it is still on the link, even on a
    // loaded machine (the test polls the folder and resets as soon as the file is there).
    const link = await linkTo(
      'committed',
      { oneWayDelayMs: 200 },
      {
        pool: { size: 1, operationTimeoutMs: 8_000, connectTimeoutMs: 8_000 },
        retry: { attempts: 3, minDelayMs: 0, maxDelayMs: 0 },
      },
    );
    try {
      await link.target.check();
      const upload = link.target.upload({
        relativePath: 'invoice.xml',
        bytes: Buffer.from('<invoice/>'),
        onExisting: 'version',
      });
      upload.catch(() => undefined);
      await waitFor(() => link.names().includes('invoice.xml'), 15_000);
      expect(link.names()).toContain('invoice.xml');
      link.proxy.reset();
      await expect(upload).rejects.toThrow();
      expect(link.names()).toEqual(['invoice.xml']);
    } finally {
      await link.close();
    }
  });
});
