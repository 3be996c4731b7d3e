import { execFile } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { runSend, type SendOptions } from '../../src/cli/commands/send.ts';
import { HOOK_CALL_DEFAULTS } from '../../src/rossum/hook-call.ts';
import { ScriptedServer, type ScriptedReply } from './scripted-server.ts';

const payloadPath = fileURLToPath(new URL('../fixtures/rossum/export-invoice.json', import.meta.url));
const entry = fileURLToPath(new URL('./send-entry.ts', import.meta.url));
const repoRoot = fileURLToPath(new URL('../../', import.meta.url));

let servers: ScriptedServer[] = [];
afterEach(async () => {
  await Promise.all(servers.map((s) => s.close()));
  servers = [];
});

async function serve(replies: ScriptedReply[]): Promise<ScriptedServer> {
  const server = await ScriptedServer.start(replies);
  servers.push(server);
  return server;
}

function defaults(url: string): SendOptions {
  return { url, ...HOOK_CALL_DEFAULTS, sha1: false, json: false };
}

describe('send (in process)', () => {
  it('prints each attempt and what Rossum would do with the annotation', async () => {
    const server = await serve([
      { status: 503, body: { messages: [{ type: 'error', content: 'SFTP erp-a unreachable' }] } },
      { status: 200, body: { messages: [{ id: 42, type: 'info', content: 'Uploaded INV-1.xml to erp-a' }] } },
    ]);
    const lines: string[] = [];
    const waits: number[] = [];
    const outcome = await runSend(payloadPath, defaults(server.hookUrl()), {
      out: (l) => lines.push(l),
      env: { ROSSUM_HOOK_SECRET: 'env-secret' },
      sleep: async (ms) => void waits.push(ms),
    });
    expect(outcome.annotationStatus).toBe('exported');
    expect(waits).toEqual([30_000]);
    expect(lines[1]).toMatch(/^attempt 1\/5: HTTP 503 in \d+ ms .*SFTP erp-a unreachable.*— retrying in 30 s$/);
    expect(lines[2]).toMatch(/^attempt 2\/5: HTTP 200 in \d+ ms/);
    expect(lines.slice(3)).toEqual(['annotation → exported', '  [info #42] Uploaded INV-1.xml to erp-a']);
    // The secret came from the environment and signed the file's exact bytes.
    const request = server.requests[0];
    expect(request?.headers['x-rossum-signature-sha256']).toBe(
      `sha256=${createHmac('sha256', 'env-secret')
        .update(request?.body ?? '')
        .digest('hex')}`,
    );
    expect(lines.join('\n')).not.toContain('env-secret');
  });

  it('--secret wins over the environment; --sha1 adds the legacy header', async () => {
    const server = await serve([{ status: 200 }]);
    await runSend(
      payloadPath,
      { ...defaults(server.hookUrl()), secret: 'flag-secret', sha1: true },
      { out: () => {}, env: { ROSSUM_HOOK_SECRET: 'env-secret' } },
    );
    const body = server.requests[0]?.body ?? Buffer.alloc(0);
    expect(server.requests[0]?.headers['x-rossum-signature-sha256']).toBe(
      `sha256=${createHmac('sha256', 'flag-secret').update(body).digest('hex')}`,
    );
    expect(server.requests[0]?.headers['x-elis-signature']).toBe(
      `sha1=${createHmac('sha1', 'flag-secret').update(body).digest('hex')}`,
    );
  });

  it('--json prints the whole outcome and nothing else', async () => {
    const server = await serve([{ status: 200, body: { messages: [{ type: 'error', content: 'Missing vendor' }] } }]);
    const lines: string[] = [];
    await runSend(
      payloadPath,
      { ...defaults(server.hookUrl()), secret: 's', json: true },
      { out: (l) => lines.push(l), env: {} },
    );
    expect(lines).toHaveLength(1);
    const parsed = JSON.parse(lines[0] ?? '') as {
      annotationStatus: string;
      messages: Array<{ content: string }>;
      attempts: unknown[];
    };
    expect(parsed.annotationStatus).toBe('failed_export');
    expect(parsed.messages[0]?.content).toBe('Missing vendor');
    expect(parsed.attempts).toHaveLength(1);
  });
});

function runCli(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', entry, 'send', ...args],
      { cwd: repoRoot, env: { ...process.env, ROSSUM_HOOK_SECRET: '', ...env } },
      (error, stdout, stderr) => {
        resolve({ code: error ? Number(error.code ?? 1) : 0, stdout, stderr });
      },
    );
  });
}

describe('send (as a process): exit status tells what Rossum would do', () => {
  it('0 when exported', async () => {
    const server = await serve([{ status: 200, body: { messages: [{ type: 'info', content: 'ok' }] } }]);
    const result = await runCli([payloadPath, '--url', server.hookUrl(), '--secret', 's']);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('annotation → exported');
  });

  it('1 when failed_export (a 422 is final without retry_on_any_non_2xx)', async () => {
    const server = await serve([{ status: 422, body: 'Mapping "acme" has no field for vendor_vat_id' }]);
    const result = await runCli([payloadPath, '--url', server.hookUrl()], { ROSSUM_HOOK_SECRET: 's' });
    expect(result.code).toBe(1);
    expect(result.stdout).toContain('annotation → failed_export');
    expect(result.stdout).toContain('[error] Mapping "acme" has no field for vendor_vat_id');
    expect(server.requests).toHaveLength(1);
  });

  it('2 on bad input: no secret, unreadable payload, out-of-range settings', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'send-'));
    writeFileSync(join(dir, 'p.json'), '{}');
    expect((await runCli([join(dir, 'p.json'), '--url', 'http://127.0.0.1:9/x'])).code).toBe(2);
    expect((await runCli([join(dir, 'missing.json'), '--url', 'http://127.0.0.1:9/x', '--secret', 's'])).code).toBe(2);
    const outOfRange = await runCli([
      join(dir, 'p.json'),
      '--url',
      'http://127.0.0.1:9/x',
      '--secret',
      's',
      '--retry-count',
      '9',
    ]);
    expect(outOfRange.code).not.toBe(0);
    expect(outOfRange.stderr).toContain('between 0 and 4');
  });
});
