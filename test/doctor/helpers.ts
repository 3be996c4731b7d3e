import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { repoRoot } from '../support/bridge.ts';
import type { RossumHooksApi } from '../support/rossum-hooks-api.ts';
import type { SshdInstance } from '../support/sshd.ts';
import { cliEntry } from '../support/cli-entry.ts';

export const HOOK_SECRET = 'doctor-test-secret-0123456789abcdef';
export const PUBLIC_URL = 'https://bridge.example.com';
export const WEBHOOK_URL = `${PUBLIC_URL}/webhooks/rossum`;

export interface DevLoop {
  sshd: SshdInstance;
  rossum: RossumHooksApi;
  token: string;
  ledgerPath: string;
}

/**
 * The config of a dev loop as an operator writes it: exports to the sshd's `inbound/` (target `erp`),
 * the ERP's answers in `acks/` read through `erp-out`, a SQLite ledger, the simulated Rossum API.
 * `targets` entries are merged over the defaults; returns the path of the written file.
 */
export function writeConfig(
  loop: DevLoop,
  overrides: {
    erp?: Record<string, unknown>;
    erpOut?: Record<string, unknown>;
    server?: Record<string, unknown>;
    rossum?: Record<string, unknown>;
  } = {},
): string {
  const { sshd } = loop;
  const target = (url: string, extra: Record<string, unknown> | undefined): Record<string, unknown> => ({
    url,
    hostKey: sshd.hostKeyFingerprint,
    privateKey: sshd.privateKey,
    pool: { connectTimeoutMs: 3000 },
    retry: { attempts: 1 },
    ...extra,
  });
  const config = {
    server: { host: '127.0.0.1', port: 0, secret: HOOK_SECRET, publicUrl: PUBLIC_URL, ...overrides.server },
    ledger: { url: `sqlite:${loop.ledgerPath}` },
    mappingsDir: join(repoRoot, 'mappings'),
    targets: { erp: target(sshd.url('inbound'), overrides.erp), 'erp-out': target(sshd.url('acks'), overrides.erpOut) },
    routes: [{ mapping: 'generic-xml', target: 'erp', queues: [11, 12] }],
    rossum: { baseUrl: loop.rossum.apiUrl, token: loop.token, ...overrides.rossum },
    acks: {
      targets: { erp: { folder: '.', readFrom: 'erp-out' } },
      byMapping: { 'generic-xml': { convention: 'companion' } },
    },
  };
  const dir = mkdtempSync(join(tmpdir(), 'rsb-doctor-config-'));
  const path = join(dir, 'bridge.yaml');
  // JSON is YAML: the file is what an operator would write, in the bridge's own loader.
  writeFileSync(path, JSON.stringify(config, null, 2));
  return path;
}

/** A fingerprint no server has. */
export function otherFingerprint(): string {
  return `SHA256:${randomBytes(32).toString('base64').replace(/=+$/, '')}`;
}

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the real CLI (bin/rossum-sftp-bridge) as an operator would. */
export function cli(args: string[]): Promise<CliRun> {
  return new Promise((resolveRun) => {
    execFile(process.execPath, [cliEntry(), ...args], { cwd: repoRoot, timeout: 60_000 }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
      resolveRun({ code, stdout, stderr });
    });
  });
}

/** A config for `hook` commands alone: a file:// target (never touched by them) and the simulated Rossum API. */
export function writeHookConfig(rossum: RossumHooksApi, auth: Record<string, unknown>): string {
  const dir = mkdtempSync(join(tmpdir(), 'rsb-hook-config-'));
  const config = {
    server: { secret: HOOK_SECRET, publicUrl: PUBLIC_URL },
    ledger: { url: `sqlite:${join(dir, 'ledger.db')}` },
    mappingsDir: join(repoRoot, 'mappings'),
    targets: { erp: { url: `file://${join(dir, 'out')}` } },
    routes: [{ mapping: 'generic-xml', target: 'erp', queues: [11, 12] }],
    rossum: { baseUrl: rossum.apiUrl, ...auth },
  };
  const path = join(dir, 'bridge.yaml');
  writeFileSync(path, JSON.stringify(config, null, 2));
  return path;
}
