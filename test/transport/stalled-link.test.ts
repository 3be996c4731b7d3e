import { readdirSync } from 'node:fs';
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
