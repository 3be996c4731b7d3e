import { createHmac } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { callHook, type HookCallOptions } from '../../src/rossum/hook-call.ts';
import { closedPortUrl, ScriptedServer, type Script, type ScriptedReply } from './scripted-server.ts';

const SECRET = 'hook-secret-Ünïcode';
const BODY = Buffer.from(
  '{"request_id":"r-1", "event":"annotation_content","action":"export","note":"Grüße ✓"}\n',
  'utf8',
);

let servers: ScriptedServer[] = [];
afterEach(async () => {
  await Promise.all(servers.map((s) => s.close()));
  servers = [];
});

async function serve(script: Script | ScriptedReply[]): Promise<ScriptedServer> {
  const server = await ScriptedServer.start(script);
  servers.push(server);
  return server;
}

/** Records requested waits instead of waiting: proves the delays without wall-clock assertions. */
function recordingSleep(): { sleep: (ms: number) => Promise<void>; waits: number[] } {
  const waits: number[] = [];
  return { waits, sleep: async (ms: number) => void waits.push(ms) };
}

function options(url: string, extra: Partial<HookCallOptions> = {}): HookCallOptions {
  return { url, body: BODY, secret: SECRET, sleep: recordingSleep().sleep, ...extra };
}

const postsOf = (server: ScriptedServer) => server.requests.filter((r) => r.method === 'POST');

describe('signing', () => {
  it('sends the raw body byte for byte with X-Rossum-Signature-SHA256: sha256=<hex HMAC>', async () => {
    const server = await serve([{ status: 200, body: { messages: [] } }]);
    await callHook(options(server.hookUrl()));
    const [request] = server.requests;
    expect(request?.body.equals(BODY)).toBe(true);
    const expected = createHmac('sha256', SECRET).update(BODY).digest('hex');
    expect(request?.headers['x-rossum-signature-sha256']).toBe(`sha256=${expected}`);
    expect(request?.headers['x-elis-signature']).toBeUndefined();
    expect(request?.headers['content-type']).toBe('application/json');
  });

  it('adds the legacy X-Elis-Signature: sha1=<hex> only when asked', async () => {
    const server = await serve([{ status: 200 }]);
    await callHook(options(server.hookUrl(), { legacySha1Signature: true }));
    const expected = createHmac('sha1', SECRET).update(BODY).digest('hex');
    expect(server.requests[0]?.headers['x-elis-signature']).toBe(`sha1=${expected}`);
  });

  it('signs a string body as its UTF-8 bytes', async () => {
    const server = await serve([{ status: 200 }]);
    const text = BODY.toString('utf8');
    await callHook(options(server.hookUrl(), { body: text }));
    const expected = createHmac('sha256', SECRET).update(Buffer.from(text, 'utf8')).digest('hex');
    expect(server.requests[0]?.headers['x-rossum-signature-sha256']).toBe(`sha256=${expected}`);
  });

  it('sends no signature header for a hook without a secret', async () => {
    const server = await serve([{ status: 200 }]);
    await callHook({ url: server.hookUrl(), body: BODY });
    expect(server.requests[0]?.headers['x-rossum-signature-sha256']).toBeUndefined();
  });
});

describe('what a reply does to the annotation', () => {
  it('200 with an info message → exported, message shown, one attempt', async () => {
    const server = await serve([
      { status: 200, body: { messages: [{ id: null, type: 'info', content: 'Uploaded INV-1.xml to erp' }] } },
    ]);
    const outcome = await callHook(options(server.hookUrl()));
    expect(outcome.annotationStatus).toBe('exported');
    expect(outcome.messages).toEqual([
      { id: null, type: 'info', content: 'Uploaded INV-1.xml to erp', origin: 'hook' },
    ]);
    expect(outcome.attempts).toHaveLength(1);
    expect(outcome.finalStatusCode).toBe(200);
  });

  it('204 and a 200 plain-text body → exported (the body is ignored)', async () => {
    const server = await serve([{ status: 204 }, { status: 200, body: 'this response body is ignored' }]);
    expect((await callHook(options(server.hookUrl()))).annotationStatus).toBe('exported');
    const second = await callHook(options(server.hookUrl()));
    expect(second.annotationStatus).toBe('exported');
    expect(second.messages).toEqual([]);
  });

  it('200 with an error message → failed_export at once, no retry', async () => {
    const server = await serve([
      { status: 200, body: { messages: [{ id: 123, type: 'error', content: 'Missing invoice number' }] } },
    ]);
    const { sleep, waits } = recordingSleep();
    const outcome = await callHook(options(server.hookUrl(), { sleep }));
    expect(outcome.annotationStatus).toBe('failed_export');
    expect(outcome.messages).toEqual([{ id: 123, type: 'error', content: 'Missing invoice number', origin: 'hook' }]);
    expect(postsOf(server)).toHaveLength(1);
    expect(waits).toEqual([]);
  });

  it('503 is retried up to 5 attempts, 30 s apart by default, then failed_export showing the last message', async () => {
    const server = await serve((_req, index) => ({
      status: 503,
      body: { messages: [{ type: 'error', content: `SFTP unreachable (try ${index + 1})` }] },
    }));
    const { sleep, waits } = recordingSleep();
    const seen: number[] = [];
    const outcome = await callHook(options(server.hookUrl(), { sleep, onAttempt: (a) => seen.push(a.attempt) }));
    expect(postsOf(server)).toHaveLength(5);
    expect(waits).toEqual([30_000, 30_000, 30_000, 30_000]);
    expect(seen).toEqual([1, 2, 3, 4, 5]);
    expect(outcome.annotationStatus).toBe('failed_export');
    expect(outcome.finalStatusCode).toBe(503);
    expect(outcome.messages).toEqual([{ type: 'error', content: 'SFTP unreachable (try 5)', origin: 'hook' }]);
    expect(outcome.attempts.map((a) => a.verdict)).toEqual(['retry', 'retry', 'retry', 'retry', 'failed']);
  });

  it('503 then 200 → exported on the second attempt', async () => {
    const server = await serve([
      { status: 503 },
      { status: 200, body: { messages: [{ type: 'info', content: 'ok' }] } },
    ]);
    const outcome = await callHook(options(server.hookUrl()));
    expect(outcome.annotationStatus).toBe('exported');
    expect(outcome.attempts.map((a) => a.statusCode)).toEqual([503, 200]);
  });

  it('retry_count limits the attempts', async () => {
    const server = await serve([{ status: 502 }]);
    await callHook(options(server.hookUrl(), { retryCount: 1 }));
    expect(postsOf(server)).toHaveLength(2);
    const again = await serve([{ status: 502 }]);
    await callHook(options(again.hookUrl(), { retryCount: 0 }));
    expect(postsOf(again)).toHaveLength(1);
  });

  it.each([400, 401, 404, 422, 501])('%i is not retried while retry_on_any_non_2xx is false', async (status) => {
    const server = await serve([
      {
        status,
        body: {
          messages: [
            { type: 'info', content: 'Even though this message is info, the export will fail due to the status code.' },
          ],
        },
      },
    ]);
    const outcome = await callHook(options(server.hookUrl()));
    expect(postsOf(server)).toHaveLength(1);
    expect(outcome.annotationStatus).toBe('failed_export');
    // A parsable error response shows its own messages, even an info one.
    expect(outcome.messages).toEqual([
      {
        type: 'info',
        content: 'Even though this message is info, the export will fail due to the status code.',
        origin: 'hook',
      },
    ]);
  });

  it('with retry_on_any_non_2xx, a 400 is retried too', async () => {
    const server = await serve([{ status: 400, body: 'bad' }]);
    const outcome = await callHook(options(server.hookUrl(), { retryOnAnyNon2xx: true }));
    expect(postsOf(server)).toHaveLength(5);
    expect(outcome.annotationStatus).toBe('failed_export');
  });

  it('a plain-text body of a failed call becomes the displayed error', async () => {
    const server = await serve([{ status: 500, body: 'An error message "Export failed." will show up in the UI' }]);
    const outcome = await callHook(options(server.hookUrl(), { retryCount: 0 }));
    expect(outcome.messages).toEqual([
      { type: 'error', content: 'An error message "Export failed." will show up in the UI', origin: 'hook' },
    ]);
  });

  it('an empty failed reply gets a message naming the HTTP status', async () => {
    const server = await serve([{ status: 418 }]);
    const outcome = await callHook(options(server.hookUrl()));
    expect(outcome.messages).toEqual([{ type: 'error', content: 'Webhook call failed: HTTP 418', origin: 'rossum' }]);
  });

  it('a redirect is a non-2xx answer, not followed', async () => {
    const server = await serve([{ status: 302, headers: { location: '/elsewhere' } }]);
    const outcome = await callHook(options(server.hookUrl()));
    expect(outcome.annotationStatus).toBe('failed_export');
    expect(server.requests).toHaveLength(1);
  });
});

describe('timeouts and connection errors', () => {
  it('a call that does not answer in timeout_s is retried', async () => {
    const server = await serve((_req, index) =>
      index === 0 ? { status: 200, hang: true } : { status: 200, body: { messages: [] } },
    );
    const outcome = await callHook(options(server.hookUrl(), { timeoutS: 0.3 }));
    expect(outcome.annotationStatus).toBe('exported');
    expect(outcome.attempts[0]).toMatchObject({
      statusCode: null,
      verdict: 'retry',
      error: 'no response within 0.3 s',
    });
    expect(postsOf(server)).toHaveLength(2);
  });

  it('timeouts on every attempt → failed_export with a timeout message', async () => {
    const server = await serve([{ status: 200, hang: true }]);
    const outcome = await callHook(options(server.hookUrl(), { timeoutS: 0.2, retryCount: 1 }));
    expect(postsOf(server)).toHaveLength(2);
    expect(outcome.annotationStatus).toBe('failed_export');
    expect(outcome.finalStatusCode).toBeNull();
    expect(outcome.messages).toEqual([
      { type: 'error', content: 'Webhook call timed out (no response within 0.2 s)', origin: 'rossum' },
    ]);
  });

  it('connection refused is retried, then failed_export', async () => {
    const { sleep, waits } = recordingSleep();
    const outcome = await callHook(options(await closedPortUrl(), { sleep, retryCount: 2 }));
    expect(outcome.attempts).toHaveLength(3);
    expect(waits).toHaveLength(2);
    expect(outcome.attempts[0]?.error).toMatch(/^connection failed: .*ECONNREFUSED/);
    expect(outcome.annotationStatus).toBe('failed_export');
  });
});

describe('asynchronous hooks (202 + Location)', () => {
  /** POST → 202 + Location; polls answer from `polls` in order (the last one repeats). */
  function asyncHook(
    polls: ScriptedReply[],
    posts: ScriptedReply[] = [{ status: 202, headers: { location: '/jobs/42' } }],
  ): Script {
    let post = 0;
    let pollIndex = 0;
    return (req) => {
      if (req.method === 'POST') return posts[Math.min(post++, posts.length - 1)] ?? { status: 500 };
      return polls[Math.min(pollIndex++, polls.length - 1)] ?? { status: 500 };
    };
  }

  it('polls the Location every poll interval until a 201, whose body is the result', async () => {
    const server = await serve(
      asyncHook([
        { status: 202 },
        { status: 200, body: 'pending' },
        { status: 201, body: { messages: [{ type: 'info', content: 'ERP accepted INV-1' }] } },
      ]),
    );
    const { sleep, waits } = recordingSleep();
    const outcome = await callHook(options(server.hookUrl(), { sleep }));
    expect(outcome.annotationStatus).toBe('exported');
    expect(outcome.finalStatusCode).toBe(201);
    expect(outcome.messages).toEqual([{ type: 'info', content: 'ERP accepted INV-1', origin: 'hook' }]);
    expect(server.requests.map((r) => `${r.method} ${r.path}`)).toEqual([
      'POST /webhooks/rossum',
      'GET /jobs/42',
      'GET /jobs/42',
      'GET /jobs/42',
    ]);
    expect(waits).toEqual([30_000, 30_000, 30_000]);
    expect(outcome.attempts).toHaveLength(1);
    expect(outcome.attempts[0]?.polls.map((p) => p.verdict)).toEqual(['keep-polling', 'keep-polling', 'done']);
  });

  it('a 201 carrying an error message → failed_export without retry', async () => {
    const server = await serve(
      asyncHook([{ status: 201, body: { messages: [{ type: 'error', content: 'ERP rejected: unknown vendor' }] } }]),
    );
    const outcome = await callHook(options(server.hookUrl()));
    expect(outcome.annotationStatus).toBe('failed_export');
    expect(outcome.messages[0]?.content).toBe('ERP rejected: unknown vendor');
    expect(postsOf(server)).toHaveLength(1);
  });

  it.each([408, 429, 500, 502, 503, 504])(
    'a poll answered %i keeps polling (not a polling failure)',
    async (status) => {
      const server = await serve(asyncHook([{ status }, { status }, { status: 201, body: { messages: [] } }]));
      const outcome = await callHook(options(server.hookUrl()));
      expect(outcome.annotationStatus).toBe('exported');
      expect(postsOf(server)).toHaveLength(1);
      expect(outcome.attempts[0]?.polls).toHaveLength(3);
    },
  );

  it('a poll failing with another status retries the original call', async () => {
    const server = await serve(
      asyncHook(
        [
          { status: 404, body: 'no such job' },
          { status: 201, body: { messages: [{ type: 'info', content: 'done' }] } },
        ],
        [
          { status: 202, headers: { location: `/jobs/1` } },
          { status: 202, headers: { location: `/jobs/2` } },
        ],
      ),
    );
    const outcome = await callHook(options(server.hookUrl()));
    expect(server.requests.map((r) => `${r.method} ${r.path}`)).toEqual([
      'POST /webhooks/rossum',
      'GET /jobs/1',
      'POST /webhooks/rossum',
      'GET /jobs/2',
    ]);
    expect(outcome.attempts.map((a) => a.verdict)).toEqual(['retry', 'success']);
    expect(outcome.annotationStatus).toBe('exported');
  });

  it('with retry_after_polling_failure off, a polling failure is final', async () => {
    const server = await serve(
      asyncHook([{ status: 410, body: { messages: [{ type: 'error', content: 'job expired' }] } }]),
    );
    const outcome = await callHook(options(server.hookUrl(), { retryAfterPollingFailure: false }));
    expect(postsOf(server)).toHaveLength(1);
    expect(outcome.annotationStatus).toBe('failed_export');
    expect(outcome.finalStatusCode).toBe(410);
    expect(outcome.messages).toEqual([{ type: 'error', content: 'job expired', origin: 'hook' }]);
  });

  it('polling stops at max_polling_time_s (300 s for exports): then the original call is retried', async () => {
    const server = await serve(asyncHook([{ status: 202 }]));
    // A fake clock that advances only by the waits callHook() asks for.
    let clock = 0;
    const sleep = async (ms: number): Promise<void> => {
      clock += ms;
    };
    const outcome = await callHook(options(server.hookUrl(), { sleep, now: () => clock, retryCount: 1 }));
    expect(postsOf(server)).toHaveLength(2);
    // Polls at 30, 60, … 300 s: ten per attempt.
    expect(outcome.attempts.map((a) => a.polls.length)).toEqual([10, 10]);
    expect(outcome.annotationStatus).toBe('failed_export');
    expect(outcome.messages).toEqual([
      {
        type: 'error',
        content: 'Webhook call failed: no final answer within the maximum polling time of 300 s',
        origin: 'rossum',
      },
    ]);
  });

  it('an absolute Location URL is polled as given', async () => {
    const poller = await serve([{ status: 201, body: { messages: [] } }]);
    const server = await serve([{ status: 202, headers: { location: `${poller.url}/status/abc` } }]);
    const outcome = await callHook(options(server.hookUrl()));
    expect(outcome.annotationStatus).toBe('exported');
    expect(poller.requests.map((r) => `${r.method} ${r.path}`)).toEqual(['GET /status/abc']);
  });
});

describe('options', () => {
  it('rejects settings outside Rossum’s documented bounds', async () => {
    await expect(callHook(options('http://127.0.0.1:1/x', { retryCount: 5 }))).rejects.toThrow(/retryCount/);
    await expect(callHook(options('http://127.0.0.1:1/x', { timeoutS: 61 }))).rejects.toThrow(/timeoutS/);
    await expect(callHook(options('ftp://127.0.0.1/x'))).rejects.toThrow(/http/);
  });

  it('truncates hook messages to 4096 characters without splitting a surrogate pair', async () => {
    const server = await serve([
      { status: 200, body: { messages: [{ type: 'warning', content: '😀'.repeat(5000) }] } },
    ]);
    const outcome = await callHook(options(server.hookUrl()));
    const content = outcome.messages[0]?.content ?? '';
    expect(Array.from(content)).toHaveLength(4096);
    expect(content.endsWith('😀…')).toBe(true);
  });
});
