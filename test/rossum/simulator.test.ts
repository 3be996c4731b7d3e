import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FAST_HOOK_TIMINGS, RossumSimulator } from '../support/rossum-simulator.ts';
import { ScriptedServer, type Script } from './scripted-server.ts';

const fixture = JSON.parse(
  readFileSync(new URL('../fixtures/rossum/export-invoice.json', import.meta.url), 'utf8'),
) as Record<string, unknown>;
const annotationId = (fixture.annotation as { id: number }).id;

let rossum: RossumSimulator;
let hooks: ScriptedServer[] = [];
beforeEach(async () => {
  rossum = await RossumSimulator.start();
});
afterEach(async () => {
  await Promise.all(hooks.map((h) => h.close()));
  hooks = [];
  await rossum.close();
});

async function hook(script: Script): Promise<ScriptedServer> {
  const server = await ScriptedServer.start(script);
  hooks.push(server);
  return server;
}

describe('the simulated export flow (what the operator sees)', () => {
  it('a successful export moves the annotation exporting → exported and keeps the info message', async () => {
    const server = await hook(() => ({
      status: 200,
      body: { messages: [{ type: 'info', content: 'Uploaded to erp-a' }] },
    }));
    rossum.addAnnotation(annotationId, { status: 'confirmed' });
    const { outcome } = await rossum.exportAnnotation(fixture, {
      hookUrl: server.hookUrl(),
      secret: 's3cret',
      ...FAST_HOOK_TIMINGS,
    });
    expect(outcome.annotationStatus).toBe('exported');
    const seen = rossum.annotation(annotationId);
    expect(seen.status).toBe('exported');
    expect(seen.history.map((h) => h.status)).toEqual(['confirmed', 'exporting', 'exported']);
    expect(seen.messages.map((m) => m.content)).toEqual(['Uploaded to erp-a']);
  });

  it('the hook receives a signed payload pointing at the simulator, with an API token valid until it answers', async () => {
    // A hook that uses the payload's token while handling the call, as a real export hook might.
    let statusDuringCall = 0;
    let received: { raw: Buffer; signature: string | undefined } | undefined;
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const raw = Buffer.concat(chunks);
        received = { raw, signature: req.headers['x-rossum-signature-sha256'] as string | undefined };
        const payload = JSON.parse(raw.toString('utf8')) as {
          annotation: { url: string };
          rossum_authorization_token: string;
        };
        void fetch(payload.annotation.url, {
          headers: { authorization: `Bearer ${payload.rossum_authorization_token}` },
        }).then((r) => {
          statusDuringCall = r.status;
          res.writeHead(200).end();
        });
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    try {
      const { port } = server.address() as AddressInfo;
      await rossum.exportAnnotation(fixture, {
        hookUrl: `http://127.0.0.1:${port}/hook`,
        secret: 's3cret',
        ...FAST_HOOK_TIMINGS,
      });
    } finally {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
    expect(received).toBeDefined();
    const raw = received?.raw ?? Buffer.alloc(0);
    expect(received?.signature).toBe(`sha256=${createHmac('sha256', 's3cret').update(raw).digest('hex')}`);
    const payload = JSON.parse(raw.toString('utf8')) as {
      base_url: string;
      rossum_authorization_token: string;
      annotation: { url: string; status: string };
    };
    expect(payload.base_url).toBe(rossum.baseUrl);
    expect(payload.annotation.url).toBe(rossum.annotationUrl(annotationId));
    expect(payload.annotation.status).toBe('exporting');
    expect(statusDuringCall).toBe(200);
    // "valid for 10 minutes or until Rossum receives a response from the Webhook": the answer ended it.
    const after = await fetch(payload.annotation.url, {
      headers: { authorization: `Bearer ${payload.rossum_authorization_token}` },
    });
    expect(after.status).toBe(401);
  });

  it('a transient failure that never clears ends in failed_export with the hook’s last message', async () => {
    const server = await hook((_req, i) => ({
      status: 503,
      body: { messages: [{ type: 'error', content: `sftp down #${i + 1}` }] },
    }));
    await rossum.exportAnnotation(fixture, { hookUrl: server.hookUrl(), secret: 's', ...FAST_HOOK_TIMINGS });
    const seen = rossum.annotation(annotationId);
    expect(seen.status).toBe('failed_export');
    expect(seen.messages.map((m) => `${m.type}: ${m.content}`)).toEqual(['error: sftp down #5']);
    expect(seen.exports[0]?.attempts).toHaveLength(5);
  });
});

describe('export retries through the API', () => {
  it('PATCH status=exporting calls the hook again with the last export (a new request_id, same annotation)', async () => {
    let healthy = false;
    const server = await hook(() =>
      healthy
        ? { status: 200, body: { messages: [{ type: 'info', content: 'uploaded' }] } }
        : { status: 200, body: { messages: [{ type: 'error', content: 'vendor missing' }] } },
    );
    await rossum.exportAnnotation(fixture, { hookUrl: server.hookUrl(), secret: 's', ...FAST_HOOK_TIMINGS });
    expect(rossum.annotation(annotationId).status).toBe('failed_export');
    healthy = true;
    const reply = await fetch(rossum.annotationUrl(annotationId), {
      method: 'PATCH',
      headers: { authorization: `Bearer ${rossum.issueToken()}`, 'content-type': 'application/json' },
      body: JSON.stringify({ status: 'exporting' }),
    });
    expect(reply.status).toBe(200);
    await rossum.settled();
    const seen = rossum.annotation(annotationId);
    expect(seen.status).toBe('exported');
    expect(seen.history.map((h) => `${h.status}/${h.by}`)).toEqual([
      'confirmed/setup',
      'exporting/export',
      'failed_export/export',
      'exporting/api',
      'exported/export',
    ]);
    const ids = server.requests.map((r) => (JSON.parse(r.body.toString('utf8')) as { request_id: string }).request_id);
    expect(new Set(ids).size).toBe(2);
  });

  it('an async hook (202 + Location) is polled until its 201 decides the status', async () => {
    const server = await hook((req) =>
      req.method === 'POST'
        ? { status: 202, headers: { location: '/jobs/1' } }
        : { status: 201, body: { messages: [{ type: 'error', content: 'ERP rejected: duplicate invoice' }] } },
    );
    await rossum.exportAnnotation(fixture, { hookUrl: server.hookUrl(), secret: 's', ...FAST_HOOK_TIMINGS });
    const seen = rossum.annotation(annotationId);
    expect(seen.status).toBe('failed_export');
    expect(seen.messages.map((m) => m.content)).toEqual(['ERP rejected: duplicate invoice']);
  });

  it('retries of one hook call resend the identical signed body', async () => {
    const server = await hook((_req, i) => (i < 2 ? { status: 503 } : { status: 200 }));
    await rossum.exportAnnotation(fixture, { hookUrl: server.hookUrl(), secret: 's', ...FAST_HOOK_TIMINGS });
    const [first, ...rest] = server.requests;
    for (const request of rest) {
      expect(request.body.equals(first?.body ?? Buffer.alloc(0))).toBe(true);
      expect(request.headers['x-rossum-signature-sha256']).toBe(first?.headers['x-rossum-signature-sha256']);
    }
    expect(rossum.annotation(annotationId).status).toBe('exported');
  });
});

describe('the simulated API', () => {
  it('rejects calls without a valid token and records them without the token', async () => {
    rossum.addAnnotation(1);
    const token = rossum.issueToken();
    const ok = await fetch(rossum.annotationUrl(1), { headers: { authorization: `Token ${token}` } });
    expect(ok.status).toBe(200);
    rossum.expireToken(token);
    const expired = await fetch(rossum.annotationUrl(1), { headers: { authorization: `Bearer ${token}` } });
    expect(expired.status).toBe(401);
    const anonymous = await fetch(rossum.annotationUrl(1));
    expect(anonymous.status).toBe(401);
    expect(rossum.calls.map((c) => [c.authorized, c.authScheme, c.status])).toEqual([
      [true, 'Token', 200],
      [true, 'Bearer', 401],
      [false, null, 401],
    ]);
    expect(JSON.stringify(rossum.calls)).not.toContain(token);
  });

  it('validates status values on PATCH and replaces metadata as a whole', async () => {
    rossum.addAnnotation(2, { metadata: { a: 1 } });
    const auth = { authorization: `Bearer ${rossum.issueToken()}`, 'content-type': 'application/json' };
    const bad = await fetch(rossum.annotationUrl(2), {
      method: 'PATCH',
      headers: auth,
      body: JSON.stringify({ status: 'exported_ok' }),
    });
    expect(bad.status).toBe(400);
    const good = await fetch(rossum.annotationUrl(2), {
      method: 'PATCH',
      headers: auth,
      body: JSON.stringify({ status: 'failed_export', metadata: { b: 2 } }),
    });
    expect(good.status).toBe(200);
    expect(rossum.annotation(2)).toMatchObject({ status: 'failed_export', metadata: { b: 2 } });
  });

  it('serves injected faults to the next calls, in order', async () => {
    rossum.addAnnotation(3);
    const auth = { authorization: `Bearer ${rossum.issueToken()}` };
    rossum.injectFaults({ status: 429, retryAfter: '7' }, { status: 503 });
    const first = await fetch(rossum.annotationUrl(3), { headers: auth });
    expect([first.status, first.headers.get('retry-after')]).toEqual([429, '7']);
    expect((await fetch(rossum.annotationUrl(3), { headers: auth })).status).toBe(503);
    expect((await fetch(rossum.annotationUrl(3), { headers: auth })).status).toBe(200);
    expect(rossum.calls.map((c) => c.injected)).toEqual([true, true, false]);
  });
});
