import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { repoRoot } from './bridge.ts';
import { cliEntry } from './cli-entry.ts';

/**
 * A real `rossum-sftp-bridge serve` child process: what an operator runs, so it can be SIGKILLed,
 * SIGTERMed and restarted, and everything it writes (stdout + stderr) lands in one file to grep.
 */

export interface ServeConfig {
  port: number;
  secret: string;
  ledgerPath: string;
  /** Target `erp`: merged over nothing, written as given (use `${ENV}` references for secrets). */
  target: Record<string, unknown>;
  server?: Record<string, unknown>;
  mapping?: string;
  logLevel?: string;
}

/** Writes a bridge.yaml the way an operator would and returns its path. */
export function writeServeConfig(dir: string, config: ServeConfig): string {
  const document = {
    server: { host: '127.0.0.1', port: config.port, secret: config.secret, ...config.server },
    ledger: { url: `sqlite:${config.ledgerPath}` },
    mappingsDir: join(repoRoot, 'mappings'),
    logLevel: config.logLevel ?? 'info',
    targets: { erp: config.target },
    routes: [{ mapping: config.mapping ?? 'generic-xml', target: 'erp' }],
  };
  const path = join(dir, 'bridge.yaml');
  writeFileSync(path, stringify(document), { mode: 0o600 });
  return path;
}

/** Start-up compiles the TypeScript sources (tsx): on two cores shared with other test runs that took over 30 s. */
export const CLI_READY_TIMEOUT_MS = 90_000;

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/**
 * A CLI child process whose output is appended to one file: what an operator runs, so tests can
 * SIGKILL, SIGTERM and restart it.
 */
export class CliProcess {
  readonly exited: Promise<ExitInfo>;
  protected exitInfo: ExitInfo | undefined;

  protected constructor(readonly child: ChildProcess) {
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.exitInfo = { code, signal };
        resolve(this.exitInfo);
      });
    });
  }

  /** Spawns `node bin/rossum-sftp-bridge ARGS`, stdout and stderr appended to `outputPath`. */
  protected static spawnCli(
    args: string[],
    options: { outputPath: string; env?: Record<string, string> },
  ): ChildProcess {
    const fd = openSync(options.outputPath, 'a');
    try {
      return spawn(process.execPath, [cliEntry(), ...args], {
        cwd: repoRoot,
        env: { ...process.env, ...options.env },
        stdio: ['ignore', fd, fd],
      });
    } finally {
      closeSync(fd);
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

export class ServeProcess extends CliProcess {
  private constructor(
    child: ChildProcess,
    readonly baseUrl: string,
  ) {
    super(child);
  }

  /** Spawns `node bin/rossum-sftp-bridge serve --config PATH`, appending its output to `outputPath`. */
  static async start(options: {
    configPath: string;
    port: number;
    outputPath: string;
    env?: Record<string, string>;
    readyTimeoutMs?: number;
    args?: string[];
  }): Promise<ServeProcess> {
    const child = CliProcess.spawnCli(['serve', '--config', options.configPath, ...(options.args ?? [])], options);
    const serve = new ServeProcess(child, `http://127.0.0.1:${options.port}`);
    await serve.waitHealthy(options.readyTimeoutMs ?? CLI_READY_TIMEOUT_MS, options.outputPath);
    return serve;
  }

  get url(): string {
    return `${this.baseUrl}/webhooks/rossum`;
  }

  private async waitHealthy(timeoutMs: number, outputPath: string): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (!this.running)
        throw new Error(`serve exited during start-up (${JSON.stringify(this.exitInfo)}):\n${tail(outputPath)}`);
      try {
        const response = await fetch(`${this.baseUrl}/healthz`, { signal: AbortSignal.timeout(1_000) });
        if (response.ok) return;
      } catch {
        // Not listening yet.
      }
      if (Date.now() > deadline) {
        this.kill('SIGKILL');
        throw new Error(`serve did not answer /healthz within ${timeoutMs} ms:\n${tail(outputPath)}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
}

export function tail(path: string, lines = 30): string {
  return existsSync(path) ? readFileSync(path, 'utf8').trimEnd().split('\n').slice(-lines).join('\n') : '(no output)';
}

/** Runs the CLI to completion (for `check`, `serve` with a broken config, ...). */
export function runCli(
  args: string[],
  options: { env?: Record<string, string>; timeoutMs?: number; cwd?: string } = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cliEntry(), ...args], {
      cwd: options.cwd ?? repoRoot,
      env: { ...process.env, ...options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 30_000);
    child.once('error', reject);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}
