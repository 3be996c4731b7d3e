import { execFileSync } from 'node:child_process';
import {
  closeSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { callHook, type HookCallOutcome } from '../../src/rossum/hook-call.ts';
import { ServeProcess, writeServeConfig } from '../support/fault-serve.ts';
import { freePort, type SshdInstance, startSshd } from '../support/sshd.ts';
import { TcpProxy } from '../support/tcp-proxy.ts';

/*
 * Faults of a real link and a real ERP disk, on their own short stream (the main fault stream is long
 * enough already): a 20 s stall of the link in the middle of an upload, a TCP reset while a file is
 * being written, a window of jitter, and the ERP's disk full (a size-limited tmpfs under the sshd's
 * folder, filled by a ballast file: the server really answers the writes with a failure). Deliveries
 * are called the way Rossum calls a hook (src/rossum/hook-call.ts), retries included. Afterwards:
 * every annotation exported exactly once (one file, one ledger row), no failed_export, and no file was
 * ever visible under its final name before it was complete.
 */
const SECRET = 'link-faults-hook-secret-5b2e';
const ANNOTATIONS = 90;
const SPACING_MS = 150;
const STALL_MS = 20_000;
const WEBHOOK_DEADLINE_MS = 3_000;
// Rossum retries "within 30 seconds"; 6 s between attempts still outlasts the stall within 5 attempts.
const HOOK_POLICY = { timeoutS: 10, retryCount: 4, retryDelayS: 6 } as const;
const TEMP = /^\..*\.part$/;
const FIRST_ID = 7_700_000;

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function waitUntil(condition: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) return false;
    await sleep(2);
  }
  return true;
}

describe('faults of real links and a full ERP disk', () => {
  let dir: string;
  let inbound: string;
  let sshd: SshdInstance;
  let proxy: TcpProxy;
  let serve: ServeProcess;
  let ledgerPath: string;
  let mounted = false;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'rsb-link-faults-'));
    inbound = join(dir, 'sshd', 'inbound');
    mkdirSync(inbound, { recursive: true });
    // A disk that can really fill up: 8 MB of tmpfs (needs root, as the rest of the suite's sshd set-up does).
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=8m,mode=0755', 'tmpfs', inbound], { stdio: 'pipe' });
      mounted = true;
    } catch (error) {
      throw new Error(
        `link-faults: cannot mount a size-limited tmpfs at ${inbound} for the disk-full fault (run as root with CAP_SYS_ADMIN): ${String(error)}`,
      );
    }
    sshd = await startSshd({ baseDir: join(dir, 'sshd') });
    proxy = await TcpProxy.start(sshd.port, sshd.host, { oneWayDelayMs: 10 });
    const port = await freePort();
    ledgerPath = join(dir, 'ledger.db');
    const viaProxy = new URL(sshd.url('inbound'));
    viaProxy.port = String(proxy.port);
    const configPath = writeServeConfig(dir, {
      port,
      secret: SECRET,
      ledgerPath,
      server: { deadlineMs: WEBHOOK_DEADLINE_MS },
      target: {
        url: viaProxy.toString(),
        hostKey: sshd.hostKeyFingerprint,
        privateKeyPath: sshd.privateKeyPath,
        pool: { size: 2, connectTimeoutMs: 1_500, operationTimeoutMs: 2_000, keepaliveMs: 1_000 },
        retry: { attempts: 2, minDelayMs: 100, maxDelayMs: 300 },
      },
    });
    serve = await ServeProcess.start({ configPath, port, outputPath: join(dir, 'serve.out') });
  }, 120_000);

  afterAll(async () => {
    await serve?.stop();
    await proxy?.close();
    await sshd?.stop();
    if (mounted) execFileSync('umount', ['-l', inbound]);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('stall 20 s, reset mid-write, jitter, disk full: each exported exactly once, nothing half-visible', async () => {
    const template = JSON.parse(
      readFileSync(new URL('../fixtures/rossum/export-invoice.json', import.meta.url), 'utf8'),
    ) as { annotation: { id: number }; request_id: string };

    // The observer: every final name it ever sees is read at once; later it must still hold the same bytes.
    const firstSeen = new Map<string, Buffer>();
    let observing = true;
    const observer = (async () => {
      while (observing) {
        for (const name of readdirSync(inbound)) {
          if (TEMP.test(name) || firstSeen.has(name) || name.startsWith('ballast')) continue;
          try {
            firstSeen.set(name, readFileSync(join(inbound, name)));
          } catch {
            // renamed away between the listing and the read: not a final name any more
          }
        }
        await sleep(5);
      }
    })();
    const tempVisible = (): boolean => readdirSync(inbound).some((name) => TEMP.test(name));

    const outcomes = new Map<number, HookCallOutcome>();
    const attemptTimes: Array<{ at: number; status: number | null }> = [];
    const deliveries: Array<Promise<void>> = [];
    const streamDone = (async () => {
      for (let i = 0; i < ANNOTATIONS; i++) {
        template.annotation.id = FIRST_ID + i;
        template.request_id = `link-${i}`;
        const body = JSON.stringify(template);
        const id = FIRST_ID + i;
        deliveries.push(
          callHook({
            url: serve.url,
            body,
            secret: SECRET,
            ...HOOK_POLICY,
            onAttempt: (record) => attemptTimes.push({ at: Date.now(), status: record.statusCode }),
          }).then((outcome) => void outcomes.set(id, outcome)),
        );
        await sleep(SPACING_MS);
      }
    })();

    let ballastBytes = 0;
    const windows: Record<string, { from: number; to: number; detail?: unknown }> = {};
    // 1. jitter: up to 60 ms more each way, for 3 s, once exports are flowing.
    if (!(await waitUntil(() => attemptTimes.some((attempt) => attempt.status === 200), 30_000)))
      throw new Error('no export was answered within 30 s of the stream starting');
    let from = Date.now();
    proxy.shape = { oneWayDelayMs: 10, jitterMs: 60 };
    await sleep(3_000);
    proxy.shape = { oneWayDelayMs: 10 };
    windows.jitter = { from, to: Date.now() };

    // 2. reset while a file is being written (its temp name exists on the server).
    const resetMidWrite = await waitUntil(tempVisible, 10_000);
    from = Date.now();
    proxy.reset();
    windows.reset = { from, to: Date.now(), detail: { resetMidWrite } };

    // 3. the ERP's disk is full for 3 s: a ballast file takes every free block.
    await sleep(500);
    from = Date.now();
    const ballast = join(inbound, 'ballast.bin');
    ballastBytes = 0;
    const fd = openSync(ballast, 'w');
    try {
      const block = Buffer.alloc(64 * 1024, 0);
      for (;;) {
        try {
          ballastBytes += writeSync(fd, block);
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code === 'ENOSPC') break;
          throw error;
        }
      }
    } finally {
      closeSync(fd);
    }
    await sleep(3_000);
    unlinkSync(ballast);
    windows.diskFull = { from, to: Date.now() };

    // 4. the link stalls for 20 s in the middle of an upload.
    await sleep(1_000);
    const stallMidUpload = await waitUntil(tempVisible, 10_000);
    from = Date.now();
    proxy.stall();
    await sleep(STALL_MS);
    proxy.resume();
    windows.stall = { from, to: Date.now(), detail: { stallMidUpload } };

    await streamDone;
    await Promise.all(deliveries);
    observing = false;
    await observer;

    // Every annotation: exported, exactly once: one ledger row, one file, no temp left.
    const all = [...outcomes.entries()];
    expect(all).toHaveLength(ANNOTATIONS);
    const notExported = all.filter(([, outcome]) => outcome.annotationStatus !== 'exported');
    expect(notExported.map(([id, outcome]) => ({ id, messages: outcome.messages }))).toEqual([]);
    const db = new Database(ledgerPath, { readonly: true });
    const rows = db.prepare('SELECT annotation_id, status, remote_path FROM exports').all() as Array<{
      annotation_id: number;
      status: string;
      remote_path: string;
    }>;
    db.close();
    expect(rows).toHaveLength(ANNOTATIONS);
    expect(new Set(rows.map((row) => Number(row.annotation_id))).size).toBe(ANNOTATIONS);
    expect(rows.filter((row) => row.status !== 'uploaded')).toEqual([]);
    const finals = readdirSync(inbound).filter((name) => !TEMP.test(name));
    expect(finals.sort()).toEqual(rows.map((row) => row.remote_path).sort());
    expect(readdirSync(inbound).filter((name) => TEMP.test(name))).toEqual([]);
    // Never half-visible: what the observer first read under a final name is the whole file.
    for (const name of finals) expect(firstSeen.get(name)?.equals(readFileSync(join(inbound, name)))).toBe(true);

    // The faults really struck, and the bridge answered them with 503 (Rossum retried), not with a failure.
    expect(windows.reset?.detail).toEqual({ resetMidWrite: true });
    expect(windows.stall?.detail).toEqual({ stallMidUpload: true });
    expect(ballastBytes).toBeGreaterThan(0);
    const answeredIn = (window: { from: number; to: number } | undefined, slackMs: number) =>
      attemptTimes.filter(
        (attempt) => window && attempt.at >= window.from && attempt.at <= window.to + slackMs && attempt.status === 503,
      ).length;
    expect(answeredIn(windows.stall, WEBHOOK_DEADLINE_MS)).toBeGreaterThan(0);
    expect(answeredIn(windows.diskFull, WEBHOOK_DEADLINE_MS)).toBeGreaterThan(0);
    const retried = all.filter(([, outcome]) => outcome.attempts.length > 1).length;
    expect(retried).toBeGreaterThan(0);
    console.log(
      `link faults: ${ANNOTATIONS} exported once each; ${retried} needed a retry; 503 answers in the stall ${answeredIn(windows.stall, WEBHOOK_DEADLINE_MS)}, disk full ${answeredIn(windows.diskFull, WEBHOOK_DEADLINE_MS)}; ballast ${ballastBytes} bytes`,
    );
  }, 240_000);
});
