import type { Command } from 'commander';
import { startAcks } from '../../ack/index.ts';
import { configPath, loadConfig } from '../../config/index.ts';
import { createLogger } from '../../observability/logger.ts';
import { stopOnSignals } from './serve.ts';

export function register(program: Command): void {
  program
    .command('acks')
    .description('Read the ERP acknowledgements back (same config and ledger as serve), flag failures in Rossum; runs until SIGTERM')
    .option('-c, --config <path>', 'config file (default: $BRIDGE_CONFIG or ./bridge.yaml)')
    .option('--once', 'one pass (track uploads, flag deadlines, read every complete ack, tell Rossum), then exit')
    .action(async (options: { config?: string; once?: boolean }) => {
      const { config } = loadConfig(configPath(options.config));
      const logger = createLogger({ level: config.logLevel });
      const running = await startAcks(config, { logger, loop: !options.once });
      if (options.once) {
        // One look only records sizes; the second look reads the files that stayed the same.
        await running.pass();
        await new Promise((resolve) => setTimeout(resolve, config.acks.minAgeMs));
        const report = await running.pass();
        logger.info(report, 'acks pass done');
        await running.close();
        return;
      }
      stopOnSignals(running, logger);
    });
}
