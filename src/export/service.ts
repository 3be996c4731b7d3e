import { createHash, randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { describeError, isBridgeError } from '../errors.ts';
import { ConsoleActionRefused, type ConsoleLedger, type Ledger } from '../ledger/index.ts';
import type { Logger, BridgeMetrics, ExportOutcome } from '../observability/index.ts';
import type { Target } from '../transport/index.ts';
import type { ExportPreparation, PreparedExport } from './prepare.ts';
import { collectIntoBatch } from './batches.ts';
import { documentPath, placeDocument, type DocumentFetchSettings } from './document.ts';
import { numberExport } from './numbering.ts';
import { reconcileOne } from './reconcile.ts';
import { reconcileWithServer } from './server-check.ts';
import { ownerIsGone } from './owners.ts';
import { retryKeptUpload, type RetryRequest, type RetryResult } from './retry.ts';
import { waitForOther } from './waiting.ts';
import { codeOf, errorReply, replayed, stored, successReply, transientReply, type ExportReply } from './replies.ts';
import { removeLeftoverTemps } from './leftovers.ts';

export { ownerIsGone } from './owners.ts';

/** A transiently failed export keeps its rendered file in the ledger up to this size, for an operator's retry. */
export const KEEP_FOR_RETRY_MAX_BYTES = 4 * 1024 * 1024;

export type { ExportReply, RossumMessage } from './replies.ts';
export type { ExportPreparation, PreparedExport } from './prepare.ts';

export interface ExportServiceOptions {
  targets: ReadonlyMap<string, Target>;
  ledger: Ledger;
  logger: Logger;
  metrics?: BridgeMetrics;
  /** How long a claim stays exclusive before another worker may take over a dead one. */
  leaseMs?: number;
  /** How often a duplicate delivery looks whether the first one finished (other processes). */
  duplicatePollMs?: number;
  /** Where and how the original documents of `document:` mappings are fetched. */
  documents?: DocumentFetchSettings;
  /** A document filled its batch: the sender should look for due batches now. */
  onBatchClosed?: () => void;
}

export interface HandleOptions {
  /** Aborted at the hook's deadline: stop waiting; a started upload still completes. */
  signal?: AbortSignal;
  /** The deadline behind `signal`, for the message Rossum shows. */
  deadlineMs?: number;
}

/**
 * The export loop for a prepared delivery (routed and rendered by prepare.ts): claim in the
 * ledger → atomic upload → record → answer. Nothing here knows HTTP; the webhook turns
 * ExportReply into a response.
 */
export class ExportService {
  private readonly inflight = new Map<string, Promise<ExportReply>>();
  private readonly owner = `${hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`;
  private readonly leaseMs: number;
  private readonly duplicatePollMs: number;

  constructor(private readonly options: ExportServiceOptions) {
    this.leaseMs = options.leaseMs ?? 120_000;
    this.duplicatePollMs = options.duplicatePollMs ?? 100;
  }

  /** Exports in flight in this process (graceful shutdown waits for them). */
  get pending(): number {
    return this.inflight.size;
  }

  async idle(): Promise<void> {
    while (this.inflight.size > 0) await Promise.allSettled([...this.inflight.values()]);
  }

  /**
   * Start-up: exports left `uploading` by a process that is gone (same host and its pid has ended, or
   * its lease expired) are checked against what actually reached the server. A file there byte for
   * byte is recorded as uploaded; otherwise the claim is released so the next delivery uploads it.
   * Either way the dead upload's temporary files are removed. Deliveries of the same export arriving
   * meanwhile wait for this instead of racing it.
   */
  async reconcileAbandoned(
    options: { signal?: AbortSignal } = {},
  ): Promise<{ checked: number; recorded: number; released: number }> {
    const { ledger, logger } = this.options;
    const result = { checked: 0, recorded: 0, released: 0 };
    const abandoned = (await ledger.list({ status: ['uploading'], limit: 100_000 })).filter(
      (record) =>
        record.leaseOwner !== null &&
        record.leaseOwner !== this.owner &&
        ownerIsGone(record.leaseOwner, record.leaseExpiresAt, this.owner),
    );
    for (const record of abandoned) {
      if (options.signal?.aborted) break;
      const target = this.options.targets.get(record.target);
      if (!target || this.inflight.has(record.idempotencyKey)) continue;
      const work = reconcileOne(record, target, {
        ledger,
        logger,
        owner: this.owner,
        leaseMs: this.leaseMs,
        signal: options.signal,
      });
      this.inflight.set(
        record.idempotencyKey,
        work.then((outcome) => outcome.reply),
      );
      try {
        const outcome = await work;
        if (outcome.kind === 'skipped') continue;
        result.checked++;
        if (outcome.kind === 'recorded') result.recorded++;
        else result.released++;
      } finally {
        this.inflight.delete(record.idempotencyKey);
      }
    }
    if (abandoned.length > 0) logger.info(result, 'start-up reconciliation of uploads interrupted by a dead process');
    return result;
  }

  /**
   * An operator's retry of a transient failure (retry.ts), under this process's lease owner and in-flight
   * guard: a delivery of the same export arriving meanwhile waits for it instead of racing it.
   */
  async retryKept(request: RetryRequest, consoleLedger: ConsoleLedger): Promise<RetryResult> {
    const { ledger, targets, logger } = this.options;
    const record = await ledger.get(request.exportId);
    const key = record?.idempotencyKey;
    if (key !== undefined && this.inflight.has(key))
      throw new ConsoleActionRefused('conflict', `Export ${request.exportId} is being uploaded right now`);
    const context = { ledger, console: consoleLedger, targets, logger, owner: this.owner, leaseMs: this.leaseMs };
    const work = retryKeptUpload(context, request).then((result) => {
      this.count(result.reply.outcome, record?.target);
      return result;
    });
    if (key === undefined) return work;
    const answer = work.then(
      (result) => result.reply,
      () => transientReply(`Export ${request.exportId} is being retried from the console; Rossum will retry`),
    );
    this.inflight.set(key, answer);
    return work.finally(() => this.inflight.delete(key));
  }

  /** Exports a prepared delivery (or answers its refusal): claim → upload → record → answer. */
  async handle(preparation: ExportPreparation, options: HandleOptions = {}): Promise<ExportReply> {
    const started = performance.now();
    const reply = await this.handleUnmeasured(preparation, options);
    this.options.metrics?.exportDuration.observe({ outcome: reply.outcome }, (performance.now() - started) / 1000);
    return reply;
  }

  private async handleUnmeasured(preparation: ExportPreparation, options: HandleOptions): Promise<ExportReply> {
    const { logger } = this.options;
    if (preparation.kind === 'refused') {
      logger
        .child({ annotationId: preparation.annotationId, requestId: preparation.requestId })
        .warn({ code: preparation.code }, `export refused: ${preparation.message}`);
      this.count(preparation.reply.outcome, undefined);
      return preparation.reply;
    }
    const target = this.options.targets.get(preparation.prepared.targetName);
    if (!target) {
      // Preparing checked the name against the same targets; this would be a wiring bug.
      const reply = transientReply(`Target "${preparation.prepared.targetName}" is not available in this process`);
      this.count(reply.outcome, undefined);
      return reply;
    }
    const prepared: Prepared = { ...preparation.prepared, target };
    const log = logger.child({ annotationId: prepared.annotationId, requestId: prepared.requestId });
    if (prepared.batch) {
      const batch = { ...prepared, batch: prepared.batch };
      const reply = await collectIntoBatch(batch, target, this.options.ledger, log, this.options.onBatchClosed);
      this.count(reply.outcome, target.name);
      return reply;
    }

    const existing = this.inflight.get(prepared.idempotencyKey);
    if (existing) {
      log.info(
        { target: prepared.target.name },
        'duplicate delivery while the first is in flight: waiting for its answer',
      );
      const first = await existing;
      await this.options.ledger
        .recordDuplicate(prepared.idempotencyKey, prepared.requestId)
        .catch((error: unknown) =>
          log.warn({ err: describeError(error) }, 'could not record the request_id of a duplicate delivery'),
        );
      this.count('duplicate', prepared.target.name);
      return { ...first, outcome: first.statusCode === 200 ? 'duplicate' : first.outcome };
    }
    const work = this.exportOnce(prepared, log, options).finally(() => this.inflight.delete(prepared.idempotencyKey));
    this.inflight.set(prepared.idempotencyKey, work);
    const reply = await work;
    this.count(reply.outcome, prepared.target.name);
    return reply;
  }

  private async exportOnce(firstPrepared: Prepared, log: Logger, options: HandleOptions): Promise<ExportReply> {
    const { ledger } = this.options;
    let prepared = await numberExport(firstPrepared, ledger);
    const claimInput = {
      idempotencyKey: prepared.idempotencyKey,
      annotationId: prepared.annotationId,
      requestId: prepared.requestId,
      mappingName: prepared.mappingName,
      mappingHash: prepared.mappingHash,
      target: prepared.target.name,
      plannedPath: prepared.file.fileName,
      sha256: prepared.sha256,
      bytes: prepared.file.bytes.length,
      owner: this.owner,
      leaseMs: this.leaseMs,
      // What the acks process correlates ERP answers by and reports back to.
      documentRef: prepared.documentRef,
      rossumBaseUrl: prepared.rossumBaseUrl,
      receivedAt: prepared.renderedAt,
      sequenceNumber: prepared.sequenceNumber,
      documentPath: prepared.document ? documentPath(prepared.file.fileName, prepared.document) : null,
    };
    let claim = await ledger.claim(claimInput);
    const holder = claim.outcome === 'in_progress' ? claim.record.leaseOwner : null;
    if (holder !== null && ownerIsGone(holder, claim.record.leaseExpiresAt, this.owner)) {
      // The uploader died (its lease has not run out yet): release its claim and take over, which checks the server first.
      log.info(
        { exportId: claim.record.id, deadOwner: holder },
        'the process uploading this export has ended: taking over',
      );
      await ledger
        .fail(claim.record.id, holder, {
          code: 'OWNER_DIED',
          message: `process ${holder} ended while uploading`,
          permanent: false,
          reply: { statusCode: 503, body: { messages: [] } },
        })
        .catch(() => undefined);
      claim = await ledger.claim(claimInput);
    }

    if (claim.outcome === 'done') {
      log.info(
        { exportId: claim.record.id, status: claim.record.status },
        'duplicate delivery: answering as the first time',
      );
      return replayed(claim.record);
    }
    if (claim.outcome === 'in_progress') {
      log.info(
        { exportId: claim.record.id },
        'duplicate delivery: another worker is uploading, waiting for its answer',
      );
      return waitForOther(ledger, claim.record.id, prepared.target.description, this.duplicatePollMs, options.signal);
    }

    const record = claim.record;
    if (claim.takeover && prepared.renderAt && record.createdAt !== prepared.renderedAt) {
      // A later attempt of an export whose mapping reads the clock: upload what the first attempt rendered.
      const file = prepared.renderAt(new Date(record.createdAt));
      prepared = {
        ...prepared,
        file,
        sha256: createHash('sha256').update(file.bytes).digest('hex'),
        renderedAt: record.createdAt,
      };
    }
    const opOptions = {
      ...(options.signal ? { signal: options.signal } : {}),
      ...(prepared.credentials ? { credentials: prepared.credentials } : {}),
    };
    try {
      if (claim.takeover) {
        const reconciled = await reconcileWithServer(record, prepared, opOptions);
        if (reconciled) {
          log.info(
            { exportId: record.id, remotePath: reconciled },
            'an earlier attempt had already uploaded this file: recorded without uploading again',
          );
          const reply = {
            ...successReply(prepared, reconciled),
            exportId: record.id,
            mappingName: prepared.mappingName,
          };
          await removeLeftoverTemps(
            prepared.target,
            prepared.file.fileName,
            opOptions,
            log.child({ exportId: record.id }),
          );
          await ledger.complete(record.id, this.owner, { remotePath: reconciled, reply: stored(reply) });
          return reply;
        }
      }
      // The scan first: an ERP polling for the data file never sees it without its document.
      const placed = prepared.document
        ? await placeDocument({
            document: prepared.document,
            dataFileName: prepared.file.fileName,
            onExisting: prepared.onExisting,
            record,
            takeover: claim.takeover,
            target: prepared.target,
            ledger,
            owner: this.owner,
            fetchSettings: this.options.documents ?? {},
            opOptions,
            log,
          })
        : undefined;
      const result = await prepared.target.upload(
        { relativePath: prepared.file.fileName, bytes: prepared.file.bytes, onExisting: prepared.onExisting },
        opOptions,
      );
      const reply = {
        ...successReply(prepared, result.remotePath, placed),
        exportId: record.id,
        mappingName: prepared.mappingName,
      };
      // An earlier attempt, or a try within this upload, may have left a temp file behind. Swept before the
      // ledger records the upload: a process killed in between leaves the export `uploading`, and the next
      // start's reconciliation sweeps again (after the record, nothing would).
      if (claim.takeover || result.mayHaveLeftTemps)
        await removeLeftoverTemps(
          prepared.target,
          prepared.file.fileName,
          opOptions,
          log.child({ exportId: record.id }),
        );
      await ledger.complete(record.id, this.owner, { remotePath: result.remotePath, reply: stored(reply) });
      log.info(
        { exportId: record.id, target: prepared.target.name, remotePath: result.remotePath, bytes: result.bytes },
        'exported',
      );
      return reply;
    } catch (error) {
      const permanent = isBridgeError(error) && error.permanent;
      const atDeadline = !permanent && options.signal?.aborted === true;
      const prefix = atDeadline
        ? `Export to ${prepared.target.description} did not finish within the ${Math.round((options.deadlineMs ?? 0) / 1000)} s deadline; Rossum will retry: `
        : `Export to ${prepared.target.description} failed: `;
      const reply = errorReply(error, atDeadline ? 'deadline' : permanent ? 'failed' : 'transient_error', prefix);
      try {
        await ledger.fail(record.id, this.owner, {
          code: codeOf(error),
          message: describeError(error),
          permanent,
          reply: stored(reply),
          // For the console's retry: exactly these bytes, never a re-render (bounded: the ledger is no file store).
          ...(prepared.file.bytes.length <= KEEP_FOR_RETRY_MAX_BYTES ? { keep: prepared.file.bytes } : {}),
        });
      } catch (ledgerError) {
        log.error(
          { exportId: record.id, err: describeError(ledgerError) },
          'could not record the failure in the ledger',
        );
      }
      log.warn({ exportId: record.id, code: codeOf(error), permanent }, `export failed: ${describeError(error)}`);
      return reply;
    }
  }

  private count(outcome: ExportOutcome, target: string | undefined): void {
    this.options.metrics?.exports.inc({ outcome, target: target ?? '' });
  }
}

/** A prepared export with its target's connections (they live on this thread). */
interface Prepared extends Omit<PreparedExport, 'targetName'> {
  target: Target;
}
