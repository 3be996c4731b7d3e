import { describeError } from '../errors.ts';
import type { ExportRecord, Ledger } from '../ledger/index.ts';
import type { Logger } from '../observability/index.ts';
import type { Target } from '../transport/index.ts';
import { codeOf, exportedReply, replayed, stored, transientReply, type ExportReply } from './replies.ts';
import { findOnServer } from './server-check.ts';
import { removeLeftoverTemps } from './leftovers.ts';

export interface ReconcileContext {
  ledger: Ledger;
  logger: Logger;
  /** The lease owner of this process, which takes the dead export over. */
  owner: string;
  leaseMs: number;
  signal: AbortSignal | undefined;
}

/**
 * One export left `uploading` by a dead process: released under the dead owner's name (only one process
 * wins that), claimed, then recorded as uploaded when its file is on the server byte for byte, or released
 * for the next delivery to upload; the dead upload's temporary files are removed either way.
 */
export async function reconcileOne(
  dead: ExportRecord,
  target: Target,
  { ledger, logger, owner, leaseMs, signal }: ReconcileContext,
): Promise<{ kind: 'skipped' | 'recorded' | 'released'; reply: ExportReply }> {
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
    owner: owner,
    leaseMs: leaseMs,
  });
  if (claim.outcome !== 'claimed')
    return { kind: 'skipped', reply: claim.outcome === 'done' ? replayed(claim.record) : retry };
  const opOptions = signal ? { signal } : {};
  try {
    const found = await findOnServer(target, dead, opOptions);
    await removeLeftoverTemps(target, dead.plannedPath, opOptions, log, 'the interrupted upload');
    if (found) {
      const reply = exportedReply(
        `Exported ${found} to ${target.description} (mapping ${dead.mappingName}, ${dead.bytes} bytes)`,
      );
      await ledger.complete(dead.id, owner, { remotePath: found, reply: stored(reply) });
      log.info({ remotePath: found }, 'the interrupted upload had reached the server: recorded as uploaded');
      return { kind: 'recorded', reply };
    }
    await ledger.fail(dead.id, owner, {
      code: 'UPLOAD_INTERRUPTED',
      message: 'the upload did not reach the server before the process ended',
      permanent: false,
      reply: stored(retry),
    });
    log.info('the interrupted upload had not reached the server: the next delivery uploads it');
    return { kind: 'released', reply: retry };
  } catch (error) {
    await ledger
      .fail(dead.id, owner, {
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
