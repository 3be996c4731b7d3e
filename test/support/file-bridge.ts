import { mkdtempSync, readdirSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bridgeConfigSchema, type BridgeConfig } from '../../src/config/index.ts';
import { startBridge, type RunningBridge } from '../../src/process/index.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { CapturedLog, repoRoot, TEST_SECRET } from './bridge.ts';

/** An in-process bridge whose only target is a folder on local disk: for tests of the webhook edge, no sshd needed. */
export interface FileBridge {
  bridge: RunningBridge;
  url: string;
  outputDir: string;
  log: CapturedLog;
  files(): string[];
  close(): Promise<void>;
}

export async function startFileBridge(
  server: Record<string, unknown> = {},
  routes?: BridgeConfig['routes'],
): Promise<FileBridge> {
  const dir = mkdtempSync(join(tmpdir(), 'rsb-file-bridge-'));
  const outputDir = join(dir, 'out');
  const config = bridgeConfigSchema.parse({
    server: { host: '127.0.0.1', port: 0, secret: TEST_SECRET, ...server },
    ledger: { url: `sqlite:${join(dir, 'ledger.db')}` },
    mappingsDir: join(repoRoot, 'mappings'),
    targets: { erp: { url: `file://${outputDir}` } },
    routes: routes ?? [{ mapping: 'generic-xml', target: 'erp' }],
  });
  const log = new CapturedLog();
  const bridge = await startBridge(config, { logger: createLogger({ level: 'debug', destination: log.stream }) });
  return {
    bridge,
    url: bridge.url,
    outputDir,
    log,
    files: () => (existsSync(outputDir) ? readdirSync(outputDir).sort() : []),
    close: () => bridge.close(),
  };
}
