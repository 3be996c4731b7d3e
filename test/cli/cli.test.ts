import { execFileSync } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, startSshd, type SshdInstance } from '../support/sshd.ts';
import { repoRoot } from '../support/bridge.ts';
import { runCli, ServeProcess, writeServeConfig } from '../support/fault-serve.ts';
import { nodeChildPids } from '../support/processes.ts';

let sshd: SshdInstance;
const dir = mkdtempSync(join(tmpdir(), 'rsb-cli-'));

beforeAll(async () => {
  sshd = await startSshd({ baseDir: join(dir, 'sftp') });
});
afterAll(async () => {
  await sshd?.stop();
});

function target(): Record<string, unknown> {
  return { url: sshd.url('inbound'), hostKey: sshd.hostKeyFingerprint, privateKeyPath: sshd.privateKeyPath };
}

describe('serve', () => {
  it('refuses to start without a hook secret, saying how to fix it', async () => {
    const configPath = writeServeConfig(mkdtempSync(join(dir, 'nosecret-')), {
      port: 0,
      secret: '',
      ledgerPath: join(dir, 'a.db'),
      target: target(),
    });
    const fixed = join(dir, 'nosecret.yaml');
    writeFileSync(fixed, readFileSync(configPath, 'utf8').replace(/^ {2}secret: .*\n/m, ''));
    const run = await runCli(['serve', '--config', fixed]);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/server\.secret is not set: refusing to accept unsigned webhooks/);
    expect(run.stderr).not.toMatch(/\n\s+at /);
  });

  it('--insecure-no-signature accepts unsigned calls and says so loudly', async () => {
    const port = await freePort();
    const configDir = mkdtempSync(join(dir, 'insecure-'));
    const configPath = writeServeConfig(configDir, {
      port,
      secret: 'placeholder-secret-0123456789',
      ledgerPath: join(configDir, 'l.db'),
      target: target(),
    });
    writeFileSync(configPath, readFileSync(configPath, 'utf8').replace(/^ {2}secret: .*\n/m, ''));
    const output = join(configDir, 'out.log');
    const serve = await ServeProcess.start({ configPath, port, outputPath: output, args: ['--insecure-no-signature'] });
    try {
      const body = readFileSync(join(repoRoot, 'test/fixtures/rossum/export-no-line-items.json'), 'utf8');
      const response = await fetch(`http://127.0.0.1:${port}/webhooks/rossum`, {
        method: 'POST',
        body,
        headers: { 'content-type': 'application/json' },
      });
      expect(response.status).toBe(200);
      expect(readFileSync(output, 'utf8')).toContain('SIGNATURE CHECKS ARE OFF');
    } finally {
      await serve.stop();
    }
  });

  it('--workers 2 serves one port from two processes sharing the ledger: a duplicate still uploads once', async () => {
    const port = await freePort();
    const configDir = mkdtempSync(join(dir, 'workers-'));
    const secret = 'workers-secret-0123456789abcdef';
    const configPath = writeServeConfig(configDir, {
      port,
      secret,
      ledgerPath: join(configDir, 'l.db'),
      target: { ...target(), url: sshd.url('inbound/workers') },
    });
    const serve = await ServeProcess.start({
      configPath,
      port,
      outputPath: join(configDir, 'out.log'),
      args: ['--workers', '2'],
    });
    try {
      const payload = JSON.parse(readFileSync(join(repoRoot, 'test/fixtures/rossum/export-invoice.json'), 'utf8')) as {
        annotation: { id: number };
      };
      payload.annotation.id = 777001;
      const body = JSON.stringify(payload);
      const signature = `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
      const replies = await Promise.all(
        Array.from({ length: 10 }, () =>
          fetch(`http://127.0.0.1:${port}/webhooks/rossum`, {
            method: 'POST',
            body,
            headers: { 'content-type': 'application/json', 'x-rossum-signature-sha256': signature },
          }),
        ),
      );
      const statuses = replies.map((reply) => reply.status);
      // A duplicate that meets the other worker's upload in progress may get 503 (Rossum retries it).
      expect(statuses.every((status) => status === 200 || status === 503)).toBe(true);
      expect(statuses).toContain(200);
      expect(readdirSync(join(sshd.inboundDir, 'workers')).filter((name) => !name.startsWith('.'))).toHaveLength(1);
      // Two processes really serve: the primary has two live worker children.
      expect(nodeChildPids(serve.pid)).toHaveLength(2);
    } finally {
      const exit = await serve.stop();
      expect(exit.code).toBe(0);
    }
  });
});

describe('dev', () => {
  it('--demo starts sshd and the bridge, prints URL, secret and folders, and exports the sample payloads', async () => {
    const devDir = join(mkdtempSync(join(dir, 'dev-')), 'dev');
    const run = await runCli(['dev', '--dir', devDir, '--port', '0', '--demo', '--exit'], { timeoutMs: 60_000 });
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/webhook URL\s+http:\/\/127\.0\.0\.1:\d+\/webhooks\/rossum/);
    expect(run.stdout).toMatch(/hook secret\s+[0-9a-f]{48}/);
    expect(run.stdout).toContain(`files land in ${join(devDir, 'sftp', 'inbound')}`);
    expect(run.stdout.match(/→ annotation exported/g)).toHaveLength(3);
    expect(readdirSync(join(devDir, 'sftp', 'inbound')).filter((name) => name.endsWith('.xml'))).toHaveLength(3);
  });
});

describe('render', () => {
  it('--json gives the file name relative to the target, the encoding and the exact bytes', async () => {
    const run = await runCli([
      'render',
      '--mapping',
      'datev-csv',
      '--json',
      'test/fixtures/rossum/export-invoice.json',
    ]);
    expect(run.code, run.stderr).toBe(0);
    const rendered = JSON.parse(run.stdout) as { file: string; encoding: string; contentBase64: string };
    expect(rendered.encoding).toBe('windows-1252');
    expect(rendered.file).not.toMatch(/^\/|\.\./);
    const raw = execFileSync(
      process.execPath,
      [
        join(repoRoot, 'bin/rossum-sftp-bridge'),
        'render',
        '--mapping',
        'datev-csv',
        'test/fixtures/rossum/export-invoice.json',
      ],
      { cwd: repoRoot },
    );
    expect(Buffer.from(rendered.contentBase64, 'base64')).toEqual(raw);
  });
});
