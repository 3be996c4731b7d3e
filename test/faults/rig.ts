import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { repoRoot } from '../support/bridge.ts';
import { ServeProcess, tail, type ExitInfo } from '../support/fault-serve.ts';
import { RossumSimulator } from '../support/rossum-simulator.ts';
import { ensurePasswordUser, freePort, startSshd, type PasswordUser, type SshdInstance } from '../support/sshd.ts';
import { TcpProxy } from '../support/tcp-proxy.ts';
import { AcksProcess } from './acks-child.ts';
import { SCAN_QUEUE } from './documents.ts';
import { WEBHOOK_DEADLINE_MS } from './schedule.ts';

/**
 * The set-up the fault stream runs against, the way an operator runs the bridge: a real sshd (password
 * login, reached through a TCP proxy that can stall), the simulated Rossum, and two real child processes
 * with one config and one ledger — `serve`, and `acks` next to it. A supervisor restarts the acks process
 * when it exits unasked and counts that as a crash.
 */

export const HOOK_SECRET = 'fault-suite-hook-secret-3e9b1c7d5a';
/** Rossum gives up on a webhook call after this long. */
export const ROSSUM_TIMEOUT_S = 8;
/** Rossum's side of a webhook call: retry policy and polling, as the simulator plays it. */
export const HOOK_TIMINGS = { retryDelayS: 0.7, pollIntervalS: 0.05, timeoutS: ROSSUM_TIMEOUT_S } as const;

export class FaultRig {
  /** Rigs not closed yet: a failed or timed-out run must not leave sshd, serve and acks running on a shared machine. */
  private static readonly open = new Set<FaultRig>();
  serve!: ServeProcess;
  acks!: AcksProcess;
  /** Exits of the acks process nobody asked for (each restarted, as a supervisor would). */
  readonly acksCrashes: string[] = [];
  readonly ledgerPath: string;
  readonly outputPath: string;
  readonly acksOutputPath: string;
  readonly configPath: string;
  private acksExpectedDown = false;
  private supervising = true;
  private supervisor: Promise<void> = Promise.resolve();

  private constructor(
    readonly dir: string,
    readonly sshd: SshdInstance,
    readonly proxy: TcpProxy,
    readonly simulator: RossumSimulator,
    readonly port: number,
    readonly passwordUser: PasswordUser,
    readonly rossumPassword: string,
    private readonly started: number,
    private readonly log: (line: string) => void,
  ) {
    this.ledgerPath = join(dir, 'data', 'ledger.db');
    this.outputPath = join(dir, 'serve.out');
    this.acksOutputPath = join(dir, 'acks.out');
    this.configPath = join(dir, 'bridge.yaml');
  }

  static async start(options: {
    ackDeadlineMs: number;
    started: number;
    log: (line: string) => void;
  }): Promise<FaultRig> {
    const dir = mkdtempSync(join(tmpdir(), 'rsb-faults-'));
    const passwordUser = await ensurePasswordUser();
    const sshd = await startSshd({ baseDir: mkdtempSync(join(tmpdir(), 'rsb-faults-sshd-')), passwordUser });
    const proxy = await TcpProxy.start(sshd.port);
    const simulator = await RossumSimulator.start();
    const port = await freePort();
    const [rossumUser, rossumPassword] = Object.entries(simulator.users)[0]!;
    const rig = new FaultRig(
      dir,
      sshd,
      proxy,
      simulator,
      port,
      passwordUser,
      rossumPassword,
      options.started,
      options.log,
    );
    FaultRig.open.add(rig);
    try {
      rig.writeConfig(rossumUser, options.ackDeadlineMs);
      await rig.startServe();
      rig.acks = await rig.startAcks();
    } catch (error) {
      await rig.abort();
      throw error;
    }
    rig.supervisor = rig.supervise();
    return rig;
  }

  /** Kills whatever a run left behind (its own processes only): for `afterAll`, after a failure or a timeout. */
  static async abortAll(): Promise<void> {
    await Promise.all([...FaultRig.open].map((rig) => rig.abort()));
  }

  get webhookUrl(): string {
    return `http://127.0.0.1:${this.port}/webhooks/rossum`;
  }

  /** Starts a new `serve` (after a kill or a stop) and makes it the current one. */
  async startServe(): Promise<ServeProcess> {
    this.serve = await ServeProcess.start({
      configPath: this.configPath,
      port: this.port,
      outputPath: this.outputPath,
      env: this.env,
    });
    return this.serve;
  }

  /** Kills the acks process on purpose (the supervisor does not count it) and waits for its exit. */
  async killAcks(signal: NodeJS.Signals): Promise<ExitInfo> {
    this.acksExpectedDown = true;
    this.acks.kill(signal);
    return this.acks.exited;
  }

  /** Starts the acks process again after `killAcks`. */
  async restartAcks(): Promise<void> {
    this.acks = await this.startAcks();
    this.acksExpectedDown = false;
  }

  /** Ends supervision and stops the acks process with SIGTERM, as an operator would. */
  async stopAcks(): Promise<ExitInfo> {
    this.acksExpectedDown = true;
    this.supervising = false;
    await this.supervisor;
    return this.acks.stop();
  }

  async close(): Promise<void> {
    FaultRig.open.delete(this);
    await this.serve.stop();
    await this.simulator.close();
    await this.proxy.close();
    await this.sshd.stop();
  }

  /** Ends the run at once: SIGKILL to both processes, everything else closed. */
  async abort(): Promise<void> {
    FaultRig.open.delete(this);
    this.supervising = false;
    this.acksExpectedDown = true;
    for (const child of [this.serve, this.acks]) child?.kill('SIGKILL');
    await Promise.all([this.serve?.exited, this.acks?.exited]);
    await this.simulator.close().catch(() => undefined);
    await this.proxy.close().catch(() => undefined);
    await this.sshd.stop();
  }

  private get env(): Record<string, string> {
    return {
      FAULT_HOOK_SECRET: HOOK_SECRET,
      FAULT_SFTP_PASSWORD: this.passwordUser.password,
      FAULT_ROSSUM_PASSWORD: this.rossumPassword,
    };
  }

  private startAcks(): Promise<AcksProcess> {
    return AcksProcess.start({ configPath: this.configPath, outputPath: this.acksOutputPath, env: this.env });
  }

  private async supervise(): Promise<void> {
    while (this.supervising) {
      if (!this.acks.running && !this.acksExpectedDown) {
        const exit = await this.acks.exited;
        this.acksCrashes.push(
          `${((Date.now() - this.started) / 1000).toFixed(1)} s: ${JSON.stringify(exit)}\n${tail(this.acksOutputPath, 12)}`,
        );
        this.log(`acks process crashed ${JSON.stringify(exit)}; starting it again`);
        this.acks = await this.startAcks();
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  /**
   * generic-xml, and generic-xml-scan: the same data file with the original PDF put in place first
   * (small PDFs held whole, larger ones streamed: buffer_bytes below the largest planned PDF).
   */
  private writeMappings(): string {
    const dir = join(this.dir, 'mappings');
    mkdirSync(dir);
    const shipped = readFileSync(join(repoRoot, 'mappings/generic-xml.yaml'), 'utf8');
    const base = shipped.slice(0, shipped.indexOf('\ntests:'));
    writeFileSync(join(dir, 'generic-xml.yaml'), base);
    writeFileSync(
      join(dir, 'generic-xml-scan.yaml'),
      `${base}\ndocument:\n  required: true\n  max_bytes: 5000000\n  buffer_bytes: 100000\n`,
    );
    return dir;
  }

  /** One config for both processes; secrets only as `${VAR}` references. */
  private writeConfig(rossumUser: string, ackDeadlineMs: number): void {
    const sftp = (folder: string): Record<string, unknown> => ({
      url: `sftp://${this.passwordUser.username}@127.0.0.1:${this.proxy.port}/~/${folder}`,
      hostKey: this.sshd.hostKeyFingerprint,
      password: '${FAULT_SFTP_PASSWORD}',
      pool: { size: 4, connectTimeoutMs: 1_500, operationTimeoutMs: 2_000, checkIdleAfterMs: 300, keepaliveMs: 1_000 },
      retry: { attempts: 2, minDelayMs: 100, maxDelayMs: 300 },
    });
    const config = {
      server: { host: '127.0.0.1', port: this.port, secret: '${FAULT_HOOK_SECRET}', deadlineMs: WEBHOOK_DEADLINE_MS },
      ledger: { url: `sqlite:${this.ledgerPath}` },
      mappingsDir: this.writeMappings(),
      logLevel: 'info',
      targets: { erp: sftp('inbound'), 'erp-out': sftp('acks') },
      routes: [
        { mapping: 'generic-xml-scan', target: 'erp', queues: [SCAN_QUEUE] },
        { mapping: 'generic-xml', target: 'erp' },
      ],
      rossum: {
        baseUrl: this.simulator.apiUrl,
        username: rossumUser,
        password: '${FAULT_ROSSUM_PASSWORD}',
        timeoutMs: 5_000,
        retry: { attempts: 3, minDelayMs: 50, maxDelayMs: 300 },
      },
      acks: {
        pollIntervalMs: 300,
        minAgeMs: 400,
        concurrency: 4,
        targets: { erp: { folder: '.', readFrom: 'erp-out' } },
        delivery: { leaseMs: 1_500, retryMinMs: 200, retryMaxMs: 1_000 },
        // No `hold`: the webhook answers as usual and the ack loop alone tells Rossum.
        byMapping: Object.fromEntries(
          ['generic-xml', 'generic-xml-scan'].map((mapping) => [
            mapping,
            { convention: 'companion', deadlineMs: ackDeadlineMs, companion: { encoding: 'windows-1252' } },
          ]),
        ),
      },
    };
    writeFileSync(this.configPath, stringify(config), { mode: 0o600 });
  }
}
