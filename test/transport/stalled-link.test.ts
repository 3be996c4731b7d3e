import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SshdInstance } from '../support/sshd.ts';
import { TcpProxy } from '../support/tcp-proxy.ts';
import { failure, sftpTarget, uniqueFolder, withSshd } from './helpers.ts';

/**
 * An upload whose link stalls: the operation times out and the connection is abandoned. Whatever the
 * abandoned connection had queued must never reach the server once the link resumes, or an OPEN sent
 * into the stall creates a temp file after every cleanup has run (a leftover no sweep removes).
 */
describe('an upload abandoned on a stalled link', () => {
  let sshd: SshdInstance;
  let cleanup: () => Promise<void>;
  let proxy: TcpProxy;

  beforeAll(async () => {
    ({ sshd, cleanup } = await withSshd());
    proxy = await TcpProxy.start(sshd.port, sshd.host);
  });
  afterAll(async () => {
    await proxy.close();
    await cleanup();
  });

  it('is reset, not closed: nothing it queued reaches sshd after the link resumes, and no temp file appears', async () => {
    const folder = uniqueFolder('stalled');
    const viaProxy = new URL(sshd.url(folder));
    viaProxy.port = String(proxy.port);
    const target = sftpTarget(sshd, folder, {
      url: viaProxy.toString(),
      pool: { size: 1, operationTimeoutMs: 400 },
      retry: { attempts: 1 },
    });
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
      const deadline = Date.now() + 5_000;
      while (proxy.open > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
      expect(proxy.open).toBe(0);
      proxy.resume();
      expect(proxy.bytesToServer - reachedBefore).toBe(0);

      // The same link works again, and the folder holds the new file only: no temp of the abandoned try.
      await target.upload({ relativePath: 'after.xml', bytes: Buffer.from('<after/>'), onExisting: 'fail' });
      expect(readdirSync(join(sshd.root, folder))).toEqual(['after.xml']);
    } finally {
      proxy.resume();
      await target.close();
    }
  });
});

describe('an upload whose connection is reset mid-write', () => {
  let sshd: SshdInstance;
  let cleanup: () => Promise<void>;
  let proxy: TcpProxy;

  beforeAll(async () => {
    ({ sshd, cleanup } = await withSshd());
    // A slow link, so the write is still going when the reset comes.
    proxy = await TcpProxy.start(sshd.port, sshd.host, { oneWayDelayMs: 40 });
  });
  afterAll(async () => {
    await proxy.close();
    await cleanup();
  });

  it('the retry on a new connection removes the temp file the lost one left, and publishes the file once', async () => {
    const folder = uniqueFolder('reset');
    const viaProxy = new URL(sshd.url(folder));
    viaProxy.port = String(proxy.port);
    const target = sftpTarget(sshd, folder, {
      url: viaProxy.toString(),
      pool: { size: 1, operationTimeoutMs: 5_000 },
      retry: { attempts: 2, minDelayMs: 0, maxDelayMs: 0 },
      upload: { writesInFlight: 1 },
    });
    const content = Buffer.from(Array.from({ length: 400_000 }, (_, i) => (i * 13) % 241));
    const dir = join(sshd.root, folder);
    const temps = (): string[] => {
      try {
        return readdirSync(dir).filter((name) => name.endsWith('.part'));
      } catch {
        return [];
      }
    };
    try {
      await target.check();
      const upload = target.upload({ relativePath: 'reset.pdf', bytes: content, onExisting: 'fail' });
      // One write at a time over 80 ms round trips: the temp file exists for about a second.
      const deadline = Date.now() + 5_000;
      while (temps().length === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
      const leftBehind = temps();
      expect(leftBehind).toHaveLength(1);
      proxy.reset();
      await upload;
      expect(readdirSync(dir)).toEqual(['reset.pdf']);
      expect(readFileSync(join(dir, 'reset.pdf')).equals(content)).toBe(true);
    } finally {
      await target.close();
    }
  });
});

describe('an upload whose connection is reset after the rename was sent', () => {
  let sshd: SshdInstance;
  let cleanup: () => Promise<void>;
  let proxy: TcpProxy;

  beforeAll(async () => {
    ({ sshd, cleanup } = await withSshd());
    // The rename's answer spends 200 ms on the way back: the reset comes while it is still on the link, even on a
    // loaded machine (the test polls the folder and resets as soon as the file is there).
    proxy = await TcpProxy.start(sshd.port, sshd.host, { oneWayDelayMs: 200 });
  });
  afterAll(async () => {
    await proxy.close();
    await cleanup();
  });

  it('is not uploaded again (the rename may have happened): one file, even under onExisting: version', async () => {
    const folder = uniqueFolder('committed');
    const viaProxy = new URL(sshd.url(folder));
    viaProxy.port = String(proxy.port);
    const target = sftpTarget(sshd, folder, {
      url: viaProxy.toString(),
      pool: { size: 1, operationTimeoutMs: 8_000, connectTimeoutMs: 8_000 },
      retry: { attempts: 3, minDelayMs: 0, maxDelayMs: 0 },
    });
    const dir = join(sshd.root, folder);
    const published = (): boolean => {
      try {
        return readdirSync(dir).includes('invoice.xml');
      } catch {
        return false;
      }
    };
    try {
      await target.check();
      const upload = target.upload({
        relativePath: 'invoice.xml',
        bytes: Buffer.from('<invoice/>'),
        onExisting: 'version',
      });
      upload.catch(() => undefined);
      const deadline = Date.now() + 15_000;
      while (!published() && Date.now() < deadline) await new Promise((resolve) => setImmediate(resolve));
      expect(published()).toBe(true);
      proxy.reset();
      await expect(upload).rejects.toThrow();
      expect(readdirSync(dir)).toEqual(['invoice.xml']);
    } finally {
      await target.close();
    }
  });
});
