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
        const lookStarted = performance.now();
        await running.pass();
        const firstLookMs = performance.now() - lookStarted;
        await new Promise((resolve) => setTimeout(resolve, config.acks.minAgeMs));
        const passStarted = performance.now();
        const report = await running.pass();
        const passMs = performance.now() - passStarted;
        await running.close();
        // The summary is the command's result (cron jobs log it), so it is written whatever the log level.
        logger.child({}, { level: 'info' }).info(
          { ...report, firstLookMs: Math.round(firstLookMs), passMs: Math.round(passMs), peakRssMb: Math.round(process.resourceUsage().maxRSS / 1024) },
          'acks pass done',
        );
        // Like serve after a graceful stop: everything is closed, so leftover timers must not keep the process alive.
        process.exit(0);
      }
      stopOnSignals(running, logger);
    });
}
