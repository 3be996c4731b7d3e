import { createHmac } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { callHook as deliver } from '../../src/rossum/hook-call.ts';
import { fixture, repoRoot, startTestBridge } from '../support/bridge.ts';
import { runCli, ServeProcess } from '../support/fault-serve.ts';
import { ensurePasswordUser, freePort, startSshd, type PasswordUser, type SshdInstance } from '../support/sshd.ts';

// Every secret the process is given, each distinctive so a leak of any of them is found by grep.
const HOOK_SECRET = 'sec-hook-secret-4b8e2f71c9d3a605';
const ROSSUM_TOKEN = 'sec-rossum-api-token-9d1c7e3b5a2f';
const ROSSUM_PASSWORD = 'sec-rossum-password-6a4e8c2d';
const PAYLOAD_TOKEN = 'sec-payload-token-1f3e5d7c9b';
const HOOK_SECRETS_VALUE = 'sec-hook-secrets-value-8c6a4e2f';
const WRONG_SFTP_PASSWORD = 'sec-wrong-sftp-password-3b5d7f9a';

let sshd: SshdInstance;
let user: PasswordUser;
let serve: ServeProcess;
let dir: string;
let outputPath: string;
let ledgerPath: string;
const replies: string[] = [];

function sign(body: string): string {
  return `sha256=${createHmac('sha256', HOOK_SECRET).update(body).digest('hex')}`;
}

function payload(id: number, extra: Record<string, unknown> = {}): string {
  const body = fixture('export-invoice.json');
  (body.annotation as { id: number }).id = id;
  return JSON.stringify({ ...body, rossum_authorization_token: PAYLOAD_TOKEN, ...extra });
}

async function post(
  body: string,
  headers: Record<string, string> = { 'x-rossum-signature-sha256': sign(body) },
): Promise<{ status: number; text: string }> {
  const response = await fetch(serve.url, {
    method: 'POST',
    body,
    headers: { 'content-type': 'application/json', ...headers },
  });
  const text = await response.text();
  replies.push(text);
  return { status: response.status, text };
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'rsb-security-'));
  user = await ensurePasswordUser();
  sshd = await startSshd({ baseDir: mkdtempSync(join(tmpdir(), 'rsb-security-sshd-')), passwordUser: user });
  const port = await freePort();
  ledgerPath = join(dir, 'state', 'ledger.db');
  outputPath = join(dir, 'serve.out');
  const url = `sftp://${user.username}@127.0.0.1:${sshd.port}/~/inbound`;
  const config = {
    server: { host: '127.0.0.1', port, secret: '${SEC_HOOK_SECRET}', deadlineMs: 5_000 },
    ledger: { url: `sqlite:${ledgerPath}` },
    mappingsDir: join(repoRoot, 'mappings'),
    logLevel: 'debug',
    rossum: {
      baseUrl: 'https://example.rossum.app/api',
      token: '${SEC_ROSSUM_TOKEN}',
      username: 'api@example.com',
      password: '${SEC_ROSSUM_PASSWORD}',
    },
    targets: {
      erp: { url, hostKey: sshd.hostKeyFingerprint, password: '${SEC_SFTP_PASSWORD}', retry: { attempts: 1 } },
      wrong: { url, hostKey: sshd.hostKeyFingerprint, password: '${SEC_WRONG_PASSWORD}', retry: { attempts: 1 } },
      perhook: { url, hostKey: sshd.hostKeyFingerprint, credentials: 'hookSecrets', retry: { attempts: 1 } },
    },
    routes: [{ mapping: 'generic-xml', target: 'erp' }],
  };
  const configPath = join(dir, 'bridge.yaml');
  writeFileSync(configPath, stringify(config), { mode: 0o600 });
  serve = await ServeProcess.start({
    configPath,
    port,
    outputPath,
    env: {
      SEC_HOOK_SECRET: HOOK_SECRET,
      SEC_ROSSUM_TOKEN: ROSSUM_TOKEN,
      SEC_ROSSUM_PASSWORD: ROSSUM_PASSWORD,
      SEC_SFTP_PASSWORD: user.password,
      SEC_WRONG_PASSWORD: WRONG_SFTP_PASSWORD,
    },
  });
});

afterAll(async () => {
  await serve?.stop();
  await sshd?.stop();
});

describe('no secret in logs, replies, metrics or the ledger', () => {
  it('exports, failures and refusals write nothing secret anywhere', async () => {
    const ok = await post(payload(610_001, { secrets: { password: HOOK_SECRETS_VALUE, token: HOOK_SECRETS_VALUE } }));
    expect(ok.status).toBe(200);
    expect(ok.text).toContain('Exported');
    // Per-hook credentials: right and wrong password from the hook's `secrets`.
    const perHook = await post(
      payload(610_002, { settings: { target: 'perhook' }, secrets: { password: user.password } }),
    );
    expect(perHook.text).toContain('Exported');
    const perHookWrong = await post(
      payload(610_003, {
        settings: { target: 'perhook' },
        secrets: { username: user.username, password: HOOK_SECRETS_VALUE },
      }),
    );
    expect(perHookWrong.status).toBe(503);
    expect(perHookWrong.text).toMatch(/rejected the credentials/);
    const wrong = await post(payload(610_004, { settings: { target: 'wrong' } }));
    expect(wrong.status).toBe(503);
    expect(wrong.text).toMatch(/rejected the credentials/);
    // Refused calls (their headers carry signatures) and a call signed with the secret as the body.
    expect((await post(payload(610_005), { 'x-rossum-signature-sha256': `sha256=${'0'.repeat(64)}` })).status).toBe(
      401,
    );
    expect((await post(HOOK_SECRET)).status).toBe(400);
    expect(
      (
        await post(
          JSON.stringify({
            event: 'annotation_content',
            action: 'export',
            secret: HOOK_SECRET,
            password: user.password,
          }),
        )
      ).status,
    ).toBe(400);

    const metrics = await (await fetch(`${serve.baseUrl}/metrics`)).text();
    const ready = await (await fetch(`${serve.baseUrl}/readyz`)).text();
    await serve.stop();
    const output = readFileSync(outputPath, 'utf8');
    const db = new Database(ledgerPath, { readonly: true });
    const tables = (
      db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all() as Array<{ name: string }>
    ).map((row) => row.name);
    const dump = JSON.stringify(tables.map((table) => db.prepare(`SELECT * FROM "${table}"`).all()));
    db.close();
    expect(dump).toContain('610001');
    expect(output).toContain('rejected the credentials');

    const places = { output, replies: replies.join('\n'), metrics, ready, ledger: dump };
    for (const [secretName, secret] of Object.entries({
      HOOK_SECRET,
      ROSSUM_TOKEN,
      ROSSUM_PASSWORD,
      PAYLOAD_TOKEN,
      HOOK_SECRETS_VALUE,
      WRONG_SFTP_PASSWORD,
      SFTP_PASSWORD: user.password,
    })) {
      for (const [place, text] of Object.entries(places))
        expect(text.includes(secret), `${secretName} appears in ${place}`).toBe(false);
    }
  }, 60_000);
});

describe('files holding keys and the ledger are owner-only', () => {
  it('the ledger, its folder and its WAL files', () => {
    expect(statSync(join(dir, 'state')).mode & 0o777).toBe(0o700);
    for (const name of readdirSync(join(dir, 'state')))
      expect(statSync(join(dir, 'state', name)).mode & 0o077, name).toBe(0);
    expect(existsSync(ledgerPath)).toBe(true);
  });

  it('everything `dev` generates: keys, hook secret, config, ledger', async () => {
    const devDir = join(mkdtempSync(join(tmpdir(), 'rsb-security-dev-')), 'dev');
    const run = await runCli(['dev', '--dir', devDir, '--port', '0', '--demo', '--exit'], { timeoutMs: 60_000 });
    expect(run.code, run.stderr).toBe(0);
    expect(statSync(devDir).mode & 0o077).toBe(0);
    const secretFiles = [
      'hook-secret',
      'bridge.yaml',
      'ledger.db',
      'sftp/ssh_host_ed25519_key',
      'sftp/client_ed25519',
      'sftp/client_ed25519_encrypted',
      'sftp/sshd_config',
      'sftp/authorized_keys',
    ];
    for (const name of secretFiles) {
      expect(existsSync(join(devDir, name)), name).toBe(true);
      expect(statSync(join(devDir, name)).mode & 0o077, name).toBe(0);
    }
  }, 90_000);
});

describe('host keys are pinned by default', () => {
  it('an sftp target without hostKey or knownHosts is a config error with file:line:column', async () => {
    const path = join(dir, 'unpinned.yaml');
    writeFileSync(
      path,
      stringify({
        server: { secret: HOOK_SECRET },
        mappingsDir: join(repoRoot, 'mappings'),
        targets: { erp: { url: `sftp://u@127.0.0.1:${sshd.port}/in`, password: 'x' } },
        routes: [{ mapping: 'generic-xml', target: 'erp' }],
      }),
    );
    for (const args of [
      ['check', path],
      ['serve', '--config', path],
    ]) {
      const result = await runCli(args);
      expect(result.code).not.toBe(0);
      expect(`${result.stdout}${result.stderr}`).toMatch(
        new RegExp(`${path.replace(/[.]/g, '\\.')}:\\d+:\\d+: .*hostKey`),
      );
      expect(`${result.stdout}${result.stderr}`).not.toMatch(/^\s+at /m);
    }
  }, 30_000);

  it('an unknown key (not in known_hosts) and a changed key both refuse the connection; nothing is uploaded', async () => {
    const knownHosts = join(dir, 'known_hosts');
    writeFileSync(knownHosts, `[127.0.0.1]:1 ${sshd.hostPublicKey}\n`);
    const changed = 'SHA256:bm90LXRoZS1zZXJ2ZXJzLWtleS1hdC1hbGwtMTIzNDU';
    for (const [target, pattern] of [
      [{ hostKey: undefined, knownHosts }, /host key of 127\.0\.0\.1:\d+ is not known/],
      [
        { hostKey: changed },
        new RegExp(
          `host key mismatch .*presented ${sshd.hostKeyFingerprint.replace(/[+/]/g, '\\$&')}.*expected ${changed}`,
        ),
      ],
    ] as const) {
      const before = readdirSync(sshd.inboundDir).length;
      const bridge = await startTestBridge({ sshd, target });
      try {
        const body = payload(620_000 + before);
        const outcome = await deliver({
          url: bridge.url,
          body,
          secret: 'test-hook-secret-0123456789abcdef',
          retryCount: 0,
        });
        expect(outcome.finalStatusCode).toBe(503);
        expect(outcome.messages[0]?.content).toMatch(pattern);
        expect(readdirSync(sshd.inboundDir).length).toBe(before);
      } finally {
        await bridge.close();
      }
    }
  }, 30_000);
});
