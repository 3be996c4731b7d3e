import { createHash, randomBytes } from 'node:crypto';
import { setTimeout as wait } from 'node:timers/promises';
import { hostname } from 'node:os';
import { describeError, isBridgeError, type ErrorCode } from '../errors.ts';
import type { Ledger, ExportRecord, StoredReply } from '../ledger/index.ts';
import type { Logger, BridgeMetrics, ExportOutcome } from '../observability/index.ts';
import type { HookCredentials, OperationOptions, Target } from '../transport/index.ts';
import type { ExportPreparation, PreparedExport } from './prepare.ts';
import { documentPath, placeDocument, type DocumentFetchSettings, type PlacedDocument } from './document.ts';
import { numberExport } from './numbering.ts';
import { errorReply, limitMessage as limit, transientReply, type ExportReply, type RossumMessage } from './replies.ts';

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
      const work = this.reconcileOne(record, target, options.signal);
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

  private async reconcileOne(
    dead: ExportRecord,
    target: Target,
    signal: AbortSignal | undefined,
  ): Promise<{ kind: 'skipped' | 'recorded' | 'released'; reply: ExportReply }> {
    const { ledger, logger } = this.options;
    const log = logger.child({ annotationId: dead.annotationId, exportId: dead.id });
    const retry = transientReply(
      `Export ${dead.id} was interrupted when the bridge stopped; Rossum's retry will upload it or find it on ${target.description}`,
    );
    // Releasing under the dead owner's name is a compare-and-set: only one process wins it.
    try {
      await ledger.fail(dead.id, dead.leaseOwner as string, {
        code: 'OWNER_DIED',
        message: `process ${dead.leaseOwner} ended while uploading`,
        permanent: false,
        reply: stored(retry),
      });
    } catch {
      return { kind: 'skipped', reply: retry };
    }
    const claim = await ledger.claim({
      idempotencyKey: dead.idempotencyKey,
      annotationId: dead.annotationId,
      requestId: 'start-up reconciliation',
      mappingName: dead.mappingName,
      mappingHash: dead.mappingHash,
      target: dead.target,
      plannedPath: dead.plannedPath,
      sha256: dead.sha256,
      bytes: dead.bytes,
      owner: this.owner,
      leaseMs: this.leaseMs,
    });
    if (claim.outcome !== 'claimed')
      return { kind: 'skipped', reply: claim.outcome === 'done' ? replayed(claim.record) : retry };
    const opOptions = signal ? { signal } : {};
    try {
      const found = await this.findOnServer(target, dead, opOptions);
      const leftovers = (await target.removeLeftoverTemps?.(dead.plannedPath, opOptions).catch(() => [])) ?? [];
      if (leftovers.length > 0) log.info({ leftovers }, 'removed temporary files of the interrupted upload');
      if (found) {
        const reply: ExportReply = {
          statusCode: 200,
          outcome: 'exported',
          body: {
            messages: [
              {
                type: 'info',
                content: limit(
                  `Exported ${found} to ${target.description} (mapping ${dead.mappingName}, ${dead.bytes} bytes)`,
                ),
              },
            ],
          },
        };
        await ledger.complete(dead.id, this.owner, { remotePath: found, reply: stored(reply) });
        log.info({ remotePath: found }, 'the interrupted upload had reached the server: recorded as uploaded');
        return { kind: 'recorded', reply };
      }
      await ledger.fail(dead.id, this.owner, {
        code: 'UPLOAD_INTERRUPTED',
        message: 'the upload did not reach the server before the process ended',
        permanent: false,
        reply: stored(retry),
      });
      log.info('the interrupted upload had not reached the server: the next delivery uploads it');
      return { kind: 'released', reply: retry };
    } catch (error) {
      await ledger
        .fail(dead.id, this.owner, {
          code: codeOf(error),
          message: describeError(error),
          permanent: false,
          reply: stored(retry),
        })
        .catch(() => undefined);
      log.warn(
        { code: codeOf(error) },
        `could not check the interrupted upload on the server (the next delivery will): ${describeError(error)}`,
      );
      return { kind: 'released', reply: retry };
    }
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

    const existing = this.inflight.get(prepared.idempotencyKey);
    if (existing) {
      log.info(
        { target: prepared.target.name },
        'duplicate delivery while the first is in flight: waiting for its answer',
      );
      const first = await existing;
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
      return this.waitForOther(claim.record.id, prepared, options.signal);
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
        const reconciled = await this.reconcile(record, prepared, opOptions);
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
          await ledger.complete(record.id, this.owner, { remotePath: reconciled, reply: stored(reply) });
          await this.removeLeftovers(prepared, record.id, opOptions, log);
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
      await ledger.complete(record.id, this.owner, { remotePath: result.remotePath, reply: stored(reply) });
      log.info(
        { exportId: record.id, target: prepared.target.name, remotePath: result.remotePath, bytes: result.bytes },
        'exported',
      );
      if (claim.takeover) await this.removeLeftovers(prepared, record.id, opOptions, log);
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

  /**
   * An earlier attempt that lost its connection mid-upload could not remove its temporary file. Done
   * after this attempt succeeded, when the server is known to answer; failing here changes nothing.
   */
  private async removeLeftovers(
    prepared: Prepared,
    exportId: number,
    opOptions: OperationOptions,
    log: Logger,
  ): Promise<void> {
    try {
      const leftovers = (await prepared.target.removeLeftoverTemps?.(prepared.file.fileName, opOptions)) ?? [];
      if (leftovers.length > 0) log.info({ exportId, leftovers }, 'removed temporary files of an earlier attempt');
    } catch (error) {
      log.warn({ exportId, err: describeError(error) }, 'could not remove temporary files of an earlier attempt');
    }
  }

  /** After a crash or a lost answer: is the file already there, byte for byte? */
  private async reconcile(
    record: ExportRecord,
    prepared: Prepared,
    opOptions: { signal?: AbortSignal; credentials?: HookCredentials },
  ): Promise<string | null> {
    const found = await this.findOnServer(
      prepared.target,
      { remotePath: record.remotePath, plannedPath: record.plannedPath, bytes: record.bytes, sha256: record.sha256 },
      opOptions,
    );
    if (found || (record.sha256 === prepared.sha256 && record.plannedPath === prepared.file.fileName)) return found;
    return this.findOnServer(
      prepared.target,
      {
        remotePath: null,
        plannedPath: prepared.file.fileName,
        bytes: prepared.file.bytes.length,
        sha256: prepared.sha256,
      },
      opOptions,
    );
  }

  private async findOnServer(
    target: Target,
    record: Pick<ExportRecord, 'remotePath' | 'plannedPath' | 'bytes' | 'sha256'>,
    opOptions: { signal?: AbortSignal; credentials?: HookCredentials },
  ): Promise<string | null> {
    const candidates = [
      ...new Set([record.remotePath, record.plannedPath].filter((path): path is string => Boolean(path))),
    ];
    for (const path of candidates) {
      const stat = await target.stat(path, opOptions);
      if (!stat || stat.size !== record.bytes) continue;
      const bytes = await target.readFile(path, opOptions);
      if (createHash('sha256').update(bytes).digest('hex') === record.sha256) return path;
    }
    return null;
  }

  private async waitForOther(
    exportId: number,
    prepared: Prepared,
    signal: AbortSignal | undefined,
  ): Promise<ExportReply> {
    for (;;) {
      if (signal?.aborted) break;
      await sleep(this.duplicatePollMs, signal);
      const record = await this.options.ledger.get(exportId);
      if (!record) break;
      if (record.status === 'uploaded' || record.status === 'failed') return replayed(record);
      if (record.status === 'retryable') {
        return transientReply(
          `The first delivery of this export to ${prepared.target.description} failed: ${record.error ?? 'unknown error'}`,
        );
      }
      if (record.status === 'uploading' && record.leaseExpiresAt !== null && record.leaseExpiresAt < Date.now()) break;
    }
    return transientReply(
      `Export to ${prepared.target.description} is still in progress (another delivery is uploading it); Rossum will retry and get its result`,
    );
  }

  private count(outcome: ExportOutcome, target: string | undefined): void {
    this.options.metrics?.exports.inc({ outcome, target: target ?? '' });
  }
}

/** A prepared export with its target's connections (they live on this thread). */
interface Prepared extends Omit<PreparedExport, 'targetName'> {
  target: Target;
}

function successReply(prepared: Prepared, remotePath: string, placed?: PlacedDocument): ExportReply {
  const renamed = remotePath !== prepared.file.fileName ? ` (the name ${prepared.file.fileName} was taken)` : '';
  return {
    statusCode: 200,
    outcome: 'exported',
    body: {
      messages: [
        {
          type: 'info',
          content: limit(
            `Exported ${remotePath}${renamed} to ${prepared.target.description} (mapping ${prepared.mappingName}, ${prepared.file.bytes.length} bytes)`,
          ),
        },
        ...(placed?.kind === 'placed'
          ? [
              {
                type: 'info' as const,
                content: limit(`Original document uploaded first as ${placed.path} (${placed.bytes} bytes)`),
              },
            ]
          : placed?.kind === 'skipped'
            ? [{ type: 'warning' as const, content: limit(placed.warning) }]
            : []),
        // What the render changed (e.g. characters XML forbids were dropped): the operator must see it.
        ...(prepared.file.warnings ?? []).map(
          (warning): RossumMessage => ({ type: 'warning', content: limit(warning) }),
        ),
      ],
    },
  };
}

function replayed(record: ExportRecord): ExportReply {
  const reply = record.reply;
  if (!reply) return transientReply(`Export ${record.id} has no recorded answer yet`);
  if (record.ackState === 'rejected' || record.ackState === 'ack_invalid') {
    // The first answer ("Exported") is no longer the truth: the ERP refused these exact bytes.
    const verdict = record.ackState === 'rejected' ? 'rejected' : 'answered with an unreadable acknowledgement for';
    return {
      statusCode: 200,
      outcome: 'failed',
      exportId: record.id,
      mappingName: record.mappingName,
      body: {
        messages: [
          {
            type: 'error',
            content: limit(
              `The ERP ${verdict} this exact file (${record.remotePath ?? record.plannedPath}${record.ackFile ? `, ack ${record.ackFile}` : ''}); sending the same data again would not change that. Correct the data in Rossum (the note on this annotation has the ERP's reasons) and export again.`,
            ),
          },
        ],
      },
    };
  }
  return {
    statusCode: reply.statusCode === 200 ? 200 : 503,
    body: reply.body as ExportReply['body'],
    outcome: 'duplicate',
    exportId: record.id,
    mappingName: record.mappingName,
  };
}

function stored(reply: ExportReply): StoredReply {
  return { statusCode: reply.statusCode, body: reply.body };
}

function codeOf(error: unknown): ErrorCode {
  return isBridgeError(error) ? error.code : 'INTERNAL';
}

/**
 * Whether the process behind a lease owner (`host:pid:random`) is gone: its lease expired, or it ran on
 * this host and its pid has ended. An earlier life of our own pid (containers restart as pid 1) is gone too.
 */
export function ownerIsGone(owner: string, leaseExpiresAt: number | null, self: string, now = Date.now()): boolean {
  if (leaseExpiresAt !== null && leaseExpiresAt < now) return true;
  const parts = owner.split(':');
  if (parts.length < 3) return false;
  const pid = Number(parts[parts.length - 2]);
  const host = parts.slice(0, -2).join(':');
  if (host !== hostname() || !Number.isInteger(pid) || pid <= 0) return false;
  if (pid === process.pid) return owner !== self;
  try {
    process.kill(pid, 0);
    return false;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

/** Waits, or stops waiting early when the signal aborts (the caller checks `signal.aborted`). */
function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return wait(ms, undefined, signal ? { signal } : {}).catch(() => undefined);
}
