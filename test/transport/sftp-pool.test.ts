import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { isTransportError, type PoolStats, type SftpPoolStats } from '../../src/transport/index.ts';
import { sftpTarget, uniqueFolder, useSshd } from './helpers.ts';

describe('connection pool', () => {
  const sshd = useSshd();

  it('reuses connections across requests and never opens more than pool.size', async () => {
    const folder = uniqueFolder('reuse');
    let maxOpen = 0;
    let maxHandshakes = 0;
    const target = sftpTarget(
      sshd(),
      folder,
      { pool: { size: 3, maxConcurrentHandshakes: 2 } },
      {
        onPoolChange(_name, stats: PoolStats) {
          const extended = stats as SftpPoolStats;
          maxOpen = Math.max(maxOpen, extended.size);
          maxHandshakes = Math.max(maxHandshakes, extended.handshakesInFlight);
        },
      },
    );
    const loginsBefore = sshd().loginCount();
    try {
      for (let round = 0; round < 3; round++) {
        await Promise.all(
          Array.from({ length: 20 }, (_, i) =>
            target.upload({
              relativePath: `r${round}-${i}.xml`,
              bytes: Buffer.from(`<r${round} i="${i}"/>`),
              onExisting: 'fail',
            }),
          ),
        );
      }
      const stats = target.stats() as SftpPoolStats;
      // sshd()'s own log is the independent witness: 60 uploads, 3 logins.
      expect(sshd().loginCount() - loginsBefore).toBe(3);
      expect(stats.connectsTotal).toBe(3);
      expect(maxOpen).toBeLessThanOrEqual(3);
      expect(maxHandshakes).toBeLessThanOrEqual(2);
      expect(stats).toMatchObject({ size: 3, inUse: 0, idle: 3, pending: 0 });
      expect(readdirSync(join(sshd().root, folder))).toHaveLength(60);
    } finally {
      await target.close();
    }
  });

  it('closes connections left idle longer than idleCloseMs', async () => {
    const target = sftpTarget(sshd(), uniqueFolder('idle'), { pool: { size: 2, idleCloseMs: 300 } });
    try {
      await target.check();
      expect(target.stats().size).toBe(1);
      await waitFor(() => target.stats().size === 0, 5_000);
      await target.check();
      expect((target.stats() as SftpPoolStats).connectsTotal).toBe(2);
    } finally {
      await target.close();
    }
  });

  it('a cancelled request still waiting in the queue is not executed', async () => {
    const folder = uniqueFolder('abort');
    const target = sftpTarget(sshd(), folder, { pool: { size: 1 } });
    try {
      const big = target.upload({ relativePath: 'big.bin', bytes: Buffer.alloc(2_000_000, 1), onExisting: 'fail' });
      const controller = new AbortController();
      const queued = target.upload(
        { relativePath: 'queued.xml', bytes: Buffer.from('q'), onExisting: 'fail' },
        { signal: controller.signal },
      );
      controller.abort();
      await expect(queued).rejects.toMatchObject({ code: 'ABORTED', permanent: false });
      await big;
      expect(readdirSync(join(sshd().root, folder))).toEqual(['big.bin']);
    } finally {
      await target.close();
    }
  });

  it('replaces a pooled connection the server dropped while it was idle', async () => {
    const folder = uniqueFolder('stale');
    const target = sftpTarget(sshd(), folder, { pool: { size: 1, checkIdleAfterMs: 0 } });
    try {
      await target.upload({ relativePath: 'one.xml', bytes: Buffer.from('1'), onExisting: 'fail' });
      // Kill only the session processes: the listener stays, the pooled connection dies.
      await sshd().kill('SIGKILL');
      await sshd().restart();
      await target.upload({ relativePath: 'two.xml', bytes: Buffer.from('2'), onExisting: 'fail' });
      expect(readFileSync(join(sshd().root, folder, 'two.xml'), 'utf8')).toBe('2');
      expect((target.stats() as SftpPoolStats).connectsTotal).toBe(2);
    } finally {
      await target.close();
    }
  });

  it('sshd() killed mid-run: operations fail as transient, then succeed after it returns, without restarting the target', async () => {
    const folder = uniqueFolder('kill');
    const target = sftpTarget(sshd(), folder, {
      pool: { size: 4 },
      retry: { attempts: 2, minDelayMs: 50, maxDelayMs: 100 },
    });
    try {
      await target.check();
      const outcomes: Array<{ ok: true } | { ok: false; code: string; permanent: boolean; message: string }> = [];
      let killed = false;
      const uploads = Array.from({ length: 40 }, async (_, i) => {
        if (i === 10) {
          killed = true;
          await sshd().kill('SIGKILL');
        }
        try {
          await target.upload({ relativePath: `k-${i}.bin`, bytes: Buffer.alloc(200_000, i), onExisting: 'fail' });
          outcomes.push({ ok: true });
        } catch (error) {
          if (!isTransportError(error)) throw error;
          outcomes.push({ ok: false, code: error.code, permanent: error.permanent, message: error.message });
        }
      });
      await Promise.all(uploads);
      expect(killed).toBe(true);
      const failures = outcomes.filter((outcome) => !outcome.ok);
      expect(failures.length).toBeGreaterThan(0);
      for (const failed of failures) {
        expect(failed).toMatchObject({ permanent: false });
        expect((failed as { message: string }).message).toContain(`127.0.0.1:${sshd().port}`);
      }
      // Whatever did land is complete: no partial file under a final name.
      for (const name of readdirSync(join(sshd().root, folder)).filter((n) => n.startsWith('k-'))) {
        const i = Number(name.slice(2, -4));
        expect(readFileSync(join(sshd().root, folder, name)).equals(Buffer.alloc(200_000, i))).toBe(true);
      }

      await sshd().restart();
      await target.upload({ relativePath: 'after-restart.xml', bytes: Buffer.from('<back/>'), onExisting: 'fail' });
      expect(readFileSync(join(sshd().root, folder, 'after-restart.xml'), 'utf8')).toBe('<back/>');
    } finally {
      await target.close();
    }
  });

  it('a server that stops answering fails with a transient OPERATION_TIMEOUT, and the pool recovers when it answers again', async () => {
    const folder = uniqueFolder('hang');
    // No idle probe and no keepalive: the upload runs on the connection check() opened, so only the operation can time out.
    const target = sftpTarget(sshd(), folder, {
      pool: { size: 1, operationTimeoutMs: 500, connectTimeoutMs: 500, checkIdleAfterMs: 600_000, keepaliveMs: 0 },
      retry: { attempts: 1 },
    });
    try {
      await target.check();
      await sshd().kill('SIGSTOP');
      let error: unknown;
      try {
        await target.upload({ relativePath: 'hung.xml', bytes: Buffer.from('h'), onExisting: 'fail' });
      } catch (caught) {
        error = caught;
      } finally {
        await sshd().kill('SIGCONT');
      }
      expect(error).toMatchObject({ permanent: false, location: { host: `127.0.0.1:${sshd().port}` } });
      expect(['OPERATION_TIMEOUT', 'CONNECT_TIMEOUT']).toContain((error as { code: string }).code);
      expect((error as { code: string }).code).toBe('OPERATION_TIMEOUT');
      await target.upload({ relativePath: 'after.xml', bytes: Buffer.from('a'), onExisting: 'fail' });
      expect(readFileSync(join(sshd().root, folder, 'after.xml'), 'utf8')).toBe('a');
    } finally {
      await target.close();
    }
  });

  it('an unreachable server is a transient CONNECT_FAILED naming host:port', async () => {
    const target = sftpTarget(sshd(), uniqueFolder('down'), {
      url: `sftp://root@127.0.0.1:1/~/inbound`,
      retry: { attempts: 2, minDelayMs: 10, maxDelayMs: 20 },
    });
    try {
      const error = await target.check().then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(isTransportError(error)).toBe(true);
      expect(error).toMatchObject({ code: 'CONNECT_FAILED', permanent: false, location: { host: '127.0.0.1:1' } });
    } finally {
      await target.close();
    }
  });
});

async function waitFor(condition: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not reached in time');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
