import cluster from 'node:cluster';
import type { Command } from 'commander';
import { startBridge, type RunningBridge } from '../../process/index.ts';
import { configPath, loadConfig } from '../../config/index.ts';
import { createLogger, type Logger } from '../../observability/index.ts';

export function register(program: Command): void {
  program
    .command('serve')
    .description('Run the export webhook (POST /webhooks/rossum), with /healthz, /readyz and /metrics')
    .option('-c, --config <path>', 'config file (default: $BRIDGE_CONFIG or ./bridge.yaml)')
    .option('-p, --port <port>', 'override server.port', (value) => Number.parseInt(value, 10))
    .option('-w, --workers <count>', 'override server.workers (processes sharing the port and the ledger)', (value) =>
      Number.parseInt(value, 10),
    )
    .option('--insecure-no-signature', 'accept unsigned webhooks (local experiments only; logged loudly)')
    .action(async (options: { config?: string; port?: number; workers?: number; insecureNoSignature?: boolean }) => {
      const { config } = loadConfig(configPath(options.config));
      if (options.port !== undefined) config.server.port = options.port;
      const workers = options.workers ?? config.server.workers;
      const logger = createLogger({ level: config.logLevel });
      if (workers > 1 && cluster.isPrimary) {
        superviseWorkers(workers, logger);
        return;
      }
      const bridge = await startBridge(config, { logger, insecureNoSignature: options.insecureNoSignature ?? false });
      stopOnSignals(bridge, logger);
    });
}

/**
 * Several worker processes share the listening socket (node:cluster) and the ledger, whose claims
 * decide who uploads across processes as they do across replicas. A worker that dies is replaced;
 * SIGTERM is passed on, and the primary exits 0 once every worker has finished its exports.
 */
function superviseWorkers(count: number, logger: Logger): void {
  let stopping = false;
  for (let i = 0; i < count; i++) cluster.fork();
  cluster.on('exit', (worker, code, signal) => {
    if (stopping) {
      if (Object.keys(cluster.workers ?? {}).length === 0) process.exit(0);
      return;
    }
    logger.error({ worker: worker.process.pid, code, signal }, 'worker died; starting a new one');
    cluster.fork();
  });
  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal, workers: count }, 'stopping workers: each finishes its exports in flight');
    for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill('SIGTERM');
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

/** SIGTERM/SIGINT: finish and answer what is in flight, close connections, exit 0. */
export function stopOnSignals(
  bridge: Pick<RunningBridge, 'close'>,
  logger: Logger,
  extra: () => Promise<void> = async () => {},
): void {
  let stopping = false;
  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'stopping: finishing exports in flight');
    Promise.all([bridge.close(), extra()])
      .then(() => {
        logger.info('stopped cleanly');
        logger.flush?.();
        process.exit(0);
      })
      .catch((error: unknown) => {
        logger.error({ err: String(error) }, 'error while stopping');
        process.exit(1);
      });
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}
