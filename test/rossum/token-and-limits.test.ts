import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RossumApiError, RossumClient } from '../../src/rossum/index.ts';
import { RossumSimulator } from '../support/rossum-simulator.ts';
import { ScriptedServer } from './scripted-server.ts';

let rossum: RossumSimulator;
beforeEach(async () => {
  rossum = await RossumSimulator.start();
  rossum.addAnnotation(7, { status: 'exported' });
});
afterEach(async () => {
  await rossum.close();
});

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

describe('token lifecycle (token only)', () => {
  it('renews the token through POST /v1/auth/token before it expires: calls keep working long past the first token’s life', async () => {
    const first = rossum.issueToken(2_000);
    const api = new RossumClient({
      config: { baseUrl: rossum.apiUrl, token: first, tokenLifetimeS: 2, tokenRenewBeforeS: 1 },
    });
    await api.checkCredentials();
    const started = Date.now();
    while (Date.now() - started < 4_500) {
      await api.getAnnotation(7);
      await sleep(200);
    }
    expect(rossum.tokenValid(first)).toBe(false);
    expect(rossum.calls.filter((call) => call.status === 401)).toEqual([]);
    const renewals = rossum.callsTo('POST', '/v1/auth/token');
    expect(renewals.length).toBeGreaterThanOrEqual(4);
    expect(renewals[0]?.body).toEqual({ max_token_lifetime_s: 2 });
  }, 20_000);

  it('renewIfDue keeps an idle client’s token alive without any other call', async () => {
    const api = new RossumClient({
      config: { baseUrl: rossum.apiUrl, token: rossum.issueToken(2_000), tokenLifetimeS: 2, tokenRenewBeforeS: 1 },
    });
    await api.checkCredentials();
    for (let i = 0; i < 8; i++) {
      await sleep(400);
      await api.renewIfDue();
    }
    await api.getAnnotation(7);
    expect(rossum.calls.filter((call) => call.status === 401)).toEqual([]);
    expect(rossum.callsTo('POST', '/v1/auth/token').length).toBeGreaterThanOrEqual(3);
  }, 20_000);

  it('a refused token is reported at the check with the fix, and without the token', async () => {
    const token = rossum.issueToken();
    rossum.expireToken(token);
    const api = new RossumClient({ config: { baseUrl: rossum.apiUrl, token } });
    const error = await api.checkCredentials().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RossumApiError);
    expect(error).toMatchObject({ code: 'ROSSUM_UNAUTHORIZED', statusCode: 401 });
    expect((error as Error).message).toMatch(/rossum\.token.*SIGHUP/);
    expect((error as Error).message).not.toContain(token);
  });

  it('renewToken: false checks the token with GET /v1/auth/user and never renews it', async () => {
    const api = new RossumClient({ config: { baseUrl: rossum.apiUrl, token: rossum.issueToken(), renewToken: false } });
    await api.checkCredentials();
    await api.getAnnotation(7);
    expect(rossum.calls.map((call) => `${call.method} ${call.path}`)).toEqual([
      'GET /api/v1/auth/user',
      'GET /api/v1/annotations/7',
    ]);
  });
});

describe('notes across pages', () => {
  it('lists every note by following pagination.next (Rossum pages by 20)', async () => {
    const token = rossum.issueToken();
    const api = new RossumClient({
      config: { baseUrl: rossum.apiUrl, token, renewToken: false, requestsPerSecond: 10 },
    });
    for (let i = 0; i < 45; i++) await api.createNote(7, `note ${i}`);
    const notes = await api.listNotes(7);
    expect(notes.map((note) => note.content)).toEqual(Array.from({ length: 45 }, (_, i) => `note ${i}`));
    expect(rossum.callsTo('GET', '/v1/notes').filter((call) => call.status === 200)).toHaveLength(3);
  }, 30_000);

  it('does not follow a next link that leaves the API root (our token would go with it)', async () => {
    const foreign = await ScriptedServer.start([{ status: 200, body: { results: [] } }]);
    const page = await ScriptedServer.start([
      {
        status: 200,
        body: { results: [{ id: 1, content: 'a' }], pagination: { next: `${foreign.url}/api/v1/notes?page=2` } },
      },
    ]);
    try {
      const api = new RossumClient({
        config: { baseUrl: `${page.url}/api`, token: 'a-token-value', renewToken: false },
      });
      await expect(api.listNotes(7)).rejects.toMatchObject({
        code: 'ROSSUM_BAD_RESPONSE',
        message: expect.stringContaining('leaves the API root'),
      });
      expect(foreign.requests).toEqual([]);
    } finally {
      await foreign.close();
      await page.close();
    }
  });
});

describe('rate limit', () => {
  it('the client keeps to requestsPerSecond (default 10): Rossum never has to throttle it', async () => {
    const api = new RossumClient({ config: { baseUrl: rossum.apiUrl, token: rossum.issueToken(), renewToken: false } });
    const started = Date.now();
    await Promise.all(Array.from({ length: 25 }, () => api.getAnnotation(7)));
    expect(Date.now() - started).toBeGreaterThanOrEqual(1_900);
    expect(rossum.calls.filter((call) => call.status === 429)).toEqual([]);
    expect(rossum.calls).toHaveLength(25);
  }, 20_000);

  it('a client set faster than Rossum allows gets 429s and honours Retry-After: every call still succeeds', async () => {
    const api = new RossumClient({
      config: {
        baseUrl: rossum.apiUrl,
        token: rossum.issueToken(),
        renewToken: false,
        requestsPerSecond: 100,
        retry: { attempts: 5, minDelayMs: 10, maxDelayMs: 20 },
      },
    });
    const results = await Promise.all(Array.from({ length: 20 }, () => api.getAnnotation(7)));
    expect(results).toHaveLength(20);
    const throttled = rossum.calls.filter((call) => call.status === 429);
    expect(throttled.length).toBeGreaterThan(0);
    expect(rossum.calls.filter((call) => call.status === 200)).toHaveLength(20);
  }, 30_000);
});
