import { posix } from 'node:path';
import type {
  AckOutcome,
  AckOutcomeDetail,
  AckOutcomeKind,
  AckDelivery,
  AckState,
  AckVerdict,
  ExportState,
} from './types.ts';

/** `out/INV-1_7.xml` → name `INV-1_7.xml`, stem `INV-1_7`: what ERPs quote back in their acks. */
export function nameParts(remotePath: string): { name: string; stem: string } {
  const name = posix.basename(remotePath);
  const dot = name.lastIndexOf('.');
  return { name, stem: dot > 0 ? name.slice(0, dot) : name };
}

/**
 * What an ack does to an export, whatever ledger stores it. A verdict after a timeout or an unreadable
 * ack still counts (and says it came late); a second verdict after a first one changes nothing.
 */
export function ackTransition(
  current: ExportState,
  verdict: AckVerdict,
): { state: AckState | null; kind: AckOutcomeKind } {
  const open = current === 'uploaded' || current === 'awaiting_ack';
  const flagged = current === 'ack_timeout' || current === 'ack_invalid';
  if (!open && !flagged) return { state: null, kind: 'duplicate' };
  if (verdict === 'invalid')
    return open ? { state: 'ack_invalid', kind: 'invalid' } : { state: null, kind: 'duplicate' };
  if (verdict === 'accepted') return { state: 'accepted', kind: open ? 'accepted' : 'accepted_late' };
  return { state: 'rejected', kind: open ? 'rejected' : 'rejected_late' };
}

export interface OutcomeRow {
  id: number;
  export_id: number;
  ack_file_id: number | null;
  kind: AckOutcomeKind;
  detail: string;
  delivery: AckDelivery;
  attempts: number;
  next_attempt_at: number;
  created_at: number;
  delivered_at: number | null;
  last_error: string | null;
  last_attempt_at: number | string | null;
  result: string | null;
  note_attempted_at: number | string | null;
}

export function rowToOutcome(row: OutcomeRow): AckOutcome {
  return {
    id: row.id,
    exportId: row.export_id,
    ackFileId: row.ack_file_id,
    kind: row.kind,
    detail: JSON.parse(row.detail) as AckOutcomeDetail,
    delivery: row.delivery,
    attempts: row.attempts,
    nextAttemptAt: row.next_attempt_at,
    createdAt: row.created_at,
    deliveredAt: row.delivered_at,
    lastError: row.last_error,
    lastAttemptAt:
      row.last_attempt_at === null || row.last_attempt_at === undefined ? null : Number(row.last_attempt_at),
    result: row.result ?? null,
    noteAttempted: row.note_attempted_at !== null && row.note_attempted_at !== undefined,
  };
}

export const EMPTY_BACKLOG: Record<AckDelivery, number> = {
  pending: 0,
  delivered: 0,
  not_needed: 0,
  by_hold: 0,
  left_alone: 0,
  gone: 0,
  failed: 0,
};

/** How an outcome enters the outbox: duplicates and quiet on-time acceptances need no Rossum call. */
export function initialDelivery(
  kind: AckOutcomeKind,
  entry: { quietIfAccepted?: boolean },
  holdState: string | null,
): AckDelivery {
  if (kind === 'duplicate') return 'not_needed';
  // A held export's poll reply or release still goes through the outbox, whatever the verdict.
  if (kind === 'accepted' && entry.quietIfAccepted === true && holdState === null) return 'not_needed';
  return 'pending';
}
