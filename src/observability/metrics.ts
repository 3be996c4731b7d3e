import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** The numbers a connection pool reports; transport targets provide them, metrics only reads them. */
export interface PoolGauges {
  size: number;
  inUse: number;
  idle: number;
  pending: number;
}

export type ExportOutcome = 'exported' | 'batched' | 'duplicate' | 'failed' | 'transient_error' | 'deadline';

/** Prometheus metrics for one process; a fresh registry each, so tests and replicas do not collide. */
export class BridgeMetrics {
  readonly registry = new Registry();
  readonly exports: Counter<'outcome' | 'target'>;
  readonly exportDuration: Histogram<'outcome'>;
  readonly webhookRequests: Counter<'status'>;
  readonly ackFiles: Counter<'source' | 'disposition'>;
  readonly ackOutcomes: Counter<'kind'>;
  readonly rossumUpdates: Counter<'result'>;
  readonly ackToRossumSeconds: Histogram<never>;
  readonly rossumCredentialsRefused: Gauge<never>;
  readonly ackLeftAlone: Counter<'status'>;
  readonly ackLeaseLost: Counter<'at'>;
  readonly targetUp: Gauge<'target'>;
  private readonly pools = new Map<string, () => PoolGauges>();
  private outcomeBacklog: (() => Promise<Record<string, number>>) | undefined;
  private targetCheck: (() => Promise<void>) | undefined;

  constructor(options: { defaultMetrics?: boolean } = {}) {
    if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry, prefix: 'bridge_process_' });
    this.exports = new Counter({
      name: 'bridge_exports_total',
      help: 'Export deliveries by outcome',
      labelNames: ['outcome', 'target'],
      registers: [this.registry],
    });
    this.exportDuration = new Histogram({
      name: 'bridge_export_duration_seconds',
      help: 'Time from receiving an export to answering Rossum',
      labelNames: ['outcome'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25],
      registers: [this.registry],
    });
    this.webhookRequests = new Counter({
      name: 'bridge_webhook_requests_total',
      help: 'Webhook requests by HTTP status answered',
      labelNames: ['status'],
      registers: [this.registry],
    });
    this.ackFiles = new Counter({
      name: 'bridge_ack_files_total',
      help: 'ERP ack files handled, by source target and disposition (matched, unmatched, invalid)',
      labelNames: ['source', 'disposition'],
      registers: [this.registry],
    });
    this.ackOutcomes = new Counter({
      name: 'bridge_ack_outcomes_total',
      help: 'Export outcomes recorded from acks and deadlines (accepted, rejected, timeout, ...)',
      labelNames: ['kind'],
      registers: [this.registry],
    });
    this.rossumUpdates = new Counter({
      name: 'bridge_ack_rossum_updates_total',
      help: 'Ack outcomes settled towards Rossum (delivered, retry, failed, by_hold, not_needed, left_alone, gone)',
      labelNames: ['result'],
      registers: [this.registry],
    });
    this.ackToRossumSeconds = new Histogram({
      name: 'bridge_ack_to_rossum_seconds',
      help: 'Time from an ack file being first seen to Rossum being told',
      buckets: [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
      registers: [this.registry],
    });
    this.rossumCredentialsRefused = new Gauge({
      name: 'bridge_rossum_credentials_refused',
      help: '1 while Rossum refuses the configured token or username/password (outcomes wait in the ledger), else 0',
      registers: [this.registry],
    });
    this.ackLeftAlone = new Counter({
      name: 'bridge_ack_left_alone_total',
      help: 'Verdicts whose annotation an operator or another system had moved: status kept, verdict posted as a note; by the status found',
      labelNames: ['status'],
      registers: [this.registry],
    });
    const targetCheck = (): (() => Promise<void>) | undefined => this.targetCheck;
    this.ackLeaseLost = new Counter({
      name: 'bridge_ack_lease_lost_total',
      help: 'Outcomes another acks process took over while this one held them (its lease ran out): dropped unwritten before a write to Rossum (`before_write`) or after the last one (`at_settle`)',
      labelNames: ['at'],
      registers: [this.registry],
    });
    this.targetUp = new Gauge({
      name: 'bridge_target_up',
      help: 'Whether the target answered its last check (1) or not (0): at every scrape (and /healthz?verbose) of serve, every ack folder listing of acks',
      labelNames: ['target'],
      registers: [this.registry],
      async collect() {
        await targetCheck()?.();
      },
    });
    const backlog = (): (() => Promise<Record<string, number>>) | undefined => this.outcomeBacklog;
    new Gauge({
      name: 'bridge_ack_outcomes_backlog',
      help: 'Ack outcomes in the ledger by delivery state towards Rossum (pending = Rossum not told yet); ledger-wide, reported by acks',
      labelNames: ['delivery'],
      registers: [this.registry],
      async collect() {
        const read = backlog();
        if (!read) return;
        this.reset();
        for (const [delivery, count] of Object.entries(await read())) this.set({ delivery }, count);
      },
    });
    const pools = this.pools;
    new Gauge({
      name: 'bridge_sftp_pool_connections',
      help: 'Connections per target by state (open = size, in_use, idle)',
      labelNames: ['target', 'state'],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const [target, stats] of pools) {
          const current = stats();
          this.set({ target, state: 'open' }, current.size);
          this.set({ target, state: 'in_use' }, current.inUse);
          this.set({ target, state: 'idle' }, current.idle);
        }
      },
    });
    new Gauge({
      name: 'bridge_transfer_queue_depth',
      help: 'Operations waiting for a connection, per target',
      labelNames: ['target'],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const [target, stats] of pools) this.set({ target }, stats().pending);
      },
    });
  }

  watchPool(target: string, stats: () => PoolGauges): void {
    this.pools.set(target, stats);
  }

  /** Run at every scrape: checks the targets and sets `targetUp` (serve, whose readiness no longer does). */
  watchTargets(check: () => Promise<void>): void {
    this.targetCheck = check;
  }

  /** Read at every scrape (one grouped count in the ledger). */
  watchOutcomeBacklog(read: () => Promise<Record<string, number>>): void {
    this.outcomeBacklog = read;
  }

  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
