import type { BridgeConfig } from '../config/index.ts';
import { AckService, type PassReport } from '../ack/index.ts';
import { openLedger, type Ledger } from '../ledger/index.ts';
import { type Logger, BridgeMetrics, startOpsServer, type OpsServer } from '../observability/index.ts';
import { DEFAULT_ALLOWED_HOSTS } from '../rossum/index.ts';
import { createTarget, type Target } from '../transport/index.ts';

export interface RunningAcks {
  service: AckService;
  ledger: Ledger;
  metrics: BridgeMetrics;
  /** The one HTTP server (`/metrics`, `/healthz`, `/readyz`) when `acks.listen` (or `options.listen`) is set. */
  health: OpsServer | undefined;
  pass(): Promise<PassReport>;
  /** New Rossum settings (SIGHUP with a re-read config): outcomes waiting for credentials go at once. */
  reloadRossum(rossum: NonNullable<BridgeConfig['rossum']>): Promise<void>;
  /** Graceful: finishes files in progress, then closes connections and the ledger. */
  close(): Promise<void>;
}

/** Assembles the `acks` process from the same config (and ledger) as `serve`. */
export async function startAcks(
  config: BridgeConfig,
  options: {
    logger: Logger;
    loop?: boolean;
    holdGraceMs?: number;
    /** Overrides `acks.listen` (the CLI's `--metrics-port`/`--metrics-host`). */
    listen?: { host: string; port: number };
  },
): Promise<RunningAcks> {
  const { logger } = options;
  if (!config.rossum)
    throw new Error(
      'the acks process needs `rossum` (API URL and token or username/password) in the config to tell Rossum about ERP answers',
    );
  if (Object.keys(config.acks.targets).length === 0)
    throw new Error('no ack folders configured: add `acks.targets.<target>: { folder: ... }`');
  for (const [name, source] of Object.entries(config.acks.targets)) {
    if (!config.targets[name]) throw new Error(`acks.targets.${name}: no target "${name}" under targets`);
    if (source.readFrom && !config.targets[source.readFrom])
      throw new Error(`acks.targets.${name}.readFrom: no target "${source.readFrom}" under targets`);
  }
  const needed = new Set(Object.entries(config.acks.targets).map(([name, source]) => source.readFrom ?? name));
  const metrics = new BridgeMetrics();
  const targets = new Map<string, Target>();
  for (const name of needed) {
    const target = createTarget(name, config.targets[name] as NonNullable<BridgeConfig['targets'][string]>, {
      logger: logger.child({ target: name }),
    });
    targets.set(name, target);
    metrics.watchPool(name, () => target.stats());
  }
  const ledger = await openLedger(config.ledger.url);
  metrics.watchOutcomeBacklog(() => ledger.outcomeBacklog());
  const service = new AckService({
    acks: config.acks,
    rossum: config.rossum,
    targets,
    targetConfigs: config.targets,
    routes: config.routes,
    ledger,
    logger: logger.child({ component: 'acks' }),
    metrics,
    ...(options.holdGraceMs !== undefined ? { holdGraceMs: options.holdGraceMs } : {}),
  });
  // At start-up, not at the first ERP verdict: a refused token is logged with its fix and shown by /readyz.
  // Not awaited: an unreachable Rossum must not hold the ack folders back (outcomes wait in the ledger).
  const credentialsChecked = service.checkRossum();
  const listen = options.listen ?? config.acks.listen;
  const health = listen
    ? await startOpsServer({
        host: listen.host,
        port: listen.port,
        metrics,
        readiness: async () => {
          await ledger.ping();
          return service.readiness();
        },
      })
    : undefined;
  if (health) logger.info({ url: health.url }, 'acks HTTP endpoints: /metrics, /healthz, /readyz');
  if (options.loop ?? true) service.start();
  logger.info(
    { sources: Object.keys(config.acks.targets), mappings: Object.keys(config.acks.byMapping), ledger: ledger.kind },
    'acks process running',
  );
  if (config.rossum.baseUrl === undefined) {
    logger.info(
      { allowedHosts: config.rossum.allowedHosts ?? DEFAULT_ALLOWED_HOSTS },
      "no rossum.baseUrl: each export's payload base_url is used, and credentials go only to these hosts",
    );
  }
  let closing: Promise<void> | undefined;
  return {
    service,
    ledger,
    metrics,
    health,
    pass: () => service.pass(),
    reloadRossum: (rossum) => service.reloadRossum(rossum),
    close() {
      closing ??= (async () => {
        // One drain time for everything: a connection hung mid-operation must not keep the process past it.
        const deadlineAt = Date.now() + config.acks.drainMs;
        await service.stop(deadlineAt);
        await health?.close();
        // Only waited for briefly: a check stuck on an unreachable Rossum must not hold the stop.
        await Promise.race([credentialsChecked, new Promise((resolve) => setTimeout(resolve, 100).unref())]);
        let timer: NodeJS.Timeout | undefined;
        const closed = await Promise.race([
          Promise.allSettled([...targets.values()].map((target) => target.close())).then(() => true),
          new Promise<false>((resolve) => {
            timer = setTimeout(() => resolve(false), Math.max(0, deadlineAt - Date.now()));
          }),
        ]);
        clearTimeout(timer);
        if (!closed)
          logger.warn(
            { drainMs: config.acks.drainMs },
            'ack folder connections still busy after the drain time; leaving them',
          );
        await ledger.close();
      })();
      return closing;
    },
  };
}
