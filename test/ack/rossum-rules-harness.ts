import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bridgeConfigSchema, type BridgeConfig } from '../../src/config/index.ts';
import type { Ledger } from '../../src/ledger/index.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { startAcks, type RunningAcks } from '../../src/process/index.ts';
import { CapturedLog } from '../support/bridge.ts';
import { ErpSimulator } from '../support/erp-simulator.ts';
import type { RossumSimulator } from '../support/rossum-simulator.ts';
import { claimTestExport, completeTestExport, testExportContent } from './harness.ts';

/**
 * The acks process against the stricter simulated Rossum, with shared folders (file:// targets) so the
 * tests stay about Rossum: exports land in `inbound/`, the ERP answers (companion .ok/.err) in `outbound/`.
 */
export interface RulesRig {
  dir: string;
  erp: ErpSimulator;
  configFile: string;
  config: BridgeConfig;
  acks: RunningAcks;
  log: CapturedLog;
  /** An uploaded export of `annotationId` (file `INV-<id>.xml`), as `serve` leaves it. */
  exported(annotationId: number): Promise<number>;
  /** Passes until `done` holds. */
  passUntil(done: () => boolean | Promise<boolean>, maxPasses?: number): Promise<void>;
  /** Stops the acks process and starts a new one on the same ledger with these Rossum settings (a restart). */
  restart(rossum: Record<string, unknown>): Promise<void>;
  close(): Promise<void>;
}

export function rulesConfigInput(
  dir: string,
  rossum: Record<string, unknown>,
  acks: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    ledger: { url: `sqlite:${join(dir, 'ledger.db')}` },
    mappingsDir: join(dir, 'mappings'),
    targets: {
      share: { url: `file://${join(dir, 'inbound')}` },
      'share-out': { url: `file://${join(dir, 'outbound')}` },
    },
    routes: [{ mapping: 'erp-companion', target: 'share' }],
    rossum,
    acks: {
      pollIntervalMs: 60_000,
      minAgeMs: 50,
      targets: { share: { folder: '.', readFrom: 'share-out', watch: 'poll' } },
      delivery: { leaseMs: 2_000, retryMinMs: 50, retryMaxMs: 200 },
      byMapping: { 'erp-companion': { convention: 'companion', deadlineMs: 3_600_000 } },
      ...acks,
    },
  };
}

export async function startRulesRig(
  simulator: RossumSimulator,
  rossum: Record<string, unknown>,
  acksSettings: Record<string, unknown> = {},
): Promise<RulesRig> {
  const dir = mkdtempSync(join(tmpdir(), 'rsb-rossum-rules-'));
  for (const sub of ['inbound', 'outbound', 'mappings']) mkdirSync(join(dir, sub), { recursive: true });
  writeFileSync(join(dir, 'mappings', 'erp-companion.yaml'), '');
  const erp = new ErpSimulator(join(dir, 'outbound'));
  const log = new CapturedLog();
  const configFile = join(dir, 'bridge.yaml');
  const withUrl = { baseUrl: simulator.apiUrl, ...rossum };
  const input = rulesConfigInput(dir, withUrl, acksSettings);
  writeFileSync(configFile, JSON.stringify(input));
  let config = bridgeConfigSchema.parse(input);
  const start = (): Promise<RunningAcks> =>
    startAcks(config, { logger: createLogger({ level: 'debug', destination: log.stream }), loop: false });
  let acks = await start();
  const rig: RulesRig = {
    dir,
    erp,
    configFile,
    get config() {
      return config;
    },
    get acks() {
      return acks;
    },
    log,
    async exported(annotationId) {
      const name = `INV-${annotationId}.xml`;
      const content = testExportContent(annotationId);
      writeFileSync(join(dir, 'inbound', name), content);
      const claim = await claimTestExport(acks.ledger, {
        annotationId,
        fileName: name,
        mapping: 'erp-companion',
        target: 'share',
        content,
      });
      await completeTestExport(acks.ledger, claim.record.id, name);
      return claim.record.id;
    },
    async passUntil(done, maxPasses = 60) {
      for (let pass = 0; pass < maxPasses; pass++) {
        await acks.pass();
        if (await done()) return;
        await new Promise((resolve) => setTimeout(resolve, 60));
      }
      throw new Error(`condition not reached after ${maxPasses} passes`);
    },
    async restart(next) {
      await acks.close();
      const nextInput = rulesConfigInput(dir, { baseUrl: simulator.apiUrl, ...next }, acksSettings);
      writeFileSync(configFile, JSON.stringify(nextInput));
      config = bridgeConfigSchema.parse(nextInput);
      acks = await start();
    },
    async close() {
      await acks.close();
    },
  };
  return rig;
}

export async function outcomeOf(ledger: Ledger, exportId: number) {
  const outcomes = await ledger.outcomes(exportId);
  return outcomes.at(-1);
}
