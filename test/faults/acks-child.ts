import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from '../support/bridge.ts';
import { tail, type ExitInfo } from '../support/fault-serve.ts';

/**
 * A real `rossum-sftp-bridge acks --config PATH` child (same config and ledger as serve), so it can be
 * SIGKILLed mid-batch and restarted. It has no HTTP port: it is ready once it logged that it runs.
 */
export class AcksProcess {
  readonly exited: Promise<ExitInfo>;
  private exitInfo: ExitInfo | undefined;

  private constructor(readonly child: ChildProcess) {
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.exitInfo = { code, signal };
        resolve(this.exitInfo);
      });
    });
  }

  static async start(options: { configPath: string; outputPath: string; env?: Record<string, string>; readyTimeoutMs?: number }): Promise<AcksProcess> {
    const offset = existsSync(options.outputPath) ? statSync(options.outputPath).size : 0;
    const fd = openSync(options.outputPath, 'a');
    let child: ChildProcess;
    try {
      child = spawn(process.execPath, [join(repoRoot, 'bin/rossum-sftp-bridge'), 'acks', '--config', options.configPath], {
        cwd: repoRoot,
        env: { ...process.env, ...options.env },
        stdio: ['ignore', fd, fd],
      });
    } finally {
      closeSync(fd);
    }
    const acks = new AcksProcess(child);
    const deadline = Date.now() + (options.readyTimeoutMs ?? 30_000);
    for (;;) {
      if (!acks.running) throw new Error(`acks exited during start-up (${JSON.stringify(acks.exitInfo)}):\n${tail(options.outputPath)}`);
      if (readFileSync(options.outputPath).subarray(offset).includes('acks process running')) return acks;
      if (Date.now() > deadline) {
        acks.kill('SIGKILL');
        throw new Error(`acks did not start within ${options.readyTimeoutMs ?? 30_000} ms:\n${tail(options.outputPath)}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  get pid(): number {
    return this.child.pid as number;
  }

  get running(): boolean {
    return this.exitInfo === undefined;
  }

  kill(signal: NodeJS.Signals): void {
    if (this.running) this.child.kill(signal);
  }

  /** SIGTERM, then SIGKILL if it has not exited after `graceMs` (then the exit shows the signal). */
  async stop(graceMs = 15_000): Promise<ExitInfo> {
    if (!this.running) return this.exitInfo as ExitInfo;
    this.kill('SIGTERM');
    const timer = setTimeout(() => this.kill('SIGKILL'), graceMs);
    try {
      return await this.exited;
    } finally {
      clearTimeout(timer);
    }
  }
}
