import type { ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { CLI_READY_TIMEOUT_MS, CliProcess, tail } from '../support/fault-serve.ts';

/**
 * A real `rossum-sftp-bridge acks --config PATH` child (same config and ledger as serve), so it can be
 * SIGKILLed mid-batch and restarted. It has no HTTP port: it is ready once it logged that it runs.
 */
export class AcksProcess extends CliProcess {
  private constructor(child: ChildProcess) {
    super(child);
  }

  static async start(options: {
    configPath: string;
    outputPath: string;
    env?: Record<string, string>;
    readyTimeoutMs?: number;
  }): Promise<AcksProcess> {
    const offset = existsSync(options.outputPath) ? statSync(options.outputPath).size : 0;
    const acks = new AcksProcess(CliProcess.spawnCli(['acks', '--config', options.configPath], options));
    const deadline = Date.now() + (options.readyTimeoutMs ?? CLI_READY_TIMEOUT_MS);
    for (;;) {
      if (!acks.running)
        throw new Error(`acks exited during start-up (${JSON.stringify(acks.exitInfo)}):\n${tail(options.outputPath)}`);
      if (readFileSync(options.outputPath).subarray(offset).includes('acks process running')) return acks;
      if (Date.now() > deadline) {
        acks.kill('SIGKILL');
        throw new Error(
          `acks did not start within ${options.readyTimeoutMs ?? CLI_READY_TIMEOUT_MS} ms:\n${tail(options.outputPath)}`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }
}
