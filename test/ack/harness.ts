import { createHash } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startAcks, type RunningAcks } from '../../src/process/index.ts';
import { bridgeConfigSchema, type BridgeConfig } from '../../src/config/index.ts';
import type { SshdInstance } from '../../src/dev/sshd.ts';
import { exportIdempotencyKey } from '../../src/export/index.ts';
import type { ClaimResult, Ledger } from '../../src/ledger/index.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { createTarget, type Target } from '../../src/transport/index.ts';
import type { RossumSimulator } from '../support/rossum-simulator.ts';
import { CapturedLog, repoRoot, testTargetConfig } from '../support/bridge.ts';

export const ROSSUM_USER = 'bridge@example.com';
export const ROSSUM_PASSWORD = 'correct horse battery staple';

/** Three ERPs behind three mappings, one per ack convention, all answering into the sshd's acks/ folder. */
export function ackBridgeConfig(options: {
  sshd: SshdInstance;
  simulator: RossumSimulator;
  ledgerUrl?: string;
  acks?: Record<string, unknown>;
  byMapping?: Record<string, Record<string, unknown>>;
}): BridgeConfig {
  const dir = mkdtempSync(join(tmpdir(), 'rsb-acks-'));
  return bridgeConfigSchema.parse({
    server: { host: '127.0.0.1', port: 0, secret: 'test-hook-secret-0123456789abcdef' },
    ledger: { url: options.ledgerUrl ?? `sqlite:${join(dir, 'ledger.db')}` },
    mappingsDir: join(repoRoot, 'mappings'),
    targets: {
      erp: testTargetConfig(options.sshd),
      'erp-out': testTargetConfig(options.sshd, { url: options.sshd.url('acks') }),
    },
    routes: [
      { mapping: 'erp-companion', target: 'erp', queues: [1] },
      { mapping: 'erp-xml', target: 'erp', queues: [2] },
      { mapping: 'erp-csv', target: 'erp', queues: [3] },
    ],
    rossum: {
      baseUrl: options.simulator.apiUrl,
      username: ROSSUM_USER,
      password: ROSSUM_PASSWORD,
      retry: { attempts: 3, minDelayMs: 10, maxDelayMs: 50 },
    },
    acks: {
      pollIntervalMs: 200,
      minAgeMs: 100,
      targets: { erp: { folder: '.', readFrom: 'erp-out' } },
      delivery: { leaseMs: 2_000, retryMinMs: 50, retryMaxMs: 200 },
      ...options.acks,
      byMapping: {
        'erp-companion': { convention: 'companion', companion: { encoding: 'windows-1252' } },
        'erp-xml': { convention: 'xml', xml: { files: 'ACK_{stem}.xml' } },
        'erp-csv': {
          convention: 'csv',
          csv: { files: 'ack_*.csv', encoding: 'windows-1252', erpReferencePattern: 'Gebucht als (\\d+)' },
        },
        ...options.byMapping,
      },
    },
  });
}

export interface AckHarness {
  acks: RunningAcks;
  config: BridgeConfig;
  log: CapturedLog;
  inbound: Target;
  /** Uploads a file to the ERP inbound folder and records it in the ledger, as `serve` does. */
  exported(options: { annotationId: number; fileName: string; mapping: string; documentRef?: string }): Promise<number>;
  /** Passes until `done` holds (each pass: track, deadlines, look, read, tell Rossum). */
  passUntil(done: () => boolean | Promise<boolean>, maxPasses?: number): Promise<number>;
  close(): Promise<void>;
}

export async function startAckHarness(config: BridgeConfig, options: { loop?: boolean } = {}): Promise<AckHarness> {
  const log = new CapturedLog();
  const logger = createLogger({ level: 'debug', destination: log.stream });
  const acks = await startAcks(config, { logger, loop: options.loop ?? false, holdGraceMs: 200 });
  const inbound = createTarget('erp', config.targets.erp!, { logger });
  return {
    acks,
    config,
    log,
    inbound,
    async exported({ annotationId, fileName, mapping, documentRef }) {
      const bytes = Buffer.from(`<Invoice annotation="${annotationId}"/>\n`);
      return exportThrough(acks.ledger, inbound, {
        annotationId,
        fileName,
        mapping,
        bytes,
        ...(documentRef ? { documentRef } : {}),
      });
    },
    async passUntil(done, maxPasses = 40) {
      for (let pass = 1; pass <= maxPasses; pass++) {
        await acks.pass();
        if (await done()) return pass;
        await new Promise((resolve) => setTimeout(resolve, config.acks.minAgeMs));
      }
      throw new Error(`condition not reached after ${maxPasses} passes`);
    },
    async close() {
      await acks.close();
      await inbound.close();
    },
  };
}

/**
 * A ledger row as `serve` leaves it before the upload is confirmed (claimed, lease held by `owner`): the
 * key is the production key of `content` (default: a small XML naming the annotation), the sha256 and
 * size are the content's.
 */
export async function claimTestExport(
  ledger: Ledger,
  options: {
    annotationId: number;
    fileName: string;
    mapping: string;
    target?: string;
    content?: Buffer;
    owner?: string;
    documentRef?: string;
    rossumBaseUrl?: string;
  },
): Promise<ClaimResult> {
  const target = options.target ?? 'erp';
  const content = options.content ?? testExportContent(options.annotationId);
  const sha256 = createHash('sha256').update(content).digest('hex');
  return ledger.claim({
    idempotencyKey: exportIdempotencyKey(options.annotationId, target, sha256),
    annotationId: options.annotationId,
    requestId: `req-${options.annotationId}`,
    mappingName: options.mapping,
    mappingHash: 'test',
    target,
    plannedPath: options.fileName,
    sha256,
    bytes: content.length,
    owner: options.owner ?? 'test-exporter',
    leaseMs: 60_000,
    documentRef: options.documentRef ?? null,
    ...(options.rossumBaseUrl ? { rossumBaseUrl: options.rossumBaseUrl } : {}),
  });
}

/** The file a test export stands for when the test does not upload it. */
export function testExportContent(annotationId: number): Buffer {
  return Buffer.from(`<Invoice annotation="${annotationId}"/>\n`);
}

/** Confirms a claimed upload as `serve` does once the rename succeeded. */
export async function completeTestExport(
  ledger: Ledger,
  id: number,
  remotePath: string,
  owner = 'test-exporter',
): Promise<void> {
  await ledger.complete(id, owner, { remotePath, reply: { statusCode: 200, body: { messages: [] } } });
}

export async function exportThrough(
  ledger: Ledger,
  target: Target,
  options: { annotationId: number; fileName: string; mapping: string; bytes: Buffer; documentRef?: string },
): Promise<number> {
  const claim = await claimTestExport(ledger, { ...options, target: target.name, content: options.bytes });
  const uploaded = await target.upload({
    relativePath: options.fileName,
    bytes: options.bytes,
    onExisting: 'overwrite',
  });
  await completeTestExport(ledger, claim.record.id, uploaded.remotePath);
  return claim.record.id;
}
