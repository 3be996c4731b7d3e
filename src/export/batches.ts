import { createHash } from 'node:crypto';
import type { AnnotationView } from '../annotation/index.ts';
import { describeError } from '../errors.ts';
import type { BatchRecord, Ledger } from '../ledger/index.ts';
import type { BatchEntry, BatchSettings, CompiledMapping, MappingRegistry, RenderContext } from '../mapping/index.ts';
import type { Logger } from '../observability/index.ts';
import type { Target } from '../transport/index.ts';
import { ownerIsGone } from './owners.ts';
import { exportedReply, limitMessage, replayed, stored, transientReply, type ExportReply } from './replies.ts';
import { findOnServer } from './server-check.ts';
import { removeLeftoverTemps } from './leftovers.ts';

/** A batch mapping's share of one delivery: recorded in the open batch instead of uploaded. */
export interface PreparedBatchEntry {
  /** JSON of the mapping's BatchEntry. */
  entry: string;
  settings: BatchSettings;
  /** sha256 of the entry rendered with the per-delivery values pinned (the idempotency key's content part). */
  keySha: string;
}

/** Renders a batch mapping's entry for one document (throws like `render`). */
export function prepareBatchEntry(
  mapping: CompiledMapping,
  view: AnnotationView,
  pinned: { view: AnnotationView; now: Date },
  context: RenderContext,
): PreparedBatchEntry {
  const settings = mapping.batch as BatchSettings;
  const render = (on: AnnotationView, now: Date): string =>
    JSON.stringify(mapping.renderBatchEntry?.(on, { ...context, now }) as BatchEntry);
  const entry = render(view, context.now ?? new Date());
  const keyEntry = mapping.readsPerDeliveryValues ? render(pinned.view, pinned.now) : entry;
  return { entry, settings, keySha: createHash('sha256').update(keyEntry).digest('hex') };
}

/** Counter of a mapping's batch numbers (`sequence.counter`, else one per mapping and target). */
export function batchCounter(mappingName: string, target: string, settings: BatchSettings): string {
  return settings.counter ?? `batch:${mappingName}:${target}`;
}

/**
 * The webhook's part: record the entry durably, then tell Rossum which batch it is in and when that
 * batch goes out. A ledger that cannot record it answers 503, so Rossum retries.
 */
export async function collectIntoBatch(
  prepared: {
    annotationId: number;
    requestId: string;
    mappingName: string;
    mappingHash: string;
    idempotencyKey: string;
    documentRef: string | null;
    rossumBaseUrl: string | null;
    batch: PreparedBatchEntry;
  },
  target: Target,
  ledger: Ledger,
  log: Logger,
  onClosed?: () => void,
): Promise<ExportReply> {
  const { settings } = prepared.batch;
  let result: Awaited<ReturnType<Ledger['addToBatch']>>;
  try {
    result = await ledger.addToBatch({
      mappingName: prepared.mappingName,
      target: target.name,
      annotationId: prepared.annotationId,
      idempotencyKey: prepared.idempotencyKey,
      mappingHash: prepared.mappingHash,
      entry: prepared.batch.entry,
      documentRef: prepared.documentRef,
      rossumBaseUrl: prepared.rossumBaseUrl,
      requestId: prepared.requestId,
      counter: batchCounter(prepared.mappingName, target.name, settings),
      start: settings.start,
      closesAt: (openedAt) => settings.closesAt(openedAt),
      maxDocuments: settings.maxDocuments,
    });
  } catch (error) {
    log.warn({ err: describeError(error) }, 'could not record the document in its batch');
    return transientReply(
      `Could not record the document in a batch of mapping ${prepared.mappingName} (ledger: ${describeError(error)}); Rossum will retry`,
    );
  }
  if (result.outcome === 'sent') {
    const record = await ledger.get(result.exportId);
    return record ? replayed(record) : transientReply(`Export ${result.exportId} is not readable yet`);
  }
  const { batch } = result;
  if (batch.status !== 'open') onClosed?.();
  const what =
    result.outcome === 'waiting'
      ? `Already waiting in batch ${batch.number}`
      : result.replaced
        ? `Replaced this document's earlier entry in batch ${batch.number}`
        : `Added to batch ${batch.number}`;
  const content = `${what} (mapping ${prepared.mappingName}, target ${target.name}, ${batch.documents} document${batch.documents === 1 ? '' : 's'} so far); ${whenSent(batch, settings)}`;
  log.info({ batch: batch.number, batchId: batch.id, documents: batch.documents }, content);
  return {
    statusCode: 200,
    outcome: result.outcome === 'waiting' ? 'duplicate' : 'batched',
    mappingName: prepared.mappingName,
    body: { messages: [{ type: 'info', content: limitMessage(content) }] },
  };
}

function whenSent(batch: BatchRecord, settings: BatchSettings): string {
  if (batch.status !== 'open') return 'the batch is closed and is being sent now';
  const utc = new Date(batch.closesAt).toISOString().replace(/:\d\d\.\d+Z$/, 'Z');
  const local =
    settings.at !== undefined && settings.timezone !== 'UTC'
      ? `${new Intl.DateTimeFormat('sv-SE', { timeZone: settings.timezone, dateStyle: 'short', timeStyle: 'short' }).format(batch.closesAt)} ${settings.timezone} (${utc})`
      : utc;
  const full = settings.maxDocuments === undefined ? '' : `, or as soon as it holds ${settings.maxDocuments} documents`;
  return `it will be sent at ${local}${full}`;
}

export interface BatchSenderOptions {
  ledger: Ledger;
  targets: ReadonlyMap<string, Target>;
  mappings: MappingRegistry;
  logger: Logger;
  /** This process as a lease owner (host:pid:random). */
  owner: string;
  env?: Record<string, string | undefined>;
  /** How often due batches are looked for. */
  tickMs?: number;
  leaseMs?: number;
  /** A failed send waits this long before the next attempt. */
  retryMs?: number;
}

/**
 * `serve`'s timer: claims due batches (one sender among replicas, by lease), renders each batch's file
 * from its frozen entries and uploads it atomically; the ledger then records the documents as exported.
 * A sender that died is found (pid gone or lease run out) and its batch sent again: the file planned in
 * the ledger is looked for on the server first, so a batch is never uploaded twice.
 */
export class BatchSender {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  private stopped = false;

  constructor(private readonly options: BatchSenderOptions) {}

  private get leaseMs(): number {
    return this.options.leaseMs ?? 120_000;
  }

  start(): void {
    this.schedule(0);
  }

  /** Looks for due batches now (a webhook just filled one). */
  kick(): void {
    if (this.stopped) return;
    if (this.running) this.again = true;
    else this.schedule(0);
  }

  /** Sends no further batch; a batch being uploaded is finished (like a started export), then it returns. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }

  private schedule(ms: number): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.running = this.sendDue()
        .then(() => undefined)
        .catch((error: unknown) =>
          this.options.logger.warn({ err: describeError(error) }, 'looking for due batches failed'),
        )
        .finally(() => {
          this.running = undefined;
          if (this.stopped) return;
          const next = this.again ? 0 : (this.options.tickMs ?? 1000);
          this.again = false;
          this.schedule(next);
        });
    }, ms);
    this.timer.unref();
  }

  /** Sends every batch that is due now; returns how many were sent. */
  async sendDue(): Promise<number> {
    const { ledger, owner } = this.options;
    for (const batch of await ledger.listBatches({ status: ['sending'], limit: 1000 })) {
      if (batch.leaseOwner && batch.leaseOwner !== owner && ownerIsGone(batch.leaseOwner, batch.leaseExpiresAt, owner))
        await ledger.releaseBatch(batch.id, batch.leaseOwner);
    }
    let sent = 0;
    while (!this.stopped) {
      const batch = await ledger.claimDueBatch(owner, this.leaseMs);
      if (!batch) break;
      if (await this.send(batch)) sent++;
    }
    return sent;
  }

  private async send(batch: BatchRecord): Promise<boolean> {
    const { ledger, owner } = this.options;
    const log = this.options.logger.child({ batch: batch.number, batchId: batch.id, mapping: batch.mappingName });
    try {
      const mapping = this.options.mappings.get(batch.mappingName);
      if (!mapping?.renderBatch) throw new Error(`mapping ${batch.mappingName} is gone or no longer a batch mapping`);
      const target = this.options.targets.get(batch.target);
      if (!target) throw new Error(`target ${batch.target} is not configured`);
      // The send ends before the lease it holds can run out, so no other replica takes the batch over
      // while this one still uploads it (a lease is not renewed mid-send).
      const opOptions = { signal: AbortSignal.timeout(Math.max(1_000, this.leaseMs - 1_000)) };
      if (batch.fileName && batch.sha256 && batch.bytes !== null) {
        // An earlier sender planned this file and may have uploaded it before it died.
        const planned = { remotePath: null, plannedPath: batch.fileName, bytes: batch.bytes, sha256: batch.sha256 };
        const found = await findOnServer(target, planned, opOptions);
        if (found) {
          await removeLeftoverTemps(target, found, opOptions, log, 'an earlier attempt of this batch');
          await this.record(batch, target, found, batch.bytes);
          log.info({ remotePath: found }, 'the batch had already reached the server: recorded without uploading again');
          return true;
        }
      }
      const entries = await ledger.batchEntries(batch.id);
      const file = mapping.renderBatch(
        entries.map((entry) => JSON.parse(entry.entry) as BatchEntry),
        {
          number: batch.number,
          openedAt: new Date(batch.openedAt),
          closedAt: new Date(batch.closedAt ?? batch.closesAt),
        },
        {
          route: { mapping: batch.mappingName, target: batch.target },
          ...(this.options.env ? { env: this.options.env } : {}),
        },
      );
      const sha256 = createHash('sha256').update(file.bytes).digest('hex');
      await ledger.planBatchFile(batch.id, owner, { fileName: file.fileName, sha256, bytes: file.bytes.length });
      log.info({ fileName: file.fileName, documents: entries.length, bytes: file.bytes.length }, 'sending batch');
      const result = await target.upload(
        { relativePath: file.fileName, bytes: file.bytes, onExisting: mapping.onExisting },
        opOptions,
      );
      // Swept before the ledger records the send, so a process killed in between leaves the sweep to the next sender.
      if (batch.attempts > 1 || result.mayHaveLeftTemps)
        await removeLeftoverTemps(target, file.fileName, opOptions, log, 'an earlier attempt of this batch');
      await this.record({ ...batch, documents: entries.length }, target, result.remotePath, result.bytes);
      log.info({ remotePath: result.remotePath, documents: entries.length }, 'batch sent');
      return true;
    } catch (error) {
      // Stopped mid-send (graceful shutdown): the next process may send it at once.
      const retryMs = this.stopped ? 0 : (this.options.retryMs ?? 30_000);
      log.warn(
        { err: describeError(error), retryInMs: retryMs },
        `batch ${batch.number} not sent: ${describeError(error)}`,
      );
      await ledger
        .failBatch(batch.id, owner, { error: describeError(error), retryAt: Date.now() + retryMs })
        .catch(() => undefined);
      return false;
    }
  }

  private async record(batch: BatchRecord, target: Target, remotePath: string, bytes: number): Promise<void> {
    const reply = exportedReply(
      `Sent in batch ${batch.number} as ${remotePath} to ${target.description} (mapping ${batch.mappingName}, ${batch.documents} documents, ${bytes} bytes)`,
    );
    await this.options.ledger.completeBatch(batch.id, this.options.owner, { remotePath, reply: stored(reply) });
  }
}
