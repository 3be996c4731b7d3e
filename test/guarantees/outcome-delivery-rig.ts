import { createHash } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { acksConfigSchema, type AcksConfig } from '../../src/ack/config.ts';
import { OutcomeDelivery } from '../../src/ack/outcome-delivery.ts';
import { type AckMessage, type AckOutcome, type AckVerdict, SqliteLedger } from '../../src/ledger/index.ts';
import { BridgeMetrics } from '../../src/observability/index.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { type RossumApiConfig, rossumApiConfigSchema } from '../../src/rossum/index.ts';
import { claimTestExport, completeTestExport, ROSSUM_PASSWORD, ROSSUM_USER } from '../ack/harness.ts';
import { CapturedLog } from '../support/bridge.ts';
import { RossumSimulator } from '../support/rossum-simulator.ts';

/**
 * One outbox (`OutcomeDelivery`) on a real SQLite ledger, telling the simulated Rossum over HTTP, on a clock
 * the test moves: no sleeps, and every wait (backoff, lease, credentials, hold) is an exact number.
 */

export const T0 = Date.parse('2030-01-01T00:00:00.000Z');
export const LEASE_MS = 60_000;
export const RETRY_MIN_MS = 1_000;
export const RETRY_MAX_MS = 16_000;
export const EXPORTING_WAIT_MS = 600_000;
export const OWNER = 'outbox-a';
export const signature = (outcomeId: number): string => `[rossum-sftp-bridge ack outcome ${outcomeId}]`;

type Hook = {
  method: string;
  failed: boolean;
  when: (result: unknown) => boolean;
  run: (result: unknown) => unknown;
};

export interface Rig {
  clock: { now: number };
  /** The ledger itself (what the test, or another process, does; not recorded, no hooks). */
  ledger: SqliteLedger;
  /** Names of the ledger methods the outbox called, in order. */
  ledgerCalls: string[];
  simulator: RossumSimulator;
  metrics: BridgeMetrics | undefined;
  log: CapturedLog;
  config: AcksConfig;
  delivery: OutcomeDelivery;
  /** Runs `run` once, right after the first call of `method` whose result `when` accepts (default: any). */
  after(method: string, run: (result: unknown) => unknown, when?: (result: unknown) => boolean): void;
  /** Runs `run` once, right after the first call of `method` that throws (the error goes on to the outbox). */
  afterFailed(method: string, run: (error: unknown) => unknown): void;
  /** Another acks process's outbox on the same ledger, Rossum and clock. */
  outbox(owner: string): OutcomeDelivery;
  /** An uploaded export of `annotationId` (file INV-<id>.xml), as `serve` leaves it. */
  exported(
    annotationId: number,
    options?: { remotePath?: string; rossumBaseUrl?: string; holdUntil?: number },
  ): Promise<number>;
  /** An ERP verdict for one export, recorded as the ack reader records it; returns its outcome. */
  verdict(
    exportId: number,
    verdict: AckVerdict,
    options?: { messages?: AckMessage[]; erpReference?: string; landedAt?: number },
  ): Promise<AckOutcome>;
  outcome(id: number): Promise<AckOutcome>;
  /** Log lines (parsed) whose message contains `text`. */
  logged(text: string): Array<Record<string, unknown>>;
  close(): Promise<void>;
}

export interface RigOptions {
  rossum?: Record<string, unknown>;
  /** `false`: no metrics at all. */
  metrics?: false;
  holdGraceMs?: number;
  simulator?: RossumSimulator;
}

export function rossumConfig(simulator: RossumSimulator, overrides: Record<string, unknown> = {}): RossumApiConfig {
  return rossumApiConfigSchema.parse({
    baseUrl: simulator.apiUrl,
    username: ROSSUM_USER,
    password: ROSSUM_PASSWORD,
    requestsPerSecond: 1_000,
    timeoutMs: 5_000,
    retry: { attempts: 1, minDelayMs: 0, maxDelayMs: 0 },
    ...overrides,
  });
}

/** A simulated Rossum without its rate limit (the client's own limit is set to 1,000/s here). */
export function startSimulator(): Promise<RossumSimulator> {
  return RossumSimulator.start({ requestsPerSecond: 0 });
}

/** A loopback URL where nothing listens (connection refused). */
export async function closedPortUrl(): Promise<string> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return `http://127.0.0.1:${port}/api`;
}

let files = 0;

export async function startRig(options: RigOptions = {}): Promise<Rig> {
  const dir = mkdtempSync(join(tmpdir(), 'rsb-outbox-'));
  const clock = { now: T0 };
  const now = (): number => clock.now;
  const real = new SqliteLedger({ path: join(dir, 'ledger.db'), now });
  const ledgerCalls: string[] = [];
  const hooks: Hook[] = [];
  const observed = new Proxy(real, {
    get(target, property) {
      const value = Reflect.get(target, property, target) as unknown;
      if (typeof value !== 'function' || typeof property !== 'string') return value;
      const runHook = async (failed: boolean, result: unknown): Promise<void> => {
        const hook = hooks.find((h) => h.method === property && h.failed === failed && h.when(result));
        if (!hook) return;
        hooks.splice(hooks.indexOf(hook), 1);
        await hook.run(result);
      };
      return async (...args: unknown[]) => {
        ledgerCalls.push(property);
        let result: unknown;
        try {
          result = await (value as (...a: unknown[]) => Promise<unknown>).apply(target, args);
        } catch (error) {
          await runHook(true, error);
          throw error;
        }
        await runHook(false, result);
        return result;
      };
    },
  });
  const simulator = options.simulator ?? (await startSimulator());
  const metrics = options.metrics === false ? undefined : new BridgeMetrics({ defaultMetrics: false });
  const log = new CapturedLog();
  const config = acksConfigSchema.parse({
    byMapping: { erp: { convention: 'companion' } },
    delivery: {
      leaseMs: LEASE_MS,
      retryMinMs: RETRY_MIN_MS,
      retryMaxMs: RETRY_MAX_MS,
      exportingWaitMs: EXPORTING_WAIT_MS,
    },
  });
  const outbox = (owner: string): OutcomeDelivery =>
    new OutcomeDelivery({
      ledger: observed,
      rossum: rossumConfig(simulator, options.rossum),
      config,
      logger: createLogger({ level: 'debug', destination: log.stream }),
      ...(metrics ? { metrics } : {}),
      owner,
      now,
      ...(options.holdGraceMs === undefined ? {} : { holdGraceMs: options.holdGraceMs }),
    });
  const delivery = outbox(OWNER);
  return {
    clock,
    ledger: real,
    ledgerCalls,
    simulator,
    metrics,
    log,
    config,
    delivery,
    after(method, run, when = () => true) {
      hooks.push({ method, failed: false, run, when });
    },
    afterFailed(method, run) {
      hooks.push({ method, failed: true, run, when: () => true });
    },
    outbox,
    async exported(annotationId, { remotePath, rossumBaseUrl, holdUntil } = {}) {
      const fileName = `INV-${annotationId}.xml`;
      const claim = await claimTestExport(real, {
        annotationId,
        fileName,
        mapping: 'erp',
        ...(rossumBaseUrl ? { rossumBaseUrl } : {}),
      });
      await completeTestExport(real, claim.record.id, remotePath ?? fileName);
      if (holdUntil !== undefined) await real.startHold(claim.record.id, holdUntil);
      return claim.record.id;
    },
    async verdict(exportId, verdict, { messages = [], erpReference, landedAt } = {}) {
      const record = await real.get(exportId);
      const fileName = `INV-${record?.annotationId}.${verdict === 'accepted' ? 'ok' : 'err'}`;
      const [result] = await real.recordAcks([
        {
          source: 'erp',
          fileName,
          sha256: createHash('sha256').update(`${fileName}:${++files}`).digest('hex'),
          convention: 'companion',
          disposition: 'matched',
          ...(landedAt === undefined ? {} : { landedAt }),
          entries: [{ index: 0, exportId, verdict, messages, ...(erpReference ? { erpReference } : {}) }],
        },
      ]);
      const outcome = result?.outcomes[0];
      if (!outcome) throw new Error(`no outcome recorded for export ${exportId}`);
      return outcome;
    },
    async outcome(id) {
      const found = await findOutcome(real, id);
      if (!found) throw new Error(`no outcome ${id}`);
      return found;
    },
    logged(text) {
      return log.lines
        .map((line) => JSON.parse(line) as Record<string, unknown>)
        .filter((entry) => String(entry.msg).includes(text));
    },
    async close() {
      if (!options.simulator) await simulator.close();
      await real.close();
    },
  };
}

async function findOutcome(ledger: SqliteLedger, id: number): Promise<AckOutcome | undefined> {
  for (const record of await ledger.list({ limit: 1_000 })) {
    const found = (await ledger.outcomes(record.id)).find((outcome) => outcome.id === id);
    if (found) return found;
  }
  return undefined;
}

/** A counter's values by its one label (`{ delivered: 2, retry: 1 }`). */
export async function byLabel(metric: {
  get(): Promise<{ values: Array<{ labels: Record<string, unknown>; value: number }> }>;
}): Promise<Record<string, number>> {
  const { values } = await metric.get();
  return Object.fromEntries(values.map((v) => [String(Object.values(v.labels)[0]), v.value]));
}

export async function gauge(metric: { get(): Promise<{ values: Array<{ value: number }> }> }): Promise<number> {
  return (await metric.get()).values[0]?.value ?? Number.NaN;
}

/** `METHOD /path` of each call Rossum received (query strings left out), in order. */
export function callLog(simulator: RossumSimulator): string[] {
  return simulator.calls.map((call) => `${call.method} ${call.path.replace(/^\/api/, '')}`);
}

/** An ERP rejection with one coded reason, as the ack readers record it. */
export const rejection = { messages: [{ code: 'E102', text: 'Kreditor fehlt' }] };
