import type { ExportRecord } from './types.ts';

/**
 * What a claim means when the export's row already existed (one rule for every ledger kind):
 * a live lease held by someone else → wait for them; a dead lease or a transient failure → take over;
 * an answered export (uploaded, failed for good, acknowledged) → replay its answer.
 */
export function existingClaimOutcome(
  existing: ExportRecord,
  owner: string,
  now: number,
): 'in_progress' | 'takeover' | 'done' {
  if (
    existing.status === 'uploading' &&
    existing.leaseExpiresAt !== null &&
    existing.leaseExpiresAt > now &&
    existing.leaseOwner !== owner
  )
    return 'in_progress';
  if (existing.status === 'uploading' || existing.status === 'retryable') return 'takeover';
  return 'done';
}
