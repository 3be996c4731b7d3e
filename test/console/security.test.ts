import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bridgeConfigSchema } from '../../src/config/index.ts';
import { startBridge } from '../../src/process/index.ts';
import { cookieOptions } from '../../src/console/session.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { CapturedLog, repoRoot, TEST_SECRET, testTargetConfig } from '../support/bridge.ts';
import { startSshd, type SshdInstance } from '../support/sshd.ts';
import {
  ACCESS_TOKEN,
  OPERATOR,
  SESSION_SECRET,
  Session,
  startConsoleBridge,
  VIEWER,
  type ConsoleBridge,
} from './harness.ts';

let sshd: SshdInstance;
let bridge: ConsoleBridge;

beforeAll(async () => {
  sshd = await startSshd({ baseDir: mkdtempSync(join(tmpdir(), 'rsb-console-sec-')) });
  bridge = await startConsoleBridge(sshd);
  expect(await bridge.send(700001)).toBe(200);
}, 60_000);

afterAll(async () => {
  await bridge?.close();
  await sshd?.stop();
});

describe('console security', () => {
  it('is not served unless the config enables it', async () => {
    const log = new CapturedLog();
    const config = bridgeConfigSchema.parse({
      server: { host: '127.0.0.1', port: 0, secret: TEST_SECRET },
      ledger: { url: `sqlite:${join(mkdtempSync(join(tmpdir(), 'rsb-console-off-')), 'ledger.db')}` },
      mappingsDir: join(repoRoot, 'mappings'),
      targets: { erp: testTargetConfig(sshd) },
      routes: [{ mapping: 'generic-xml', target: 'erp' }],
    });
    expect(config.console.enabled).toBe(false);
    const plain = await startBridge(config, { logger: createLogger({ level: 'info', destination: log.stream }) });
    try {
      const origin = new URL(plain.url).origin;
      expect((await fetch(`${origin}/console/login`)).status).toBe(404);
      expect((await fetch(`${origin}/console/exports`)).status).toBe(404);
    } finally {
      await plain.close();
    }
  });

  it('an enabled console nobody can sign in to is a config error naming the field', () => {
    const parsed = bridgeConfigSchema.safeParse({
      targets: { erp: { url: 'file:///tmp/x' } },
      routes: [{ mapping: 'm', target: 'erp' }],
      console: { enabled: true },
    });
    expect(parsed.success).toBe(false);
    expect(parsed.error?.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`)).toContain(
      'console.users: the console is enabled but nobody can sign in: add users or tokenEnv',
    );
    const plaintext = bridgeConfigSchema.safeParse({
      targets: { erp: { url: 'file:///tmp/x' } },
      routes: [{ mapping: 'm', target: 'erp' }],
      console: { enabled: true, users: [{ name: 'a', passwordHash: 'hunter2-plain' }] },
    });
    expect(plaintext.error?.issues[0]?.path.join('.')).toBe('console.users.0.passwordHash');
  });

  it('every page but the sign-in page needs a session', async () => {
    const anonymous = new Session(bridge.consoleUrl);
    for (const path of ['/exports', '/exports/1', '/exports/1/file', '/overview', '/ack-files']) {
      const response = await anonymous.request(path);
      expect(response.status, path).toBe(303);
      expect(response.headers.get('location')).toBe(`/console/login?next=${encodeURIComponent(`/console${path}`)}`);
    }
    for (const path of ['/live', '/overview/data', '/exports/rows'])
      expect((await anonymous.request(path)).status, path).not.toBe(200);
    expect((await anonymous.request('/login')).status).toBe(200);
  });

  it('a wrong password, an unknown user or a wrong token gets no session', async () => {
    for (const [name, password] of [
      [OPERATOR.name, 'wrong-password-123'],
      ['mallory', OPERATOR.password],
      ['', 'not-the-token-0123456789abcdef0123'],
    ] as const) {
      const session = new Session(bridge.consoleUrl);
      const response = await session.signIn(name, password);
      expect(response.status).toBe(401);
      expect(await response.text()).toContain('Wrong name or password.');
      expect((await session.request('/exports')).status).toBe(303);
    }
  });

  it('signing in sets a signed, HttpOnly, SameSite=Strict session cookie scoped to the console', async () => {
    const session = new Session(bridge.consoleUrl);
    const response = await session.signIn(OPERATOR.name, OPERATOR.password);
    expect(response.status).toBe(303);
    expect(response.headers.get('location')).toBe('/console/');
    const cookie = response.headers.getSetCookie().find((line) => line.startsWith('rsb_console='));
    expect(cookie).toMatch(/HttpOnly/i);
    expect(cookie).toMatch(/SameSite=Strict/i);
    expect(cookie).toMatch(/Path=\/console/);
    expect(cookie, 'plain HTTP with secureCookies: auto').not.toMatch(/;\s*Secure/i);
    expect((await session.request('/exports')).status).toBe(200);
  });

  it('secureCookies: always marks the cookies Secure even when a TLS proxy forwards plain HTTP', () => {
    const plainRequest = { protocol: 'http' } as Parameters<typeof cookieOptions>[1];
    expect(cookieOptions({ prefix: '/console', secure: 'always' }, plainRequest).secure).toBe(true);
    expect(cookieOptions({ prefix: '/console', secure: 'auto' }, plainRequest).secure).toBe(false);
    expect(
      cookieOptions({ prefix: '/console', secure: 'auto' }, { protocol: 'https' } as Parameters<
        typeof cookieOptions
      >[1]).secure,
    ).toBe(true);
  });

  it('a session cookie changed by the client is refused', async () => {
    const session = new Session(bridge.consoleUrl);
    const response = await session.signIn(VIEWER.name, VIEWER.password);
    const value = /rsb_console=([^;]+)/.exec(response.headers.getSetCookie().join('\n'))?.[1] ?? '';
    const [payload, signature] = decodeURIComponent(value).split('.');
    const forged = Buffer.from(JSON.stringify({ u: VIEWER.name, r: 'operator', e: Date.now() + 3_600_000 })).toString(
      'base64url',
    );
    expect(forged).not.toBe(payload);
    const tampered = await fetch(`${bridge.consoleUrl}/exports`, {
      headers: { cookie: `rsb_console=${forged}.${signature}` },
      redirect: 'manual',
    });
    expect(tampered.status).toBe(303);
  });

  it('the access token from the environment signs in without a user name, with its configured role', async () => {
    const session = new Session(bridge.consoleUrl);
    expect((await session.signIn('', ACCESS_TOKEN)).status).toBe(303);
    const page = await (await session.request('/exports')).text();
    expect(page).toContain('(access token)');
    expect(page).toContain('<span class="role">viewer</span>');
  });

  it('every POST needs the CSRF token of this session', async () => {
    const session = new Session(bridge.consoleUrl);
    await session.signIn(OPERATOR.name, OPERATOR.password);
    const [record] = await bridge.bridge.ledger.list({ annotationId: 700001 });
    await bridge.bridge.ledger.recordAck({
      source: 'erp',
      fileName: 'stray.csv',
      sha256: 'c'.repeat(64),
      convention: 'csv',
      disposition: 'unmatched',
      entries: [],
    });
    const [open] = await bridge.consoleLedger.openAckFiles(10);
    expect(record && open).toBeTruthy();
    const without = await session.post(`/ack-files/${open?.id}/handle`, { note: 'no token' });
    expect(without.status).toBe(403);
    const forged = await session.post(`/ack-files/${open?.id}/handle`, { _csrf: 'forged-token', note: 'forged' });
    expect(forged.status).toBe(403);
    const other = new Session(bridge.consoleUrl);
    await other.signIn(VIEWER.name, VIEWER.password);
    const othersToken = await other.csrfFrom('/exports');
    expect((await session.post(`/ack-files/${open?.id}/handle`, { _csrf: othersToken, note: 'cross' })).status).toBe(
      403,
    );
    expect((await bridge.consoleLedger.openAckFiles(10)).map((file) => file.id)).toContain(open?.id);
    const login = await fetch(`${bridge.consoleUrl}/login`, {
      method: 'POST',
      body: new URLSearchParams({ name: OPERATOR.name, password: OPERATOR.password }),
      redirect: 'manual',
    });
    expect(login.status).toBe(403);
  });

  it('a viewer can read but gets 403 on actions; an operator can act', async () => {
    await bridge.bridge.ledger.recordAck({
      source: 'erp',
      fileName: 'stray-2.csv',
      sha256: 'd'.repeat(64),
      convention: 'csv',
      disposition: 'unmatched',
      entries: [],
    });
    const file = (await bridge.consoleLedger.openAckFiles(10)).find(
      (candidate) => candidate.fileName === 'stray-2.csv',
    );
    const viewer = new Session(bridge.consoleUrl);
    await viewer.signIn(VIEWER.name, VIEWER.password);
    expect((await viewer.request('/ack-files')).status).toBe(200);
    expect((await viewer.request(`/ack-files/${file?.id}/handle`)).status).toBe(403);
    const csrf = await viewer.csrfFrom('/ack-files');
    expect((await viewer.post(`/ack-files/${file?.id}/handle`, { _csrf: csrf, note: 'viewer try' })).status).toBe(403);

    const operator = new Session(bridge.consoleUrl);
    await operator.signIn(OPERATOR.name, OPERATOR.password);
    const confirm = await operator.request(`/ack-files/${file?.id}/handle`);
    expect(confirm.status).toBe(200);
    const token = /name="_csrf" value="([^"]+)"/.exec(await confirm.text())?.[1] ?? '';
    const done = await operator.post(`/ack-files/${file?.id}/handle`, { _csrf: token, note: 'told the ERP team' });
    expect(done.status).toBe(303);
    const handled = await bridge.consoleLedger.ackFile(file?.id ?? 0);
    expect(handled?.handledBy).toBe(OPERATOR.name);
    expect(handled?.handledAt).toBeGreaterThan(0);
    expect((await operator.post(`/ack-files/${file?.id}/handle`, { _csrf: token, note: 'again' })).status).toBe(409);
  });

  it('retrying an upload needs the operator role and the CSRF token, and is refused for an export that is not retryable', async () => {
    const [uploaded] = await bridge.bridge.ledger.list({ annotationId: 700001 });
    const path = `/exports/${uploaded?.id}/retry`;
    const viewer = new Session(bridge.consoleUrl);
    await viewer.signIn(VIEWER.name, VIEWER.password);
    expect((await viewer.request(path)).status).toBe(403);
    const viewerCsrf = await viewer.csrfFrom('/ack-files');
    expect((await viewer.post(path, { _csrf: viewerCsrf })).status).toBe(403);

    const operator = new Session(bridge.consoleUrl);
    await operator.signIn(OPERATOR.name, OPERATOR.password);
    const confirm = await operator.request(path);
    expect(confirm.status).toBe(409);
    expect(await confirm.text()).toContain('only an export whose upload failed transiently');
    expect((await operator.post(path, {})).status).toBe(403);
    const csrf = await operator.csrfFrom('/ack-files');
    const refused = await operator.post(path, { _csrf: csrf });
    expect(refused.status).toBe(409);
    expect(await refused.text()).toContain('is uploaded');
    expect(await bridge.bridge.ledger.get(uploaded?.id ?? 0)).toMatchObject({
      status: 'uploaded',
      attempts: uploaded?.attempts,
    });
    expect(await bridge.consoleLedger.actionsOfExport(uploaded?.id ?? 0)).toEqual([]);
  });

  it('pages carry a strict CSP and never show a secret', async () => {
    const session = new Session(bridge.consoleUrl);
    await session.signIn(OPERATOR.name, OPERATOR.password);
    const [record] = await bridge.bridge.ledger.list({ annotationId: 700001 });
    const pages = [
      '/exports',
      `/exports/${record?.id}`,
      `/exports/${record?.id}/file`,
      '/overview',
      '/ack-files',
      '/overview/data',
      `/exports/rows`,
    ];
    const secrets = [
      TEST_SECRET,
      SESSION_SECRET,
      ACCESS_TOKEN,
      OPERATOR.password,
      sshd.privateKey.split('\n')[1] ?? 'x',
      ...bridge.config.console.users.map((user) => user.passwordHash.split('$')[5] ?? 'x'),
    ];
    for (const path of pages) {
      const response = await session.request(path);
      expect(response.status, path).toBe(200);
      const csp = response.headers.get('content-security-policy') ?? '';
      expect(csp).toContain("default-src 'none'");
      expect(csp).toContain("script-src 'self'");
      expect(csp).not.toContain('unsafe-inline');
      expect(response.headers.get('x-frame-options')).toBe('DENY');
      const body = await response.text();
      for (const secret of secrets) expect(body, `${path} shows a secret`).not.toContain(secret);
      expect(body).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/);
      expect(body).not.toMatch(/\son[a-z]+=/i);
    }
    expect(bridge.log.text()).not.toContain(OPERATOR.password);
  });

  it('a filter value with markup is shown as text, and a bad filter names the field', async () => {
    const session = new Session(bridge.consoleUrl);
    await session.signIn(VIEWER.name, VIEWER.password);
    const page = await (
      await session.request(`/exports?q=${encodeURIComponent('<img src=x onerror=alert(1)>')}`)
    ).text();
    expect(page).not.toContain('<img src=x');
    expect(page).toContain('&lt;img src=x onerror=alert(1)&gt;');
    const bad = await session.request('/exports?state=exploded');
    expect(bad.status).toBe(400);
    expect(await bad.text()).toContain('state: unknown state &quot;exploded&quot;');
    const badDate = await session.request('/exports?from=yesterday');
    expect(await badDate.text()).toContain('from: &quot;yesterday&quot; is not a date (YYYY-MM-DD)');
  });

  it('sign-in only redirects inside the console', async () => {
    const session = new Session(bridge.consoleUrl);
    const csrf = await session.csrfFrom('/login');
    const response = await session.post('/login', {
      _csrf: csrf,
      name: OPERATOR.name,
      password: OPERATOR.password,
      next: 'https://evil.example/',
    });
    expect(response.headers.get('location')).toBe('/console/');
  });
});
