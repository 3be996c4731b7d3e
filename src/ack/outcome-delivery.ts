import PQueue from 'p-queue';
import { BridgeError, describeError, isBridgeError } from '../errors.ts';
import type { AckOutcome, ExportRecord, Ledger, OutcomeSettlement } from '../ledger/index.ts';
import type { BridgeMetrics, Logger } from '../observability/index.ts';
import {
  cleanContent,
  RossumApiError,
  RossumClient,
  ROSSUM_MESSAGE_LIMIT,
  type RossumApiConfig,
  type WriteOptions,
} from '../rossum/index.ts';
import type { AcksConfig } from './config.ts';
import { boundedMetadata, formatDuration, planOutcome, type Plan } from './outcome-plan.ts';

/** Statuses the bridge may change: the export's own results. Any other means someone else moved the annotation. */
const OURS_TO_CHANGE: ReadonlySet<string> = new Set(['exported', 'failed_export']);

export interface CredentialsState {
  state: 'unchecked' | 'accepted' | 'refused';
  /** Why Rossum refused them, with the fix (no secret in it). */
  reason?: string;
  since?: number;
}

export interface OutcomeDeliveryOptions {
  ledger: Ledger;
  rossum: RossumApiConfig;
  config: AcksConfig;
  logger: Logger;
  metrics?: BridgeMetrics;
  owner: string;
  now?: () => number;
  /** Held exports: how long after the hold ends the poll reply still gets to answer first. */
  holdGraceMs?: number;
}

/**
 * The outbox: delivers outcomes recorded in the ledger to Rossum. An outcome leaves the outbox only when
 * Rossum has it, when Rossum's annotation is out of our hands (left alone, gone) or when it failed for good;
 * an unreachable Rossum, or one that refuses our credentials, means "later", never "lost".
 *
 * Read before write: the annotation's status is changed only from `exported`/`failed_export`; while it is
 * `exporting` a status set now would be overwritten when Rossum finishes the export, so the outcome waits.
 * A rejection note is posted once: the note carries the outcome id, and any attempt after the first
 * looks for it (across all pages) before posting; the annotation's metadata marks the outcome done.
 */
export class OutcomeDelivery {
  private readonly clients = new Map<string, RossumClient>();
  private readonly checked = new WeakSet<RossumClient>();
  private readonly now: () => number;
  private rossum: RossumApiConfig;
  private credentials: CredentialsState = { state: 'unchecked' };
  /** While Rossum refuses our credentials, outcomes wait until then without a call (one probe per wait). */
  private refusedUntil = 0;
  private running: Promise<number> | undefined;
  private again = false;

  constructor(private readonly options: OutcomeDeliveryOptions) {
    this.now = options.now ?? Date.now;
    this.rossum = options.rossum;
  }

  get credentialsState(): CredentialsState {
    return { ...this.credentials };
  }

  /**
   * Start-up (and reload) check: logs in or renews the token against `rossum.baseUrl`, so a refused token
   * shows in the log, `/readyz` and the metric at once. Never throws: delivery waits and retries by itself.
   */
  async checkCredentials(): Promise<CredentialsState> {
    if (this.rossum.baseUrl === undefined) {
      this.options.logger.info("no rossum.baseUrl: credentials are checked at the first call to each export's Rossum");
      return this.credentialsState;
    }
    try {
      const client = this.clientFor(undefined);
      await client.checkCredentials();
      this.checked.add(client);
      this.accepted();
    } catch (error) {
      if (isAuthRefusal(error)) this.refused(error);
      else
        this.options.logger.warn(
          { err: describeError(error) },
          'could not check the Rossum credentials at start-up (Rossum unreachable?); outcomes wait in the ledger until it answers',
        );
    }
    return this.credentialsState;
  }

  /** New credentials (SIGHUP): fresh clients, everything that waited is due now, and delivery resumes. */
  async useRossumConfig(rossum: RossumApiConfig): Promise<void> {
    this.rossum = rossum;
    this.clients.clear();
    this.refusedUntil = 0;
    this.credentials = { state: 'unchecked' };
    this.options.metrics?.rossumCredentialsRefused.set(0);
    await this.checkCredentials();
    const due = await this.options.ledger.retryPendingNow();
    this.options.logger.info({ pending: due }, 'Rossum settings reloaded; pending outcomes are delivered now');
    await this.pump();
  }

  /** Delivers everything due; concurrent calls coalesce into one more round. */
  pump(): Promise<number> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = (async () => {
      let total = 0;
      try {
        await this.keepTokensAlive();
        do {
          this.again = false;
          for (;;) {
            const batch = await this.options.ledger.claimOutcomes(
              this.options.owner,
              this.options.config.delivery.leaseMs,
              100,
            );
            if (batch.length === 0) break;
            total += batch.length;
            // One export's outcomes go in order (a timeout before its late acceptance); exports in parallel.
            const byExport = new Map<number, AckOutcome[]>();
            for (const outcome of batch)
              byExport.set(outcome.exportId, [...(byExport.get(outcome.exportId) ?? []), outcome]);
            await new PQueue({ concurrency: 4 }).addAll(
              [...byExport.values()].map((outcomes) => async () => {
                // Once another process has one of them, the export's later outcomes are its too (they keep their order).
                for (const outcome of outcomes.sort((a, b) => a.id - b.id))
                  if (!(await this.deliverOne(outcome))) break;
              }),
            );
          }
        } while (this.again);
      } finally {
        this.running = undefined;
      }
      return total;
    })();
    return this.running;
  }

  private async keepTokensAlive(): Promise<void> {
    for (const client of this.clients.values()) {
      if (!this.checked.has(client)) continue;
      try {
        await client.renewIfDue();
      } catch (error) {
        if (isAuthRefusal(error)) this.refused(error);
      }
    }
  }

  /** False when the outcome turned out to be another process's (lease lost): nothing was written, nothing settled. */
  private async deliverOne(outcome: AckOutcome): Promise<boolean> {
    const { ledger, logger, metrics } = this.options;
    const record = await ledger.get(outcome.exportId);
    const log = logger.child({ annotationId: record?.annotationId, exportId: outcome.exportId, outcome: outcome.kind });
    let settlement: OutcomeSettlement;
    try {
      // A claim's last outcomes may start long after it was made: renew the lease, or leave them to whoever took them.
      if (this.now() - (outcome.lastAttemptAt ?? 0) > this.options.config.delivery.leaseMs / 2)
        await this.fence(outcome);
      if (this.now() < this.refusedUntil) {
        settlement = {
          delivery: 'retry',
          error: `waiting for Rossum to accept our credentials: ${this.credentials.reason ?? 'refused'}`,
          retryAt: this.refusedUntil,
        };
      } else {
        settlement = record
          ? await this.deliver(outcome, record)
          : { delivery: 'failed', error: `export ${outcome.exportId} is gone from the ledger` };
      }
    } catch (error) {
      if (isLeaseLost(error)) {
        metrics?.ackLeaseLost.inc({ at: 'before_write' });
        log.warn(
          { outcomeId: outcome.id, claim: outcome.attempts },
          'another acks process took this outcome over (our lease ran out); dropped here without telling Rossum, the other process does',
        );
        return false;
      }
      if (isAuthRefusal(error)) {
        // Not a verdict on the outcome: our credentials. The outcome waits; a new token (restart, SIGHUP) or Rossum accepting them again resumes delivery.
        this.refused(error);
        settlement = { delivery: 'retry', error: describeError(error), retryAt: this.refusedUntil };
      } else if (!(error instanceof RossumApiError) || error.transient) {
        const wait = this.backoff(outcome);
        settlement = { delivery: 'retry', error: describeError(error), retryAt: this.now() + wait };
        log.warn(
          { err: describeError(error), retryInMs: wait },
          'Rossum could not be told yet; the outcome stays in the ledger and is delivered later',
        );
      } else if (error.statusCode === 404) {
        settlement = {
          delivery: 'gone',
          error: `annotation ${record?.annotationId} no longer exists in Rossum (404); nothing to tell`,
        };
        log.warn('Rossum no longer has the annotation (404): the outcome is closed as gone (see `status`)');
      } else {
        settlement = {
          delivery: 'failed',
          error:
            error.statusCode === 409
              ? `Rossum refused the change (409: the annotation is being worked on by another user): ${describeError(error)}`
              : describeError(error),
        };
        const refusedByUs = error.code === 'ROSSUM_HOST_NOT_ALLOWED';
        log.error(
          { err: describeError(error) },
          refusedByUs
            ? 'Rossum not told: the export names a Rossum host we send no credentials to; it needs a human (see `status`)'
            : 'Rossum refused the ack outcome; it needs a human (see `status`)',
        );
      }
    }
    try {
      await ledger.settleOutcome(outcome.id, this.options.owner, settlement, outcome.attempts);
    } catch (error) {
      if (isLeaseLost(error)) metrics?.ackLeaseLost.inc({ at: 'at_settle' });
      // Whatever we wrote is marked in the annotation's metadata: the process that took over finds it there.
      log.warn({ err: describeError(error) }, 'could not record the delivery (another process took the outcome over)');
      return true;
    }
    metrics?.rossumUpdates.inc({ result: settlement.delivery });
    if (settlement.delivery === 'left_alone') {
      metrics?.ackLeftAlone.inc({ status: settlement.rossumStatus });
      log.warn(
        { rossumStatus: settlement.rossumStatus },
        `Rossum status left alone: the annotation was in ${settlement.rossumStatus} (moved by an operator or another system); the verdict was posted as a note`,
      );
    }
    if (settlement.delivery === 'delivered' && record) {
      const landedAt = outcome.detail.landedAt;
      if (typeof landedAt === 'number') metrics?.ackToRossumSeconds.observe((this.now() - landedAt) / 1000);
      log.info({ ackFile: outcome.detail.ackFile }, `Rossum told: ${outcome.kind}`);
    }
    return true;
  }

  /**
   * The fence: renews this claim's lease in one ledger statement, or throws `LEDGER_LEASE_LOST` when another
   * process has claimed the outcome since (the claim's generation moved on). Runs before each write to Rossum,
   * inside the write's rate-limit slot, so a delivery slowed down by Rossum's limits never writes on a lease
   * it lost. The write must then land within `leaseMs`: keep it above `rossum.timeoutMs`.
   */
  private async fence(outcome: AckOutcome): Promise<void> {
    const { ledger, owner, config } = this.options;
    if (await ledger.renewOutcomeLease(outcome.id, owner, outcome.attempts, config.delivery.leaseMs)) return;
    throw new BridgeError(
      'LEDGER_LEASE_LOST',
      `Ack outcome ${outcome.id} (claim ${outcome.attempts}) was taken over by another process; not written to Rossum`,
      { permanent: false },
    );
  }

  private fenced(outcome: AckOutcome): WriteOptions {
    return { beforeSend: () => this.fence(outcome) };
  }

  private backoff(outcome: AckOutcome): number {
    const { retryMinMs, retryMaxMs } = this.options.config.delivery;
    return Math.min(retryMaxMs, retryMinMs * 2 ** Math.min(Math.max(0, outcome.attempts - 1), 20));
  }

  private accepted(): void {
    if (this.credentials.state === 'refused')
      this.options.logger.info('Rossum accepts our credentials again; delivering the outcomes that waited');
    this.credentials = { state: 'accepted', since: this.now() };
    this.refusedUntil = 0;
    this.options.metrics?.rossumCredentialsRefused.set(0);
  }

  private refused(error: RossumApiError): void {
    const first = this.credentials.state !== 'refused';
    const reason = describeError(error);
    this.credentials = { state: 'refused', reason, since: first ? this.now() : (this.credentials.since ?? this.now()) };
    this.refusedUntil = this.now() + this.options.config.delivery.retryMaxMs;
    this.options.metrics?.rossumCredentialsRefused.set(1);
    if (first) {
      const fix =
        this.rossum.username === undefined
          ? 'put a valid API token in rossum.token and restart the acks process or send it SIGHUP (or configure rossum.username/password so it logs in by itself)'
          : 'check rossum.username/password (the user may be locked or its password changed), then restart the acks process or send it SIGHUP';
      this.options.logger.error(
        { err: reason },
        `Rossum refuses our credentials: no outcome is lost, they wait in the ledger. Fix: ${fix}`,
      );
    }
  }

  private async deliver(outcome: AckOutcome, record: ExportRecord): Promise<OutcomeSettlement> {
    const hold = await this.settleHold(record);
    if (hold) return hold;
    // A newer verdict (e.g. a late acceptance after a timeout still waiting for Rossum) decides the end state.
    const newer = (await this.options.ledger.outcomes(record.id)).find(
      (other) => other.id > outcome.id && other.kind !== 'duplicate',
    );
    if (newer) return { delivery: 'not_needed', note: `superseded by ${newer.kind}` };
    const plan = planOutcome(outcome, record, this.options.config, this.now());
    if (!plan.status && !plan.note && !plan.metadata) return { delivery: 'not_needed' };
    const client = this.clientFor(record);
    if (!this.checked.has(client)) {
      // A token-only client learns its token's renewal time from this first renewal.
      try {
        await client.checkCredentials();
      } catch (error) {
        // A refusal is the outcome's answer (it waits); a Rossum without the endpoint still gets the verdict.
        if (isAuthRefusal(error) || !(error instanceof RossumApiError) || error.transient) throw error;
        this.options.logger.warn(
          { err: describeError(error) },
          'could not check the Rossum credentials; delivering anyway',
        );
      }
      this.checked.add(client);
    }
    const key = this.options.config.metadataKey;
    const current = await client.getAnnotation(record.annotationId);
    // Only an answer from Rossum says it accepts our credentials (a held, superseded or empty outcome asks it nothing).
    if (this.credentials.state !== 'accepted') this.accepted();
    if (current.status === 'purged')
      return { delivery: 'gone', error: `annotation ${record.annotationId} was purged in Rossum; nothing can be told` };
    const metadata = current.metadata ?? {};
    const mark = metadata[key] as { outcomeId?: number; state?: string } | undefined;
    if (mark?.outcomeId === outcome.id && mark.state === 'done')
      return { delivery: 'delivered', note: 'already in Rossum' };

    if (current.status === 'exporting') {
      // Rossum has not processed our webhook reply yet; a status set now is overwritten when the export finishes.
      const waited = this.now() - outcome.createdAt;
      const bound = this.options.config.delivery.exportingWaitMs;
      if (waited < bound)
        return {
          delivery: 'retry',
          error:
            'annotation still exporting in Rossum (our webhook reply not processed yet); waiting before changing its status',
          retryAt: this.now() + this.backoff(outcome),
        };
      await this.postNote(client, outcome, record, plan.note ?? this.verdictNote(outcome, record, plan));
      return {
        delivery: 'failed',
        error: `annotation ${record.annotationId} still exporting in Rossum ${formatDuration(waited)} after the verdict; status not changed (verdict posted as a note) — check the export in Rossum`,
      };
    }
    if (plan.status !== undefined && !OURS_TO_CHANGE.has(current.status)) {
      await this.postNote(client, outcome, record, this.verdictNote(outcome, record, plan, current.status));
      return { delivery: 'left_alone', rossumStatus: current.status, note: 'verdict posted as a note' };
    }
    if (plan.note) await this.postNote(client, outcome, record, plan.note);
    // The status goes along even when Rossum shows it already: one idempotent PATCH states the verdict.
    await client.patchAnnotation(
      record.annotationId,
      {
        ...(plan.status ? { status: plan.status } : {}),
        metadata: boundedMetadata(metadata, key, { ...(plan.metadata ?? {}), outcomeId: outcome.id, state: 'done' }),
      },
      this.fenced(outcome),
    );
    return { delivery: 'delivered', note: plan.status ? `status ${plan.status}` : 'metadata' };
  }

  /** The verdict in words, for an annotation whose status the bridge does not touch. */
  private verdictNote(outcome: AckOutcome, record: ExportRecord, plan: Plan, status?: string): string {
    const file = record.remotePath ?? record.plannedPath;
    const kept =
      status === undefined
        ? ''
        : ` The bridge did not change the annotation's status: it was in ${status} (moved by an operator or another system).`;
    if (plan.note) return `${plan.note}\n${kept.trim()}`;
    return `The ERP ${outcome.kind === 'accepted_late' ? 'accepted (late)' : 'answered for'} ${file}${outcome.detail.erpReference ? ` (ERP reference ${outcome.detail.erpReference})` : ''}.${kept}`;
  }

  /** Posts the note once: a retry (say, after a crash or a lost answer) first looks for it on every page. */
  private async postNote(client: RossumClient, outcome: AckOutcome, record: ExportRecord, text: string): Promise<void> {
    const signature = `[rossum-sftp-bridge ack outcome ${outcome.id}]`;
    // Only an attempt after one that got as far as sending the note (it crashed, or lost Rossum's answer) looks.
    const posted =
      outcome.noteAttempted &&
      (await client.listNotes(record.annotationId)).some((note) => note.content.includes(signature));
    if (posted) return;
    await this.options.ledger.markNoteAttempted(outcome.id);
    // The signature must survive the cut: it is how a retry finds the note.
    await client.createNote(
      record.annotationId,
      `${cleanContent(text, ROSSUM_MESSAGE_LIMIT - signature.length - 1)}\n${signature}`,
      this.fenced(outcome),
    );
  }

  /** Held exports: the poll reply tells Rossum unless the hold is over. */
  private async settleHold(record: ExportRecord): Promise<OutcomeSettlement | null> {
    if (record.holdState === null || record.holdState === 'released') return null;
    if (record.holdState === 'answered') return { delivery: 'by_hold' };
    const releaseAt = (record.holdUntil ?? 0) + (this.options.holdGraceMs ?? 5_000);
    if (this.now() < releaseAt)
      return {
        delivery: 'retry',
        error: 'Rossum is polling the held export; its reply carries this outcome',
        retryAt: releaseAt,
      };
    if (await this.options.ledger.moveHold(record.id, ['pending'], 'released')) return null;
    const fresh = await this.options.ledger.get(record.id);
    return fresh?.holdState === 'answered' ? { delivery: 'by_hold' } : null;
  }

  /** One client per Rossum (the configured one, or each export's allow-listed `base_url`); `undefined` = the configured one. */
  private clientFor(record: ExportRecord | undefined): RossumClient {
    const key = this.rossum.baseUrl ?? record?.rossumBaseUrl ?? '';
    let client = this.clients.get(key);
    if (!client) {
      client = new RossumClient({
        config: this.rossum,
        ...(this.rossum.baseUrl === undefined && record?.rossumBaseUrl ? { payloadBaseUrl: record.rossumBaseUrl } : {}),
        logger: this.options.logger,
      });
      this.clients.set(key, client);
    }
    return client;
  }
}

function isLeaseLost(error: unknown): boolean {
  return isBridgeError(error) && error.code === 'LEDGER_LEASE_LOST';
}

/** 401 from the API or a refused login: our credentials, not the outcome. */
function isAuthRefusal(error: unknown): error is RossumApiError {
  return (
    error instanceof RossumApiError && (error.code === 'ROSSUM_UNAUTHORIZED' || error.code === 'ROSSUM_LOGIN_FAILED')
  );
}
