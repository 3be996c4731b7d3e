import { chmodSync, existsSync, mkdtempSync, readdirSync, statfsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/index.ts';
import { formatReport, runDoctor, type CheckResult, type DoctorReport } from '../../src/doctor/index.ts';
import { openLedger } from '../../src/ledger/index.ts';
import { RossumHooksApi } from '../support/rossum-hooks-api.ts';
import { ensurePasswordUser, startSshd, type PasswordUser } from '../support/sshd.ts';
import {
  cli,
  HOOK_SECRET,
  otherFingerprint,
  WEBHOOK_URL,
  writeConfig,
  writeHookConfig,
  type DevLoop,
} from './helpers.ts';

let loop: DevLoop;
let user: PasswordUser;

beforeAll(async () => {
  // The read-only folder test needs a user that is not root (root writes anywhere); creating it needs root.
  user = await ensurePasswordUser();
  const base = mkdtempSync(join(tmpdir(), 'rsb-doctor-'));
  const sshd = await startSshd({ baseDir: join(base, 'sshd'), passwordUser: user });
  const rossum = await RossumHooksApi.start();
  const ledgerPath = join(base, 'ledger.db');
  // The ledger `serve` would have created and migrated.
  await (await openLedger(`sqlite:${ledgerPath}`)).close();
  loop = { sshd, rossum, token: rossum.issueToken(), ledgerPath };
});

afterAll(async () => {
  await loop?.sshd.stop();
  await loop?.rossum.close();
});

beforeEach(() => {
  // The hook as `hook install` leaves it.
  loop.rossum.hooks.clear();
  loop.rossum.addHook({
    name: 'rossum-sftp-bridge',
    events: ['annotation_content.export'],
    queues: [loop.rossum.queueUrl(11), loop.rossum.queueUrl(12)],
    config: { url: WEBHOOK_URL, secret: HOOK_SECRET, timeout_s: 30, retry_count: 4, retry_on_any_non_2xx: false },
  });
});

function find(report: DoctorReport, area: CheckResult['area'], subject: string, check: string | RegExp): CheckResult {
  const found = report.checks.find(
    (c) =>
      c.area === area && c.subject === subject && (typeof check === 'string' ? c.check === check : check.test(c.check)),
  );
  if (!found) throw new Error(`no check ${area} ${subject} ${String(check)} in:\n${formatReport(report)}`);
  return found;
}

/** The reported free space (`78.5 GiB free of …`) is what the file system says, within 2 % (others write meanwhile). */
function expectFreeSpaceOf(detail: string, dir: string): void {
  const match = /^(?:only )?([\d.]+) (B|KiB|MiB|GiB|TiB) free of /.exec(detail);
  expect(match, detail).not.toBeNull();
  const reported = Number(match![1]) * 1024 ** ['B', 'KiB', 'MiB', 'GiB', 'TiB'].indexOf(match![2]!);
  const { bavail, bsize } = statfsSync(dir);
  expect(Math.abs(reported - bavail * bsize) / (bavail * bsize)).toBeLessThan(0.02);
}

function leftovers(dir: string): string[] {
  return readdirSync(dir).filter((name) => name.includes('rsb-doctor'));
}

describe('doctor', () => {
  it('against the dev loop every check is ✓, the exit code is 0, and the probes leave nothing behind', async () => {
    const path = writeConfig(loop);
    const run = await cli(['doctor', '--config', path, '--json']);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const report = JSON.parse(run.stdout) as DoctorReport;
    const notOk = report.checks.filter((check) => check.status !== 'ok');
    expect(notOk, formatReport(report)).toEqual([]);
    expect(report.ok).toBe(true);
    const names = report.checks.map((check) => `${check.area} ${check.subject} · ${check.check}`);
    expect(names).toEqual(
      expect.arrayContaining([
        'target erp · tcp',
        'target erp · host key',
        'target erp · login',
        'target erp · free space',
        'target erp · write + rename + delete (exports)',
        'target erp-out · write + rename + delete (acks of erp: ./)',
        `ledger sqlite:${loop.ledgerPath} · reachable`,
        `ledger sqlite:${loop.ledgerPath} · migrated`,
        `ledger sqlite:${loop.ledgerPath} · writable`,
        `rossum ${loop.rossum.apiUrl} · credentials`,
        'rossum queue 11 · readable',
        'rossum queue 12 · readable',
        `hook ${WEBHOOK_URL} · registered`,
        `hook ${WEBHOOK_URL} · events`,
        `hook ${WEBHOOK_URL} · secret`,
        `hook ${WEBHOOK_URL} · queues`,
        'rossum acks.delivery.leaseMs · outcome lease',
      ]),
    );
    expect(names.some((name) => name.startsWith('mappings '))).toBe(true);
    expect(find(report, 'target', 'erp', 'host key').detail).toContain(loop.sshd.hostKeyFingerprint);
    expectFreeSpaceOf(find(report, 'target', 'erp', 'free space').detail, loop.sshd.inboundDir);
    expect(leftovers(loop.sshd.inboundDir)).toEqual([]);
    expect(leftovers(loop.sshd.acksDir)).toEqual([]);
    // Nothing in Rossum was changed by looking.
    expect(loop.rossum.writes()).toEqual([]);

    const text = formatReport(report);
    const lines = text.trim().split('\n');
    expect(lines.filter((line) => line.startsWith('✓')).length).toBe(report.checks.length);
    expect(text).not.toContain('✗');
    expect(run.stdout).not.toContain(HOOK_SECRET);
    expect(run.stdout).not.toContain(loop.token);
  }, 120_000);

  it('a planted wrong host key is ✗ with its fix, and no credentials are sent to that server', async () => {
    const wrong = otherFingerprint();
    const path = writeConfig(loop, { erp: { hostKey: wrong }, erpOut: { hostKey: wrong } });
    const loginsBefore = loop.sshd.loginCount();
    const report = await runDoctor(loadConfig(path).config);
    expect(report.ok).toBe(false);
    const hostKey = find(report, 'target', 'erp', 'host key');
    expect(hostKey.status).toBe('fail');
    expect(hostKey.detail).toContain(loop.sshd.hostKeyFingerprint);
    expect(hostKey.detail).toContain(wrong);
    expect(hostKey.fix).toMatch(/confirm the new fingerprint with its administrator/);
    expect(find(report, 'target', 'erp', 'tcp').status).toBe('ok');
    expect(find(report, 'target', 'erp', 'login')).toMatchObject({
      status: 'skip',
      detail: expect.stringContaining('no credentials were sent'),
    });
    expect(find(report, 'target', 'erp', /^write/).status).toBe('skip');
    // The server saw no login at all: the handshake stopped at its key.
    expect(loop.sshd.loginCount()).toBe(loginsBefore);

    const run = await cli(['doctor', '--config', path]);
    expect(run.code).toBe(1);
    expect(run.stdout).toMatch(/^✗ target erp · host key: /m);
    expect(run.stdout).toMatch(/^ {4}fix: if the server's key changed on purpose/m);
  }, 120_000);

  it('a read-only ack folder is ✗ with its fix; the export folder stays ✓ and nothing is left behind', async () => {
    const path = writeConfig(loop, {
      erpOut: {
        url: `sftp://${user.username}@127.0.0.1:${loop.sshd.port}/~/acks`,
        password: user.password,
        privateKey: undefined,
      },
    });
    chmodSync(loop.sshd.acksDir, 0o555);
    let report: DoctorReport;
    try {
      report = await runDoctor(loadConfig(path).config);
    } finally {
      chmodSync(loop.sshd.acksDir, 0o755);
    }
    expect(report.ok).toBe(false);
    const probe = find(report, 'target', 'erp-out', /^write \+ rename \+ delete \(acks of erp/);
    expect(probe.status).toBe('fail');
    expect(probe.detail).toMatch(/^write failed in sftp:\/\/bridgepw@127\.0\.0\.1:\d+\/~\/acks: .*permission denied/);
    expect(probe.fix).toContain(`give user "${user.username}" write permission on`);
    expect(probe.fix).toContain('processed, unmatched and invalid');
    expect(find(report, 'target', 'erp-out', 'login').status).toBe('ok');
    expect(find(report, 'target', 'erp', 'write + rename + delete (exports)').status).toBe('ok');
    expect(report.checks.filter((check) => check.status === 'fail')).toHaveLength(1);
    expect(leftovers(loop.sshd.acksDir)).toEqual([]);
    expect(leftovers(loop.sshd.inboundDir)).toEqual([]);
  });

  it('a refused password is ✗ at the login step with its fix, and the password is not in the report', async () => {
    const wrong = 'not-the-password-0123';
    const path = writeConfig(loop, {
      erpOut: {
        url: `sftp://${user.username}@127.0.0.1:${loop.sshd.port}/~/acks`,
        password: wrong,
        privateKey: undefined,
      },
    });
    const report = await runDoctor(loadConfig(path).config);
    expect(find(report, 'target', 'erp-out', 'host key').status).toBe('ok');
    const login = find(report, 'target', 'erp-out', 'login');
    expect(login.status).toBe('fail');
    expect(login.detail).toContain(`did not accept user "${user.username}"`);
    expect(login.fix).toMatch(/password \/ private key/);
    expect(find(report, 'target', 'erp-out', /^write/).status).toBe('skip');
    expect(JSON.stringify(report)).not.toContain(wrong);
  });

  it("a wrong secret in Rossum's hook is ✗ with its fix; hook install repairs it and doctor is ✓ again", async () => {
    const hook = [...loop.rossum.hooks.values()][0]!;
    hook.config.secret = 'someone-elses-secret-0123456789';
    const path = writeConfig(loop);
    const config = loadConfig(path).config;
    const before = await runDoctor(config);
    const secret = find(before, 'hook', WEBHOOK_URL, 'secret');
    expect(secret.status).toBe('fail');
    expect(secret.detail).toMatch(/differs from server\.secret: the bridge refuses every export call \(401\)/);
    expect(secret.fix).toContain('rossum-sftp-bridge hook install --queue 11 12');
    expect(before.checks.filter((check) => check.status === 'fail')).toEqual([secret]);
    expect(formatReport(before)).not.toContain('someone-elses-secret');

    const install = await cli(['hook', 'install', '--config', path]);
    expect(install.code).toBe(0);
    expect(install.stdout).toMatch(/^updated hook \d+ "rossum-sftp-bridge" .*: config\.secret$/m);
    expect(loop.rossum.writes()).toHaveLength(1);

    const after = await runDoctor(config);
    expect(find(after, 'hook', WEBHOOK_URL, 'secret').status).toBe('ok');
    expect(after.ok).toBe(true);
  }, 120_000);

  it('a missing hook, a queue the API user cannot read and a missing event are each ✗ with their fix', async () => {
    loop.rossum.hooks.clear();
    const path = writeConfig(loop);
    const missing = await runDoctor(loadConfig(path).config);
    expect(find(missing, 'hook', WEBHOOK_URL, 'registered')).toMatchObject({
      status: 'fail',
      fix: 'run `rossum-sftp-bridge hook install --queue 11 12`',
    });

    loop.rossum.addHook({
      name: 'other',
      events: ['annotation_status'],
      queues: [loop.rossum.queueUrl(11)],
      config: { url: WEBHOOK_URL, secret: HOOK_SECRET },
    });
    const partial = await runDoctor(loadConfig(path).config);
    expect(find(partial, 'hook', WEBHOOK_URL, 'events')).toMatchObject({
      status: 'fail',
      detail: expect.stringContaining('annotation_content.export missing'),
    });
    expect(find(partial, 'hook', WEBHOOK_URL, 'queues')).toMatchObject({
      status: 'fail',
      detail: expect.stringContaining('queue(s) 12'),
    });

    const unknownQueue = writeConfig(loop);
    const config = loadConfig(unknownQueue).config;
    config.routes = [{ ...config.routes[0]!, queues: [99] }];
    const report = await runDoctor(config);
    expect(find(report, 'rossum', 'queue 99', 'readable')).toMatchObject({
      status: 'fail',
      fix: expect.stringContaining('give the API user access to queue 99'),
    });
  });

  it('an outcome lease not above the Rossum request timeout is ✗ with its fix (a write could outlive the lease)', async () => {
    const path = writeConfig(loop, { rossum: { timeoutMs: 60_000 } });
    const report = await runDoctor(loadConfig(path).config);
    const lease = find(report, 'rossum', 'acks.delivery.leaseMs', 'outcome lease');
    expect(lease.status).toBe('fail');
    expect(lease.detail).toBe(
      '60000 ms is not above rossum.timeoutMs (60000 ms): a write to Rossum can outlive the lease, and a replica that took the outcome over writes it again',
    );
    expect(lease.fix).toBe('raise acks.delivery.leaseMs above 60000 (e.g. 120000) or lower rossum.timeoutMs');
    expect(report.ok).toBe(false);
  });

  it('a token Rossum refuses is ✗ with its fix, and the token never appears in the report', async () => {
    const path = writeConfig(loop, { rossum: { token: 'not-a-valid-token-0123456789' } });
    const report = await runDoctor(loadConfig(path).config);
    const credentials = find(report, 'rossum', loop.rossum.apiUrl, 'credentials');
    expect(credentials.status).toBe('fail');
    expect(credentials.fix).toMatch(/the token is invalid or expired/);
    expect(JSON.stringify(report)).not.toContain('not-a-valid-token-0123456789');
  });

  it('a file:// target gets the probe and its free space; a SQLite ledger not created yet is not created by looking', async () => {
    const path = writeHookConfig(loop.rossum, { token: loop.token });
    const config = loadConfig(path).config;
    const report = await runDoctor(config);
    const freeSpace = find(report, 'target', 'erp', 'free space');
    expect(freeSpace.status).toBe('ok');
    expectFreeSpaceOf(freeSpace.detail, tmpdir());
    expect(find(report, 'target', 'erp', 'write + rename + delete (exports)').status).toBe('ok');
    const ledgerFile = config.ledger.url.slice('sqlite:'.length);
    expect(find(report, 'ledger', config.ledger.url, 'reachable')).toMatchObject({
      status: 'ok',
      detail: expect.stringContaining('does not exist yet'),
    });
    expect(existsSync(ledgerFile)).toBe(false);
    expect(report.ok, formatReport(report)).toBe(true);
  });
});
