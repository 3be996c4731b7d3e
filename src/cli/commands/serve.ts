import type { Command } from 'commander';
import { startBridge, type RunningBridge } from '../../app.ts';
import { configPath, loadConfig } from '../../config/index.ts';
import { createLogger, type Logger } from '../../observability/logger.ts';

export function register(program: Command): void {
  program
    .command('serve')
    .description('Run the export webhook (POST /webhooks/rossum), with /healthz, /readyz and /metrics')
    .option('-c, --config <path>', 'config file (default: $BRIDGE_CONFIG or ./bridge.yaml)')
    .option('-p, --port <port>', 'override server.port', (value) => Number.parseInt(value, 10))
    .option('--insecure-no-signature', 'accept unsigned webhooks (local experiments only; logged loudly)')
    .action(async (options: { config?: string; port?: number; insecureNoSignature?: boolean }) => {
      const { config } = loadConfig(configPath(options.config));
      if (options.port !== undefined) config.server.port = options.port;
      const logger = createLogger({ level: config.logLevel });
      const bridge = await startBridge(config, { logger, insecureNoSignature: options.insecureNoSignature ?? false });
      stopOnSignals(bridge, logger);
    });
}

/** SIGTERM/SIGINT: finish and answer what is in flight, close connections, exit 0. */
export function stopOnSignals(bridge: Pick<RunningBridge, 'close'>, logger: Logger, extra: () => Promise<void> = async () => {}): void {
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
