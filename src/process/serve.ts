import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { BridgeConfig } from '../config/index.ts';
import { describeError } from '../errors.ts';
import { ExportHold } from '../ack/index.ts';
import { consolePlugin } from '../console/index.ts';
import { BatchSender, ExportService, type RetryResult } from '../export/index.ts';
import { ConsoleActionRefused, consoleLedgerOf, openLedger, type Ledger } from '../ledger/index.ts';
import { loadMappings, type LoadedMapping } from '../mapping/index.ts';
import { type Logger, BridgeMetrics } from '../observability/index.ts';
import { createTarget, type Target } from '../transport/index.ts';
import {
  buildWebhookServer,
  createDeliveryClassifier,
  type ReadinessReport,
  type WebhookServer,
} from '../webhook/index.ts';

export interface BridgeOptions {
  logger: Logger;
  /** Run without checking signatures (explicit opt-in, logged loudly). */
  insecureNoSignature?: boolean;
  /** Expose to mappings' env sources. */
  env?: Record<string, string | undefined>;
  readinessTimeoutMs?: number;
}

export interface RunningBridge {
  url: string;
  port: number;
  ledger: Ledger;
  targets: ReadonlyMap<string, Target>;
  exportService: ExportService;
  metrics: BridgeMetrics;
  /** Graceful: stop accepting, finish and answer in-flight exports, close connections and the ledger. */
  close(): Promise<void>;
}

/** Assembles the `serve` process from a validated config. */
export async function startBridge(config: BridgeConfig, options: BridgeOptions): Promise<RunningBridge> {
  const { logger } = options;
  const secret = config.server.secret ?? null;
  if (secret === null && !options.insecureNoSignature) {
    throw new Error(
      'server.secret is not set: refusing to accept unsigned webhooks. Set it (same as the Rossum hook config.secret), or start with --insecure-no-signature for local experiments only',
    );
  }
  if (secret === null) {
    logger.warn(
      '!!! SIGNATURE CHECKS ARE OFF (--insecure-no-signature): anyone who can reach this port can make the bridge upload files !!!',
    );
  }

  const mappings = loadMappings(config.mappingsDir);
  const mappingFiles: { get(name: string): LoadedMapping | undefined } = mappings;
  const metrics = new BridgeMetrics();
  const targets = new Map<string, Target>();
  for (const [name, targetConfig] of Object.entries(config.targets)) {
    const target = createTarget(name, targetConfig, { logger: logger.child({ target: name }) });
    targets.set(name, target);
    metrics.watchPool(name, () => target.stats());
  }
  const ledger = await openLedger(config.ledger.url);
  const rossum = config.rossum;
  // Batch mappings: a timer sends each batch when it is due (one sender among replicas, by lease).
  const batchSender = mappings.names().some((name) => mappings.get(name)?.batch)
    ? new BatchSender({
        ledger,
        targets,
        mappings,
        logger: logger.child({ component: 'batches' }),
        owner: `${hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`,
        ...(options.env ? { env: options.env } : {}),
      })
    : undefined;
  const exportService = new ExportService({
    ...(batchSender ? { onBatchClosed: () => batchSender.kick() } : {}),
    targets,
    ledger,
    logger,
    metrics,
    // Original documents (`document:` mappings): the webhook's token first, else rossum.token; only to trusted hosts.
    documents: rossum
      ? {
          ...(rossum.baseUrl ? { apiRoot: rossum.baseUrl } : {}),
          ...(rossum.allowedHosts ? { allowedHosts: rossum.allowedHosts } : {}),
          ...(rossum.token ? { token: rossum.token } : {}),
          authScheme: rossum.authScheme,
          timeoutMs: rossum.timeoutMs,
        }
      : {},
  });

  const classify = createDeliveryClassifier({
    mappings,
    routes: config.routes,
    targetNames: new Set(targets.keys()),
    ...(options.env ? { env: options.env } : {}),
    maxJsonDepth: config.server.maxJsonDepth,
  });

  const readinessTimeoutMs = options.readinessTimeoutMs ?? 5000;
  const probe = async (check: () => Promise<void>, name: string): Promise<{ ok: boolean; error?: string }> => {
    try {
      await withTimeout(check(), readinessTimeoutMs, `${name} did not answer within ${readinessTimeoutMs} ms`);
      return { ok: true };
    } catch (error) {
      return { ok: false, error: describeError(error) };
    }
  };
  // Readiness is about this process (its ledger; its config and mappings were loaded to get here): an ERP
  // that is down must not take every pod out of the Service, or Rossum would get the load balancer's error
  // instead of the bridge's 503 naming the target. The targets are reported by /healthz?verbose and bridge_target_up.
  let closing: Promise<void> | undefined;
  const readiness = async (): Promise<ReadinessReport> => {
    const checks: ReadinessReport['checks'] = { ledger: await probe(() => ledger.ping(), 'ledger') };
    if (closing) checks.process = { ok: false, error: 'shutting down' };
    return { ready: Object.values(checks).every((check) => check.ok), checks };
  };
  const checkTargets = async (): Promise<Record<string, { ok: boolean; error?: string }>> => {
    const results = await Promise.all(
      [...targets.values()].map(
        async (target) => [target.name, await probe(() => target.check(), target.name)] as const,
      ),
    );
    for (const [name, result] of results) metrics.targetUp.set({ target: name }, result.ok ? 1 : 0);
    return Object.fromEntries(results);
  };
  metrics.watchTargets(async () => {
    await checkTargets();
  });

  if (heldMappings(config).length > 0 && !config.server.publicUrl && !config.server.trustProxy) {
    logger.warn(
      { heldMappings: heldMappings(config) },
      'held exports answer with a Location built from the unsigned Host header: set server.publicUrl to the URL Rossum calls (or server.trustProxy behind a reverse proxy)',
    );
  }
  const server: WebhookServer = buildWebhookServer({
    exportService,
    signature: { secret, allowLegacySha1: config.server.allowLegacySha1 },
    limits: {
      bodyBytes: config.server.bodyLimitBytes,
      unverifiedBodyBytes: config.server.unverifiedBodyBytes,
      retryAfterS: config.server.retryAfterS,
      headersTimeoutMs: config.server.headersTimeoutMs,
      bodyIdleTimeoutMs: config.server.bodyIdleTimeoutMs,
      requestTimeoutMs: Math.max(config.server.requestTimeoutMs, config.server.headersTimeoutMs),
      keepAliveTimeoutMs: config.server.keepAliveTimeoutMs,
    },
    ...(config.server.publicUrl ? { publicUrl: config.server.publicUrl } : {}),
    trustProxy: config.server.trustProxy,
    classify,
    deadlineMs: config.server.deadlineMs,
    logger,
    metrics,
    readiness,
    healthDetail: async () => ({ targets: await checkTargets() }),
    ...(heldMappings(config).length > 0
      ? {
          hold: new ExportHold({
            ledger,
            acks: config.acks,
            secret: config.server.secret ?? randomBytes(32).toString('hex'),
            logger: logger.child({ component: 'hold' }),
          }),
        }
      : {}),
    ...(config.console.enabled
      ? {
          plugins: [
            {
              prefix: config.console.pathPrefix,
              plugin: consolePlugin({
                config: config.console,
                ledger,
                console: consoleLedgerOf(ledger),
                targets,
                encodingOf: (name) => mappingFiles.get(name)?.source.encoding,
                retryUpload: retryFromConsole(config, ledger, mappingFiles, exportService),
                env: options.env ?? process.env,
                logger: logger.child({ component: 'console' }),
              }),
            },
          ],
        }
      : {}),
  });
  const { url, port } = await server.listen({ host: config.server.host, port: config.server.port });
  logger.info(
    { url, targets: [...targets.values()].map((t) => t.description), mappings: mappings.names(), ledger: ledger.kind },
    'bridge listening',
  );

  // In the background: a target that is down at start-up must not keep the webhook from answering.
  const stopReconciling = new AbortController();
  const reconciling = exportService.reconcileAbandoned({ signal: stopReconciling.signal }).catch((error: unknown) => {
    logger.warn(
      { err: describeError(error) },
      'start-up reconciliation failed; interrupted exports are checked on their next delivery',
    );
  });

  batchSender?.start();

  return {
    url,
    port,
    ledger,
    targets,
    exportService,
    metrics,
    close() {
      closing ??= (async () => {
        stopReconciling.abort();
        await server.close();
        await reconciling;
        await exportService.idle();
        await batchSender?.stop();
        await Promise.allSettled([...targets.values()].map((target) => target.close()));
        await ledger.close();
      })();
      return closing;
    },
  };
}

function heldMappings(config: BridgeConfig): string[] {
  return Object.entries(config.acks.byMapping)
    .filter(([, mapping]) => mapping.hold?.enabled)
    .map(([name]) => name);
}

function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(message)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** The console's "Retry upload": the kept bytes under the mapping's name policy, unless the target needs hook credentials. */
function retryFromConsole(
  config: BridgeConfig,
  ledger: Ledger,
  mappingFiles: { get(name: string): LoadedMapping | undefined },
  exportService: ExportService,
): (exportId: number, actor: string) => Promise<RetryResult> {
  return async (exportId, actor) => {
    const record = await ledger.get(exportId);
    const mapping = record ? mappingFiles.get(record.mappingName) : undefined;
    if (record && !mapping)
      throw new ConsoleActionRefused(
        'conflict',
        `Mapping "${record.mappingName}" is not loaded any more: its on-existing policy for the upload is unknown`,
      );
    const targetConfig = record ? config.targets[record.target] : undefined;
    if (targetConfig && 'credentials' in targetConfig && targetConfig.credentials === 'hookSecrets')
      throw new ConsoleActionRefused(
        'conflict',
        `Target "${record?.target}" logs in with the credentials Rossum sends in each hook call, which the bridge never stores; Rossum's next delivery retries the upload`,
      );
    return exportService.retryKept(
      { exportId, actor, onExisting: mapping?.onExisting ?? 'fail' },
      consoleLedgerOf(ledger),
    );
  };
}
