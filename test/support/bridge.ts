import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startBridge, type RunningBridge } from '../../src/process/index.ts';
import { bridgeConfigSchema, type BridgeConfig } from '../../src/config/index.ts';
import type { SshdInstance } from '../../src/dev/index.ts';
import { createLogger, type Logger } from '../../src/observability/logger.ts';
import { Writable } from 'node:stream';

export const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
export const TEST_SECRET = 'test-hook-secret-0123456789abcdef';

/** A shared fixture payload as an object (fresh copy each call). */
export function fixture(name: string): Record<string, unknown> {
  return JSON.parse(readFileSync(join(repoRoot, 'test/fixtures/rossum', name), 'utf8')) as Record<string, unknown>;
}

/** Everything the process logged, to grep for secrets. */
export class CapturedLog {
  readonly lines: string[] = [];
  readonly stream = new Writable({
    write: (chunk: Buffer, _encoding, callback) => {
      this.lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
      callback();
    },
  });
  text(): string {
    return this.lines.join('\n');
  }
}

export interface TestBridgeOptions {
  sshd: SshdInstance;
  mapping?: string;
  /** Extra target settings merged over the defaults (sftp to the test sshd, pinned host key, key auth). */
  target?: Record<string, unknown>;
  server?: Record<string, unknown>;
  ledgerUrl?: string;
  routes?: BridgeConfig['routes'];
  extraTargets?: Record<string, Record<string, unknown>>;
  /** Mappings folder (default: the repository's mappings/). */
  mappingsDir?: string;
  /** The `rossum:` config block (API access; document downloads use its token and allowed hosts). */
  rossum?: Record<string, unknown>;
}

export interface TestBridge {
  bridge: RunningBridge;
  url: string;
  config: BridgeConfig;
  log: CapturedLog;
  logger: Logger;
  close(): Promise<void>;
}

export function testTargetConfig(sshd: SshdInstance, overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    url: sshd.url('inbound'),
    hostKey: sshd.hostKeyFingerprint,
    privateKey: sshd.privateKey,
    pool: { size: 4, connectTimeoutMs: 3000 },
    retry: { attempts: 2, minDelayMs: 50, maxDelayMs: 200 },
    ...overrides,
  };
}

export async function startTestBridge(options: TestBridgeOptions): Promise<TestBridge> {
  const dir = mkdtempSync(join(tmpdir(), 'rsb-bridge-'));
  const config = bridgeConfigSchema.parse({
    server: { host: '127.0.0.1', port: 0, secret: TEST_SECRET, ...options.server },
    ledger: { url: options.ledgerUrl ?? `sqlite:${join(dir, 'ledger.db')}` },
    mappingsDir: options.mappingsDir ?? join(repoRoot, 'mappings'),
    ...(options.rossum ? { rossum: options.rossum } : {}),
    targets: { erp: testTargetConfig(options.sshd, options.target), ...options.extraTargets },
    routes: options.routes ?? [{ mapping: options.mapping ?? 'generic-xml', target: 'erp' }],
  });
  const log = new CapturedLog();
  const logger = createLogger({ level: 'debug', destination: log.stream });
  const bridge = await startBridge(config, { logger });
  return { bridge, url: bridge.url, config, log, logger, close: () => bridge.close() };
}
