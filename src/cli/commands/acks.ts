import { setFlagsFromString } from 'node:v8';
import { type Command, InvalidArgumentError } from 'commander';
import { startAcks } from '../../process/index.ts';
import { configPath, loadConfig } from '../../config/index.ts';
import { createLogger } from '../../observability/index.ts';
import { stopOnSignals } from './serve.ts';

export function register(program: Command): void {
  program
    .command('acks')
    .description(
      'Read the ERP acknowledgements back (same config and ledger as serve), flag failures in Rossum; runs until SIGTERM',
    )
    .option('-c, --config <path>', 'config file (default: $BRIDGE_CONFIG or ./bridge.yaml)')
    .option('--once', 'one pass (track uploads, flag deadlines, read every complete ack, tell Rossum), then exit')
    .option(
      '--metrics-port <port>',
      'alias of acks.listen.port in the config (overrides it): one port serves GET /metrics, /healthz and /readyz',
      parsePort,
    )
    .option('--metrics-host <host>', 'alias of acks.listen.host (with --metrics-port)', '127.0.0.1')
    .action(async (options: { config?: string; once?: boolean; metricsPort?: number; metricsHost: string }) => {
      // On a host with plenty of RAM V8 lets the heap grow to about 4× what is live between full
      // collections; the ack loop's short-lived garbage (SFTP packets, HTTP calls, ledger rows) then
      // takes the process far past what it needs. 1.75× keeps it near its live size for a little more GC.
      if (
        !process.execArgv.some(
          (arg) => arg.startsWith('--heap-growing-percent') || arg.startsWith('--heap_growing_percent'),
        )
      )
        setFlagsFromString('--heap-growing-percent=75');
      const { config } = loadConfig(configPath(options.config));
      const logger = createLogger({ level: config.logLevel });
      const listen =
        options.metricsPort === undefined || options.once
          ? undefined
          : { host: options.metricsHost, port: options.metricsPort };
      if (listen && config.acks.listen)
        logger.warn(
          { flag: listen, config: config.acks.listen },
          '--metrics-port and acks.listen both set: the flag wins (they name the same, single server; keep one)',
        );
      const running = await startAcks(config, { logger, loop: !options.once, ...(listen ? { listen } : {}) });
      if (options.once) {
        // One look only records sizes; the second look reads the files that stayed the same.
        const lookStarted = performance.now();
        await running.pass();
        const firstLookMs = performance.now() - lookStarted;
        await new Promise((resolve) => setTimeout(resolve, config.acks.minAgeMs));
        const passStarted = performance.now();
        const cpuBefore = process.cpuUsage();
        const report = await running.pass();
        const passMs = performance.now() - passStarted;
        const cpu = process.cpuUsage(cpuBefore);
        await running.close();
        // The summary is the command's result (cron jobs log it), so it is written whatever the log level.
        logger.child({}, { level: 'info' }).info(
          {
            ...report,
            firstLookMs: Math.round(firstLookMs),
            passMs: Math.round(passMs),
            passCpuMs: Math.round((cpu.user + cpu.system) / 1000),
            peakRssMb: Math.round(process.resourceUsage().maxRSS / 1024),
          },
          'acks pass done',
        );
        // Like serve after a graceful stop: everything is closed, so leftover timers must not keep the process alive.
        process.exit(0);
      }
      stopOnSignals(running, logger);
      // SIGHUP: re-read the config for new Rossum credentials (a fresh token) without a restart.
      process.on('SIGHUP', () => {
        try {
          const fresh = loadConfig(configPath(options.config)).config;
          if (!fresh.rossum) throw new Error('the config has no `rossum` section');
          void running
            .reloadRossum(fresh.rossum)
            .catch((error: unknown) =>
              logger.error({ err: String(error) }, 'could not apply the reloaded Rossum settings'),
            );
        } catch (error) {
          logger.error(
            { err: error instanceof Error ? error.message : String(error) },
            'SIGHUP: config not reloaded (the old Rossum settings stay)',
          );
        }
      });
    });
}

function parsePort(value: string): number {
  const port = Number(value);
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new InvalidArgumentError(`"${value}" is not a TCP port (0-65535)`);
  return port;
}
