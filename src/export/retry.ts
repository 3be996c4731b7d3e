import { createHash } from 'node:crypto';
import { describeError, isBridgeError } from '../errors.ts';
import { ConsoleActionRefused, type ConsoleLedger, type ExportRecord, type Ledger } from '../ledger/index.ts';
import type { OnExisting } from '../mapping/index.ts';
import type { Logger } from '../observability/index.ts';
import type { Target } from '../transport/index.ts';
import { codeOf, errorReply, exportedReply, stored, type ExportReply } from './replies.ts';
import { findOnServer } from './server-check.ts';
import { removeLeftoverTemps } from './leftovers.ts';

export interface RetryRequest {
  exportId: number;
  /** Who asked (the console user), recorded in the ledger. */
  actor: string;
  /** The mapping's policy for a name already taken on the target. */
  onExisting: OnExisting;
}

export type RetryResult =
  | { outcome: 'uploaded'; remotePath: string; alreadyThere: boolean; reply: ExportReply }
  | { outcome: 'failed'; permanent: boolean; message: string; reply: ExportReply };

export interface RetryContext {
  ledger: Ledger;
  console: ConsoleLedger;
  targets: ReadonlyMap<string, Target>;
  logger: Logger;
  owner: string;
  leaseMs: number;
}

/**
 * An operator's retry of a transient upload failure. It uploads the bytes the ledger kept when the
 * upload failed — never a re-render, whose result could differ (a changed mapping, a clock, a
 * sequence number) — and only after checking they still hash to the sha256 the export recorded.
 * Then it is recorded like any upload (which frees the kept bytes), or as a failure again.
 * Refusals (ConsoleActionRefused) change nothing.
 */
export async function retryKeptUpload(context: RetryContext, request: RetryRequest): Promise<RetryResult> {
  const { ledger, console: consoleLedger, owner, leaseMs } = context;
  const record = await ledger.get(request.exportId);
  if (!record) throw new ConsoleActionRefused('not_found', `Export ${request.exportId} does not exist`);
  const target = context.targets.get(record.target);
  if (!target)
    throw new ConsoleActionRefused('conflict', `Target "${record.target}" is not configured in this process`);
  if (record.documentPath !== null && record.documentSha256 === null)
    throw new ConsoleActionRefused(
      'conflict',
      `Export ${record.id} uploads the original document first, which the ledger does not keep; Rossum's next delivery (or exporting the annotation again) uploads the pair`,
    );
  const kept = await consoleLedger.keptPayload(record.id);
  const keptSha256 = kept ? createHash('sha256').update(kept.content).digest('hex') : null;
  if (kept && (keptSha256 !== record.sha256 || kept.sha256 !== record.sha256))
    throw new ConsoleActionRefused(
      'conflict',
      `The kept file of export ${record.id} does not hash to the sha256 the ledger recorded (${record.sha256}); it is not uploaded`,
    );
  // Refused here when the export is no longer retryable or has no kept bytes.
  const claimed = await consoleLedger.claimForRetry(record.id, { owner, leaseMs, actor: request.actor });
  const content = kept?.content as Buffer;
  const log = context.logger.child({ exportId: claimed.id, annotationId: claimed.annotationId });
  const opOptions = { signal: AbortSignal.timeout(Math.max(1_000, leaseMs - 1_000)) };
  try {
    // An earlier attempt may have reached the server after all (its answer was lost): record it, upload nothing.
    const found = await findOnServer(target, claimed, opOptions);
    const remotePath =
      found ??
      (
        await target.upload(
          { relativePath: claimed.plannedPath, bytes: content, onExisting: request.onExisting },
          opOptions,
        )
      ).remotePath;
    const reply = uploadedReply(claimed, remotePath, target.description);
    await removeLeftoverTemps(target, claimed.plannedPath, opOptions, log);
    await ledger.complete(claimed.id, owner, { remotePath, reply: stored(reply) });
    log.info({ remotePath, by: request.actor, alreadyThere: found !== null }, 'console retry: uploaded');
    return { outcome: 'uploaded', remotePath, alreadyThere: found !== null, reply };
  } catch (error) {
    const permanent = isBridgeError(error) && error.permanent;
    const reply = errorReply(
      error,
      permanent ? 'failed' : 'transient_error',
      `Export to ${target.description} failed: `,
    );
    await ledger
      .fail(claimed.id, owner, {
        code: codeOf(error),
        message: describeError(error),
        permanent,
        reply: stored(reply),
        keep: content,
      })
      .catch((ledgerError: unknown) =>
        log.error({ err: describeError(ledgerError) }, 'console retry: could not record the failure'),
      );
    log.warn({ code: codeOf(error), permanent, by: request.actor }, `console retry failed: ${describeError(error)}`);
    return { outcome: 'failed', permanent, message: describeError(error), reply };
  }
}

function uploadedReply(record: ExportRecord, remotePath: string, where: string): ExportReply {
  const renamed = remotePath !== record.plannedPath ? ` (the name ${record.plannedPath} was taken)` : '';
  return {
    ...exportedReply(
      `Exported ${remotePath}${renamed} to ${where} (mapping ${record.mappingName}, ${record.bytes} bytes; uploaded again from the operator console)`,
    ),
    exportId: record.id,
    mappingName: record.mappingName,
  };
}
