import { createHmac } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fixture, repoRoot } from '../support/bridge.ts';
import { ServeProcess } from '../support/fault-serve.ts';
import { freePort, startSshd, type SshdInstance } from '../support/sshd.ts';

const SECRET = 'attack-test-secret-5e1d9c3a7b';
const BODY_LIMIT = 10 * 1024 * 1024;
const UNVERIFIED_BUDGET = 8 * 1024 * 1024;
const BODY_IDLE_MS = 1_500;

let sshd: SshdInstance;
let serve: ServeProcess;
let port: number;

function rssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1]) * 1024;
}

/** A raw connection that sends headers (and maybe part of a body), then whatever the test says. */
interface RawCall {
  socket: Socket;
  response: Promise<string>;
  closed: Promise<number>;
}

function openCall(headers: Record<string, string | number>, firstBytes: Buffer = Buffer.alloc(0)): RawCall {
  const socket = connect(port, '127.0.0.1');
  socket.on('error', () => undefined);
  const head = [
    `POST /webhooks/rossum HTTP/1.1`,
    `Host: 127.0.0.1:${port}`,
    ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
    '',
    '',
  ].join('\r\n');
  socket.write(head);
  if (firstBytes.length > 0) socket.write(firstBytes);
  let received = '';
  const response = new Promise<string>((resolve) => {
    socket.on('data', (chunk: Buffer) => {
      received += chunk.toString('latin1');
      if (received.includes('\r\n\r\n')) resolve(received);
    });
    socket.on('close', () => resolve(received));
  });
  const closed = new Promise<number>((resolve) => socket.on('close', () => resolve(Date.now())));
  return { socket, response, closed };
}

async function timedHealthz(): Promise<number> {
  const started = performance.now();
  const response = await fetch(`${serve.baseUrl}/healthz`, { signal: AbortSignal.timeout(5_000) });
  expect(response.status).toBe(200);
  return performance.now() - started;
}

beforeAll(async () => {
  const dir = mkdtempSync(join(tmpdir(), 'rsb-attack-'));
  sshd = await startSshd({ baseDir: join(dir, 'sshd') });
  port = await freePort();
  const config = {
    server: {
      host: '127.0.0.1',
      port,
      secret: SECRET,
      bodyLimitBytes: BODY_LIMIT,
      unverifiedBodyBytes: UNVERIFIED_BUDGET,
      bodyIdleTimeoutMs: BODY_IDLE_MS,
      headersTimeoutMs: 2_000,
      requestTimeoutMs: 4_000,
    },
    ledger: { url: `sqlite:${join(dir, 'ledger.db')}` },
    mappingsDir: join(repoRoot, 'mappings'),
    targets: { erp: { url: sshd.url('inbound'), hostKey: sshd.hostKeyFingerprint, privateKey: sshd.privateKey } },
    routes: [{ mapping: 'generic-xml', target: 'erp' }],
  };
  const configPath = join(dir, 'bridge.yaml');
  writeFileSync(configPath, stringify(config), { mode: 0o600 });
  serve = await ServeProcess.start({ configPath, port, outputPath: join(dir, 'serve.out') });
});

afterAll(async () => {
  await serve?.stop();
  await sshd?.stop();
});

describe('unauthenticated callers cannot make the webhook hold memory or connections', () => {
  it('a call without a signature header is refused with 401 before its body is read, and its connection closed', async () => {
    const started = Date.now();
    const call = openCall({ 'content-type': 'application/json', 'content-length': BODY_LIMIT - 1000 });
    const response = await call.response;
    expect(response).toMatch(/^HTTP\/1\.1 401/);
    expect(response.toLowerCase()).toContain('connection: close');
    const closedAt = await call.closed;
    expect(closedAt - started).toBeLessThan(1_000);
  });

  it('30 stalled large bodies with a bogus signature: bounded memory, 503 + Retry-After over the budget, all closed within the idle timeout, /healthz fast', async () => {
    const baseline = rssBytes(serve.pid);
    const chunk = Buffer.alloc(3 * 1024 * 1024, 0x20);
    const calls: RawCall[] = [];
    const started = Date.now();
    for (let i = 0; i < 30; i++) {
      calls.push(
        openCall(
          {
            'content-type': 'application/json',
            'content-length': BODY_LIMIT - 1000,
            'x-rossum-signature-sha256': `sha256=${'ab'.repeat(32)}`,
          },
          chunk,
        ),
      );
    }
    let peak = baseline;
    let refusedCount = 0;
    const healthz: number[] = [];
    const watch = setInterval(() => (peak = Math.max(peak, rssBytes(serve.pid))), 50);
    try {
      for (let i = 0; i < 5; i++) {
        healthz.push(await timedHealthz());
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
      const responses = await Promise.all(calls.map((call) => call.response));
      const closedAt = await Promise.all(calls.map((call) => call.closed));
      expect(Math.max(...closedAt) - started).toBeLessThan(BODY_IDLE_MS + 4_000);
      const refusedForRoom = responses.filter((response) => /^HTTP\/1\.1 503/.test(response));
      refusedCount = refusedForRoom.length;
      expect(refusedForRoom.length).toBeGreaterThan(0);
      expect(refusedForRoom[0]!.toLowerCase()).toContain('retry-after: ');
      // The rest were held until the idle timeout (408) — none was answered as if it were signed.
      expect(responses.every((response) => /^HTTP\/1\.1 (503|408)/.test(response))).toBe(true);
    } finally {
      clearInterval(watch);
      for (const call of calls) call.socket.destroy();
    }
    // 30 × 3 MB = 90 MB arrived (buffering them all is what this guards against); at most the 8 MB
    // budget may be held, plus socket buffers and garbage not yet collected (22–32 MB measured).
    expect(peak - baseline).toBeLessThan(UNVERIFIED_BUDGET + 50 * 1024 * 1024);
    // Generous bounds for a loaded 2-core machine: a blocked event loop or a full accept queue takes seconds.
    expect(Math.max(...healthz)).toBeLessThan(2_000);
    expect(await timedHealthz()).toBeLessThan(2_000);
    console.info(
      `[measure] RSS growth ${((peak - baseline) / 1048576).toFixed(1)} MiB, healthz max ${Math.max(...healthz).toFixed(0)} ms, refused for room ${refusedCount}`,
    );
  }, 30_000);

  it('a caller that never finishes its headers is dropped within the headers timeout', async () => {
    const started = Date.now();
    const socket = connect(port, '127.0.0.1');
    socket.on('error', () => undefined);
    socket.write(`POST /webhooks/rossum HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nX-Slow: `);
    const trickle = setInterval(() => socket.write('a'), 300);
    try {
      const closedAt = await new Promise<number>((resolve) => socket.on('close', () => resolve(Date.now())));
      // headersTimeoutMs 2 s, checked every second.
      expect(closedAt - started).toBeLessThan(2_000 + 1_000 + 2_000);
    } finally {
      clearInterval(trickle);
      socket.destroy();
    }
  });

  it('a signed 400 kB body with invalid UTF-8 near its end is answered at once with a 400 naming the byte offset', async () => {
    const text = JSON.stringify({ ...fixture('export-no-line-items.json'), padding: 'x'.repeat(400_000) });
    const bytes = Buffer.from(text, 'utf8');
    const badAt = bytes.length - 10;
    bytes[badAt] = 0xff;
    const signature = `sha256=${createHmac('sha256', SECRET).update(bytes).digest('hex')}`;
    const started = performance.now();
    const response = await fetch(serve.url, {
      method: 'POST',
      body: bytes,
      headers: { 'content-type': 'application/json', 'x-rossum-signature-sha256': signature },
    });
    const elapsed = performance.now() - started;
    expect(response.status).toBe(400);
    expect(((await response.json()) as { error: string }).error).toContain(
      `Body is not valid UTF-8 (first bad byte near offset ${badAt})`,
    );
    // Generous for a loaded machine; the quadratic check took over a minute for this body.
    expect(elapsed).toBeLessThan(3_000);
    console.info(`[measure] 400 kB invalid UTF-8 answered in ${elapsed.toFixed(0)} ms`);
  });
});
