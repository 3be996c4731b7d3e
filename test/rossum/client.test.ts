import { Writable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/observability/logger.ts';
import {
  apiRootFromBaseUrl,
  parseRetryAfter,
  RossumApiError,
  RossumClient,
  rossumApiConfigSchema,
  type RossumClientOptions,
} from '../../src/rossum/index.ts';
import { RossumSimulator } from '../support/rossum-simulator.ts';
import { closedPortUrl } from './scripted-server.ts';

const USER = 'bridge@example.com';
const PASSWORD = 'correct horse battery staple';

let rossum: RossumSimulator;
beforeEach(async () => {
  rossum = await RossumSimulator.start({ users: { [USER]: PASSWORD } });
  rossum.addAnnotation(7, { status: 'exported', metadata: { erp: 'sap' } });
});
afterEach(async () => {
  await rossum.close();
});

/** Waits are recorded, not slept: the test proves the delay without a clock. */
function client(
  config: RossumClientOptions['config'],
  extra: Partial<RossumClientOptions> = {},
): { api: RossumClient; waits: number[] } {
  const waits: number[] = [];
  const api = new RossumClient({
    config: { baseUrl: rossum.apiUrl, ...config },
    sleep: async (ms) => void waits.push(ms),
    random: () => 0.5,
    ...extra,
  });
  return { api, waits };
}

const login = { username: USER, password: PASSWORD };

describe('authentication', () => {
  it('logs in with username/password and sends the key as Bearer', async () => {
    const { api } = client(login);
    const annotation = await api.getAnnotation(7);
    expect(annotation).toMatchObject({ id: 7, status: 'exported', metadata: { erp: 'sap' } });
    expect(rossum.calls.map((c) => `${c.method} ${c.path} ${c.authScheme ?? '-'} ${c.status}`)).toEqual([
      'POST /api/v1/auth/login - 200',
      'GET /api/v1/annotations/7 Bearer 200',
    ]);
    expect(rossum.calls[0]?.body).toEqual({ username: USER, password: PASSWORD });
  });

  it('uses the configured scheme for older deployments (Token <key>)', async () => {
    await rossum.close();
    rossum = await RossumSimulator.start({ users: { [USER]: PASSWORD }, acceptedSchemes: ['Token'] });
    rossum.addAnnotation(7);
    const { api } = client({ ...login, authScheme: 'Token' });
    await api.getAnnotation(7);
    expect(rossum.calls.at(-1)).toMatchObject({ authScheme: 'Token', status: 200 });
  });

  it('uses a configured token without logging in', async () => {
    const { api } = client({ token: rossum.issueToken() });
    await api.getAnnotation(7);
    expect(rossum.calls.map((c) => c.path)).toEqual(['/api/v1/annotations/7']);
  });

  it('on 401 logs in again once and repeats the call', async () => {
    const { api } = client(login);
    await api.getAnnotation(7);
    rossum.expireAllTokens();
    await api.setStatus(7, 'failed_export');
    expect(rossum.calls.map((c) => `${c.method} ${c.path} ${c.status}`)).toEqual([
      'POST /api/v1/auth/login 200',
      'GET /api/v1/annotations/7 200',
      'PATCH /api/v1/annotations/7 401',
      'POST /api/v1/auth/login 200',
      'PATCH /api/v1/annotations/7 200',
    ]);
    expect(rossum.annotation(7).status).toBe('failed_export');
  });

  it('a second 401 after the fresh login is a permanent error, not a loop', async () => {
    const { api } = client(login);
    await api.getAnnotation(7);
    rossum.injectFaults({ status: 401, method: 'GET' }, { status: 401, method: 'GET' }, { status: 401, method: 'GET' });
    const error = await api.getAnnotation(7).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RossumApiError);
    expect(error).toMatchObject({ code: 'ROSSUM_UNAUTHORIZED', statusCode: 401, permanent: true, transient: false });
    expect(rossum.callsTo('POST', '/v1/auth/login')).toHaveLength(2);
    expect(rossum.callsTo('GET', '/v1/annotations/7')).toHaveLength(3);
  });

  it('a static token that expires fails permanently (nothing to renew it with)', async () => {
    const token = rossum.issueToken();
    rossum.expireToken(token);
    const { api } = client({ token });
    await expect(api.getAnnotation(7)).rejects.toMatchObject({ code: 'ROSSUM_UNAUTHORIZED', permanent: true });
    expect(rossum.calls).toHaveLength(1);
  });

  it('wrong credentials → ROSSUM_LOGIN_FAILED, permanent', async () => {
    const { api } = client({ username: USER, password: 'wrong password here' });
    await expect(api.getAnnotation(7)).rejects.toMatchObject({ code: 'ROSSUM_LOGIN_FAILED', permanent: true });
  });

  it('concurrent calls share one login', async () => {
    const { api } = client(login);
    await Promise.all([api.getAnnotation(7), api.getAnnotation(7), api.getAnnotation(7)]);
    expect(rossum.callsTo('POST', '/v1/auth/login')).toHaveLength(1);
  });
});

describe('retries', () => {
  it('a 429 waits exactly as long as Retry-After (seconds) says, then succeeds', async () => {
    const { api, waits } = client({ token: rossum.issueToken() });
    rossum.injectFaults({ status: 429, retryAfter: '7' });
    await api.getAnnotation(7);
    expect(waits).toEqual([7000]);
    expect(rossum.callsTo('GET', '/v1/annotations/7').map((c) => c.status)).toEqual([429, 200]);
  });

  it('a 429 with an HTTP-date Retry-After waits until that date', async () => {
    const now = Date.parse('2026-03-01T12:00:00Z');
    const { api, waits } = client({ token: rossum.issueToken() }, { now: () => now });
    rossum.injectFaults({ status: 429, retryAfter: 'Sun, 01 Mar 2026 12:00:12 GMT' });
    await api.getAnnotation(7);
    expect(waits).toEqual([12_000]);
  });

  it('5xx are retried with growing, jittered backoff, then succeed', async () => {
    const { api, waits } = client({
      token: rossum.issueToken(),
      retry: { attempts: 5, minDelayMs: 1000, maxDelayMs: 3000 },
    });
    rossum.injectFaults({ status: 503 }, { status: 500 }, { status: 502 }, { status: 504 });
    const annotation = await api.getAnnotation(7);
    expect(annotation.id).toBe(7);
    // random() = 0.5 → ¾ of the capped exponential ceiling: 1000, 2000, 3000 (cap), 3000.
    expect(waits).toEqual([750, 1500, 2250, 2250]);
  });

  it('jitter stays within [ceiling/2, ceiling]', async () => {
    for (const r of [0, 0.999]) {
      const { api, waits } = client(
        { token: rossum.issueToken(), retry: { attempts: 2, minDelayMs: 1000, maxDelayMs: 1000 } },
        { random: () => r },
      );
      rossum.injectFaults({ status: 503 });
      await api.getAnnotation(7);
      expect(waits[0]).toBeGreaterThanOrEqual(500);
      expect(waits[0]).toBeLessThanOrEqual(1000);
    }
  });

  it('gives up after the configured attempts with a transient error', async () => {
    const { api, waits } = client({
      token: rossum.issueToken(),
      retry: { attempts: 3, minDelayMs: 10, maxDelayMs: 10 },
    });
    rossum.injectFaults({ status: 503 }, { status: 503 }, { status: 503 }, { status: 503 });
    const error = await api.getAnnotation(7).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'ROSSUM_SERVER_ERROR', statusCode: 503, transient: true });
    expect(waits).toHaveLength(2);
    expect(rossum.pendingFaults()).toBe(1);
  });

  it('4xx other than 401/408/429 are permanent and not retried', async () => {
    const { api, waits } = client({ token: rossum.issueToken() });
    const error = await api.setStatus(7, 'not_a_status' as 'exported').catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'ROSSUM_REQUEST_REJECTED', statusCode: 400, permanent: true });
    expect((error as Error).message).toContain('is not a valid choice');
    expect(waits).toEqual([]);
  });

  it('connection errors are retried and end as ROSSUM_UNREACHABLE (transient)', async () => {
    const dead = new URL(await closedPortUrl()).origin;
    const { api, waits } = client({
      baseUrl: `${dead}/api`,
      token: 'some-token-value',
      retry: { attempts: 3, minDelayMs: 1, maxDelayMs: 1 },
    });
    await expect(api.getAnnotation(7)).rejects.toMatchObject({ code: 'ROSSUM_UNREACHABLE', transient: true });
    expect(waits).toHaveLength(2);
  });

  it('a Retry-After beyond the client’s patience fails fast as transient', async () => {
    const { api, waits } = client({ token: rossum.issueToken() }, { maxRetryAfterMs: 60_000 });
    rossum.injectFaults({ status: 429, retryAfter: '3600' });
    await expect(api.getAnnotation(7)).rejects.toMatchObject({ code: 'ROSSUM_RATE_LIMITED', transient: true });
    expect(waits).toEqual([]);
  });
});

describe('annotation operations', () => {
  it('mergeAnnotationMetadata keeps existing keys (Rossum replaces metadata on PATCH)', async () => {
    const { api } = client(login);
    await api.mergeAnnotationMetadata(7, { bridge_ack: { file: 'INV-1.err', codes: ['E42'] } });
    expect(rossum.annotation(7).metadata).toEqual({ erp: 'sap', bridge_ack: { file: 'INV-1.err', codes: ['E42'] } });
    expect(rossum.callsTo('PATCH', '/v1/annotations/7')[0]?.body).toEqual({
      metadata: { erp: 'sap', bridge_ack: { file: 'INV-1.err', codes: ['E42'] } },
    });
  });

  it('createNote posts a rejection note linked by annotation URL', async () => {
    const { api } = client(login);
    const note = await api.createNote(7, 'ERP rejected: vendor 4711 unknown');
    expect(note.id).toBeGreaterThan(0);
    expect(rossum.annotation(7).notes.map((n) => [n.type, n.content])).toEqual([
      ['rejection', 'ERP rejected: vendor 4711 unknown'],
    ]);
    expect(rossum.callsTo('POST', '/v1/notes')[0]?.body).toEqual({
      annotation: rossum.annotationUrl(7),
      content: 'ERP rejected: vendor 4711 unknown',
      type: 'rejection',
    });
  });

  it('createNote cuts long content to 4096 characters without splitting a character', async () => {
    const { api } = client(login);
    await api.createNote(7, `${'x'.repeat(4094)}😀😀😀`);
    const content = rossum.annotation(7).notes[0]?.content ?? '';
    expect(Array.from(content)).toHaveLength(4096);
    expect(content.endsWith('x😀…')).toBe(true);
  });
});

describe('secrets stay secret', () => {
  it('neither the token nor the password appears in any error message', async () => {
    const token = rossum.issueToken();
    rossum.expireToken(token);
    // The server echoes the credentials back in its error bodies; the client must still not repeat them.
    rossum.injectFaults(
      { status: 500, body: { detail: `token ${token} failed` } },
      { status: 400, body: { detail: `bad ${token} and ${PASSWORD}` } },
    );
    const { api } = client({ token, ...login, retry: { attempts: 1, minDelayMs: 0, maxDelayMs: 0 } });
    const errors: unknown[] = [];
    errors.push(await api.getAnnotation(7).catch((e: unknown) => e));
    errors.push(await api.getAnnotation(7).catch((e: unknown) => e));
    errors.push(
      await new RossumClient({ config: { baseUrl: rossum.apiUrl, token } }).getAnnotation(7).catch((e: unknown) => e),
    );
    errors.push(
      await new RossumClient({ config: { baseUrl: rossum.apiUrl, username: USER, password: 'Sup3rSecretPw' } })
        .login()
        .catch((e: unknown) => e),
    );
    for (const error of errors) {
      expect(error).toBeInstanceOf(RossumApiError);
      const text = `${(error as Error).message} ${JSON.stringify(error)} ${String((error as Error).stack)}`;
      expect(text).not.toContain(token);
      expect(text).not.toContain(PASSWORD);
      expect(text).not.toContain('Sup3rSecretPw');
    }
    expect((errors[0] as Error).message).toContain('[redacted]');
  });

  it('retry logs carry method, path and status, never credentials', async () => {
    let logged = '';
    const destination = new Writable({
      write: (chunk: Buffer, _enc, done) => {
        logged += chunk.toString();
        done();
      },
    });
    const { api } = client(login, { logger: createLogger({ destination, level: 'debug' }) });
    rossum.injectFaults({ status: 503, method: 'GET' });
    await api.getAnnotation(7);
    expect(logged).toContain('"path":"/v1/annotations/7"');
    expect(logged).toContain('"status":503');
    expect(logged).not.toContain(PASSWORD);
    expect(logged).not.toMatch(/bearer|authorization/i);
  });
});

describe('base URL', () => {
  it('falls back to the payload base_url (+ /api) when the config has none', async () => {
    const api = new RossumClient({
      config: { token: rossum.issueToken(), allowedHosts: ['127.0.0.1'] },
      payloadBaseUrl: rossum.baseUrl,
    });
    expect(api.apiRoot).toBe(rossum.apiUrl);
    expect((await api.getAnnotation(7)).id).toBe(7);
  });

  it('the configured base URL wins over the payload', () => {
    const api = new RossumClient({
      config: { token: 't', baseUrl: 'https://acme.rossum.app/api' },
      payloadBaseUrl: 'https://other.rossum.app',
    });
    expect(api.apiRoot).toBe('https://acme.rossum.app/api');
  });

  it('refuses to send credentials to a plain-http base_url from a payload', () => {
    expect(
      () =>
        new RossumClient({
          config: { ...login, allowedHosts: ['rossum.evil.example'] },
          payloadBaseUrl: 'http://rossum.evil.example',
        }),
    ).toThrow(/must be https/);
  });

  it('refuses a payload base_url whose host is not allow-listed (default: *.rossum.app, *.rossum.ai), before any request', () => {
    const callsBefore = rossum.calls.length;
    for (const foreign of [
      'https://rossum.evil.example',
      'https://rossum.app.evil.example',
      'https://evilrossum.app',
      'https://rossum.app',
      rossum.baseUrl,
    ]) {
      let refused: unknown;
      try {
        new RossumClient({ config: login, payloadBaseUrl: foreign });
      } catch (error) {
        refused = error;
      }
      expect(refused, foreign).toBeInstanceOf(RossumApiError);
      expect((refused as RossumApiError).code).toBe('ROSSUM_HOST_NOT_ALLOWED');
      expect((refused as RossumApiError).permanent).toBe(true);
      expect((refused as RossumApiError).message).toContain('rossum.allowedHosts');
    }
    expect(new RossumClient({ config: login, payloadBaseUrl: 'https://acme.rossum.app' }).apiRoot).toBe(
      'https://acme.rossum.app/api',
    );
    expect(new RossumClient({ config: login, payloadBaseUrl: 'https://eu.acme.rossum.ai/' }).apiRoot).toBe(
      'https://eu.acme.rossum.ai/api',
    );
    expect(
      new RossumClient({
        config: { ...login, allowedHosts: ['rossum.internal.example'] },
        payloadBaseUrl: 'https://rossum.internal.example',
      }).apiRoot,
    ).toBe('https://rossum.internal.example/api');
    expect(rossum.calls.length).toBe(callsBefore);
  });
});

describe('config', () => {
  it('requires a token or username + password, and fills defaults', () => {
    expect(rossumApiConfigSchema.safeParse({ baseUrl: 'https://example.rossum.app/api' }).success).toBe(false);
    expect(rossumApiConfigSchema.safeParse({ token: 't', extra: 1 }).success).toBe(false);
    const parsed = rossumApiConfigSchema.parse({ token: 't' });
    expect(parsed).toEqual({
      token: 't',
      renewToken: true,
      tokenLifetimeS: 583_200,
      tokenRenewBeforeS: 3_600,
      requestsPerSecond: 10,
      authScheme: 'Bearer',
      timeoutMs: 30_000,
      retry: { attempts: 5, minDelayMs: 500, maxDelayMs: 30_000 },
    });
  });

  it('every field is described (docs and `check` are generated from the schema)', () => {
    const json = JSON.stringify(rossumApiConfigSchema.toJSONSchema?.() ?? {});
    for (const field of [
      'baseUrl',
      'token',
      'username',
      'password',
      'authScheme',
      'timeoutMs',
      'retry',
      'attempts',
      'minDelayMs',
      'maxDelayMs',
    ]) {
      expect(json).toContain(`"${field}"`);
    }
    const described = (schema: { description?: string | undefined }) => schema.description;
    const shape = rossumApiConfigSchema.def.shape ?? {};
    expect(Object.values(shape).every((f) => typeof described(f as { description?: string }) === 'string')).toBe(true);
  });

  it('derives the API root from a payload base_url', () => {
    expect(apiRootFromBaseUrl('https://example.rossum.app')).toBe('https://example.rossum.app/api');
    expect(apiRootFromBaseUrl('https://example.rossum.app/api/')).toBe('https://example.rossum.app/api');
    expect(parseRetryAfter('2', 0)).toBe(2000);
    expect(parseRetryAfter('soon', 0)).toBeUndefined();
  });
});

describe('writes with a fence (beforeSend)', () => {
  it('asks before every attempt, retries included, and a refusal fails the call unsent with the caller’s own error', async () => {
    const { api } = client(login);
    rossum.injectFaults({ status: 429, retryAfter: '1', method: 'PATCH' });
    let asked = 0;
    await api.patchAnnotation(7, { status: 'failed_export' }, { beforeSend: async () => void asked++ });
    expect(asked).toBe(2);
    expect(rossum.callsTo('PATCH', '/v1/annotations/7').map((call) => call.status)).toEqual([429, 200]);

    const lost = new Error('lease lost');
    let refusals = 0;
    const refused = async () => {
      refusals++;
      throw lost;
    };
    await expect(api.patchAnnotation(7, { status: 'exported' }, { beforeSend: refused })).rejects.toBe(lost);
    await expect(api.createNote(7, 'never sent', { beforeSend: refused })).rejects.toBe(lost);
    expect(refusals).toBe(2);
    expect(rossum.callsTo('PATCH', '/v1/annotations/7')).toHaveLength(2);
    expect(rossum.callsTo('POST', '/v1/notes')).toEqual([]);
    expect(rossum.annotation(7).status).toBe('failed_export');
  });
});
