import type { Command } from 'commander';
import { configPath, loadConfig } from '../../config/index.ts';
import { formatReport, runDoctor } from '../../doctor/index.ts';

export function register(program: Command): void {
  program
    .command('doctor')
    .description(
      'Check everything the bridge depends on: each target (TCP, host key, login, write + rename + delete in the target and ack folders, free space), the ledger, the Rossum API and hook, the mappings; ✓/✗ per line with the fix, exit code 1 when anything failed',
    )
    .option('-c, --config <path>', 'config file (default: $BRIDGE_CONFIG or ./bridge.yaml)')
    .option('--json', 'print the checks as JSON')
    .action(async (options: { config?: string; json?: boolean }) => {
      const { config } = loadConfig(configPath(options.config));
      const report = await runDoctor(config);
      process.stdout.write(options.json ? `${JSON.stringify(report, null, 2)}\n` : formatReport(report));
      if (!report.ok) process.exitCode = 1;
    });
}
