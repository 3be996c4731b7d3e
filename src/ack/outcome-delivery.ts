import PQueue from 'p-queue';
import { describeError } from '../errors.ts';
import type { AckOutcome, ExportRecord, Ledger, OutcomeSettlement } from '../ledger/index.ts';
import type { BridgeMetrics, Logger } from '../observability/index.ts';
import {
  cleanContent,
  cleanText,
  RossumApiError,
  RossumClient,
  ROSSUM_MESSAGE_LIMIT,
  type AnnotationStatus,
  type RossumApiConfig,
} from '../rossum/index.ts';
import type { AcksConfig } from './config.ts';

/** Rossum keeps at most 4 kB of metadata per object: the note carries the full text, the metadata a summary. */
const METADATA_MESSAGES = 10;
const METADATA_MESSAGE_CHARS = 200;

/** What one outcome does in Rossum. */
interface Plan {
  status?: AnnotationStatus;
  note?: string;
  metadata?: Record<string, unknown>;
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
 * Rossum has it (or it failed for good); an unreachable Rossum means "later", never "lost".
 *
 * A rejection note is posted once: the note carries the outcome id, and any attempt after the first
 * looks for it before posting; the annotation's metadata marks the outcome done once its status is set.
 */
export class OutcomeDelivery {
  private readonly clients = new Map<string, RossumClient>();
  private readonly now: () => number;
  private running: Promise<number> | undefined;
  private again = false;

  constructor(private readonly options: OutcomeDeliveryOptions) {
    this.now = options.now ?? Date.now;
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
                for (const outcome of outcomes.sort((a, b) => a.id - b.id)) await this.deliverOne(outcome);
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

  private async deliverOne(outcome: AckOutcome): Promise<void> {
    const { ledger, logger, metrics } = this.options;
    const record = await ledger.get(outcome.exportId);
    const log = logger.child({ annotationId: record?.annotationId, exportId: outcome.exportId, outcome: outcome.kind });
    let settlement: OutcomeSettlement;
    try {
      settlement = record
        ? await this.deliver(outcome, record)
        : { delivery: 'failed', error: `export ${outcome.exportId} is gone from the ledger` };
    } catch (error) {
      const transient = !(error instanceof RossumApiError) || error.transient;
      if (transient) {
        const { retryMinMs, retryMaxMs } = this.options.config.delivery;
        const wait = Math.min(retryMaxMs, retryMinMs * 2 ** Math.min(outcome.attempts - 1, 20));
        settlement = { delivery: 'retry', error: describeError(error), retryAt: this.now() + wait };
        log.warn(
          { err: describeError(error), retryInMs: wait },
          'Rossum could not be told yet; the outcome stays in the ledger and is delivered later',
        );
      } else {
        settlement = { delivery: 'failed', error: describeError(error) };
        const refusedByUs = error instanceof RossumApiError && error.code === 'ROSSUM_HOST_NOT_ALLOWED';
        log.error(
          { err: describeError(error) },
          refusedByUs
            ? 'Rossum not told: the export names a Rossum host we send no credentials to; it needs a human (see `status`)'
            : 'Rossum refused the ack outcome; it needs a human (see `status`)',
        );
      }
    }
    try {
      await ledger.settleOutcome(outcome.id, this.options.owner, settlement);
    } catch (error) {
      log.warn({ err: describeError(error) }, 'could not record the delivery (another process took the outcome over)');
      return;
    }
    metrics?.rossumUpdates.inc({ result: settlement.delivery });
    if (settlement.delivery === 'delivered' && record) {
      const landedAt = outcome.detail.landedAt;
      if (typeof landedAt === 'number') metrics?.ackToRossumSeconds.observe((this.now() - landedAt) / 1000);
      log.info({ ackFile: outcome.detail.ackFile }, `Rossum told: ${outcome.kind}`);
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
    const plan = this.plan(outcome, record);
    if (!plan.status && !plan.note && !plan.metadata) return { delivery: 'not_needed' };
    const client = this.clientFor(record);
    const key = this.options.config.metadataKey;
    const current = await client.getAnnotation(record.annotationId);
    const metadata = current.metadata ?? {};
    const mark = metadata[key] as { outcomeId?: number; state?: string } | undefined;
    if (mark?.outcomeId === outcome.id && mark.state === 'done')
      return { delivery: 'delivered', note: 'already in Rossum' };
    const base = { ...(plan.metadata ?? {}), outcomeId: outcome.id };
    if (plan.note) {
      const signature = `[rossum-sftp-bridge ack outcome ${outcome.id}]`;
      // An earlier attempt (it crashed, or lost Rossum's answer) may have stored the note: look before posting
      // again. Every claim counts an attempt, so the first one knows no note of this outcome exists yet.
      const posted =
        outcome.attempts > 1 &&
        (await client.listNotes(record.annotationId)).some((note) => note.content.includes(signature));
      // The signature must survive the cut: it is how a retry finds the note.
      if (!posted)
        await client.createNote(
          record.annotationId,
          `${cleanContent(plan.note, ROSSUM_MESSAGE_LIMIT - signature.length - 1)}\n${signature}`,
        );
    }
    await client.patchAnnotation(record.annotationId, {
      ...(plan.status ? { status: plan.status } : {}),
      metadata: { ...metadata, [key]: { ...base, state: 'done' } },
    });
    return { delivery: 'delivered', ...(plan.status ? { note: `status ${plan.status}` } : {}) };
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

  private plan(outcome: AckOutcome, record: ExportRecord): Plan {
    const file = record.remotePath ?? record.plannedPath;
    const { detail } = outcome;
    // ERP text is foreign: no control characters or bidi overrides reach Rossum, and metadata stays small (4 kB per object).
    const reasons = detail.messages.map((m) => cleanText(m.code ? `${m.code} ${m.text}` : m.text));
    const metadataReasons = reasons
      .slice(0, METADATA_MESSAGES)
      .map((reason) => cleanContent(reason, METADATA_MESSAGE_CHARS));
    const at = new Date(this.now()).toISOString();
    const common = { exportFile: file, ackFile: detail.ackFile ?? null, at };
    const mapping = this.options.config.byMapping[record.mappingName];
    switch (outcome.kind) {
      case 'rejected':
      case 'rejected_late':
        return {
          status: 'failed_export',
          note: [
            `The ERP rejected ${file}${outcome.kind === 'rejected_late' ? ' (its answer came after the deadline)' : ''} — ack ${detail.ackFile}:`,
            ...reasons,
          ].join('\n'),
          metadata: {
            ...common,
            result: 'rejected',
            codes: detail.messages
              .slice(0, METADATA_MESSAGES)
              .flatMap((m) => (m.code ? [cleanContent(m.code, 40)] : [])),
            messages: metadataReasons,
            ...(outcome.kind === 'rejected_late' ? { late: true } : {}),
          },
        };
      case 'invalid':
        return {
          status: 'failed_export',
          note: `The ERP's answer for ${file} (${detail.ackFile}) could not be read: ${reasons.join('; ')}. Check the file in the ack folder's invalid/ folder.`,
          metadata: { ...common, result: 'invalid_ack', messages: metadataReasons },
        };
      case 'timeout': {
        const window = mapping ? formatDuration(mapping.deadlineMs) : null;
        return {
          status: 'failed_export',
          note: `No answer from the ERP for ${file} within ${window ?? 'the deadline'} (deadline ${new Date(detail.deadlineAt ?? 0).toISOString()}). Check that the ERP imported it; a late positive answer will restore the export.`,
          metadata: { ...common, result: 'timeout', deadlineAt: new Date(detail.deadlineAt ?? 0).toISOString() },
        };
      }
      case 'accepted_late':
        return {
          status: 'exported',
          metadata: {
            ...common,
            result: 'accepted',
            late: true,
            message: `The ERP accepted ${file} late (after ${detail.previousState === 'ack_invalid' ? 'an unreadable answer' : 'the deadline'})`,
            ...(detail.erpReference ? { erpReference: detail.erpReference } : {}),
          },
        };
      case 'accepted':
        if (!mapping?.storeErpReference || !detail.erpReference) return {};
        return { metadata: { ...common, result: 'accepted', erpReference: detail.erpReference } };
      case 'duplicate':
        return {};
    }
  }

  private clientFor(record: ExportRecord): RossumClient {
    const key = this.options.rossum.baseUrl ?? record.rossumBaseUrl ?? '';
    let client = this.clients.get(key);
    if (!client) {
      client = new RossumClient({
        config: this.options.rossum,
        ...(this.options.rossum.baseUrl === undefined && record.rossumBaseUrl
          ? { payloadBaseUrl: record.rossumBaseUrl }
          : {}),
        logger: this.options.logger,
      });
      this.clients.set(key, client);
    }
    return client;
  }
}

/** "30 min", "45 s", "2 h 5 min": deadlines shorter than a minute must not read "0 min". */
function formatDuration(ms: number): string {
  if (ms < 60_000) return `${Math.max(1, Math.round(ms / 1000))} s`;
  const minutes = Math.round(ms / 60_000);
  if (minutes < 60) return `${minutes} min`;
  return minutes % 60 === 0 ? `${minutes / 60} h` : `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}
