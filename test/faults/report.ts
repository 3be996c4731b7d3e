import type { ExitInfo } from '../support/fault-serve.ts';
import type { ErpVerdict, FaultKind, FaultProfile } from './schedule.ts';

/** The fault stream's result: one table computed from the ledger, the folders and the simulator's record. */

export interface FaultEvent {
  kind: FaultKind;
  at: number;
  detail: Record<string, unknown>;
}

export interface FaultReport {
  profile: FaultProfile;
  durationMs: number;
  deliveries: number;
  attempts: number;
  faults: FaultEvent[];
  annotations: number;
  exportedExactlyOnce: number;
  /** Re-deliveries of bytes the ERP had rejected, answered failed_export with the ERP's verdict (the truth). */
  refusedRejectedRedeliveries: number;
  failedWithMessage: number;
  failedWithoutMessage: number;
  retriedByOperator: number;
  lost: string[];
  duplicated: string[];
  partialSeen: string[];
  /** Annotations whose mapping puts the original PDF in place first (each must end with its complete pair). */
  scans: number;
  /** Every download of a PDF from the simulated Rossum, with the fault it met (status503, hang, slow, cut) if any. */
  documentDownloads: Array<{ documentId: number; fault: string | null }>;
  leftoverTemps: string[];
  /** Leftover temps whose cleanup the bridge never tried (must be none). */
  unexplainedTemps: string[];
  /** What start-up reconciliation found after bridge kills (from the bridge's own log). */
  reconciled: { checked: number; recorded: number; released: number };
  /** Attempts that got no HTTP answer although the bridge was up (timeouts, resets). */
  unanswered: string[];
  /** Requests reset while SIGTERM closed idle keep-alive connections (sent, not yet read by the bridge). */
  resetDuringStop: string[];
  /** Attempts answered 5xx other than 503, or 503 without a message. */
  badReplies: string[];
  sigtermExitCodes: Array<number | null>;
  ledgerMismatches: string[];
  acks: AckReport;
  outputPath: string;
  ledgerPath: string;
  inboundDir: string;
  sftpPassword: string;
  rossumPassword: string;
  privateKeyLine: string;
}

/** The acknowledgement loop's share of the table. */
export interface AckReport {
  /** Exported files the ERP noticed, by its decision. */
  verdicts: Record<ErpVerdict, number>;
  /** Ack files the ERP wrote (answers + noise naming no export), and how many of them slowly under the final name. */
  filesWritten: number;
  noise: number;
  slowWrites: number;
  /** Ack files recorded once in the ledger and archived once, in the folder their disposition calls for. */
  processedOnce: number;
  notProcessedOnce: string[];
  /** Ack files that are not in processed/, unmatched/ or invalid/ at the end. */
  lost: string[];
  rejectedFlaggedOnce: number;
  silentFlaggedOnce: number;
  acceptedUntouched: number;
  /** Any annotation with more than one note or failed_export change from the acks process. */
  doubleFlags: string[];
  /** Ledger state, outcomes or Rossum's record disagreeing with what the ERP said. */
  wrong: string[];
  /** Outcomes not delivered (or not needed) at the end. */
  undelivered: string[];
  /** API calls the simulator answered 429/503 on purpose. */
  injectedApiReplies: number;
  /** ERP wrote the ack → the ledger recorded it. */
  latencyMs: { median: number; max: number };
  /** Archived files whose move the ledger never heard of (the process died between the move and the record). */
  archiveUnrecorded: number;
  settleMs: number;
  /** Exits of the acks process nobody asked for (each restarted, as a supervisor would). */
  crashes: string[];
  exit: ExitInfo | null;
  outputPath: string;
}

export function formatTable(report: FaultReport): string {
  const { acks } = report;
  const count = (kind: FaultEvent['kind']): number => report.faults.filter((fault) => fault.kind === kind).length;
  const rows: Array<[string, string | number]> = [
    ['profile / seed', `${report.profile.name} / ${report.profile.seed}`],
    ['replay this run', `FAULT_PROFILE=${report.profile.name} FAULT_SEED=${report.profile.seed} npm run test:faults`],
    ['annotations', report.annotations],
    ['deliveries (incl. duplicates)', report.deliveries],
    ['HTTP attempts (incl. Rossum retries)', report.attempts],
    [
      'faults injected',
      `${report.faults.length} (sshd SIGKILL ${count('sshdKill')}, bridge SIGKILL mid-upload ${count('bridgeKill')}, network stall ${count('stall')}, read-only folders ${count('readOnly')}, SIGTERM in flight ${count('sigterm')}, acks SIGKILL mid-batch ${count('acksKill')}, Rossum API 429/503 window ${count('rossumApi')} (${report.acks.injectedApiReplies} calls refused), Rossum token expiry ${count('tokenExpiry')})`,
    ],
    ['exported exactly once', report.exportedExactlyOnce],
    [
      '  of which with their original PDF put in place first',
      `${report.scans} (${report.documentDownloads.length} downloads, faulted: ${downloadFaults(report)})`,
    ],
    ['  of which re-sent after the ERP rejected them, refused with its verdict', report.refusedRejectedRedeliveries],
    ['failed with a message in Rossum (then retried by the operator)', report.failedWithMessage],
    ['failed without a message', report.failedWithoutMessage],
    ['LOST (must be 0)', report.lost.length],
    ['DUPLICATED (must be 0)', report.duplicated.length],
    ['PARTIAL FILES SEEN BY THE OBSERVER (must be 0)', report.partialSeen.length],
    [
      'leftover temp files at the end (hidden .part names)',
      `${report.leftoverTemps.length} (cleanup never attempted: ${report.unexplainedTemps.length})`,
    ],
    [
      'interrupted uploads reconciled at start-up',
      `${report.reconciled.checked} (found on the server ${report.reconciled.recorded}, re-uploaded on the next delivery ${report.reconciled.released})`,
    ],
    ['attempts unanswered while the bridge was up', report.unanswered.length],
    ['unread requests reset by the graceful stop (Rossum retried)', report.resetDuringStop.length],
    ['5xx replies other than 503 + message', report.badReplies.length],
    ['ledger rows disagreeing with the folder', report.ledgerMismatches.length],
    ['SIGTERM exit codes', report.sigtermExitCodes.join(', ') || '-'],
    ['— acknowledgements (acks process)', ''],
    [
      'ERP verdicts (accept / reject / no answer)',
      `${acks.verdicts.accept} / ${acks.verdicts.reject} / ${acks.verdicts.silent}`,
    ],
    [
      'ack files written by the ERP',
      `${acks.filesWritten} (naming no export ${acks.noise}, written slowly under the final name ${acks.slowWrites})`,
    ],
    ['acks processed exactly once (recorded once, archived once)', acks.processedOnce],
    [
      'rejections flagged in Rossum exactly once (note + status)',
      `${acks.rejectedFlaggedOnce} of ${acks.verdicts.reject}`,
    ],
    ['no answer flagged in Rossum exactly once (deadline)', `${acks.silentFlaggedOnce} of ${acks.verdicts.silent}`],
    ['accepted, Rossum left alone', `${acks.acceptedUntouched} of ${acks.verdicts.accept}`],
    ['ACK FILES LOST (must be 0)', acks.lost.length],
    ['DOUBLE FLAGS (must be 0)', acks.doubleFlags.length],
    ['acks not processed exactly once (must be 0)', acks.notProcessedOnce.length],
    ['ledger/Rossum disagreeing with the ERP (must be 0)', acks.wrong.length],
    ['outcomes not delivered to Rossum (must be 0)', acks.undelivered.length],
    ['ACKS PROCESS CRASHES (must be 0)', acks.crashes.length],
    [
      'ERP wrote → ledger recorded (median / max)',
      `${(acks.latencyMs.median / 1000).toFixed(1)} s / ${(acks.latencyMs.max / 1000).toFixed(1)} s (deadline ${(report.profile.ackDeadlineMs / 1000).toFixed(0)} s)`,
    ],
    ['archived files the ledger did not record (killed between move and record)', acks.archiveUnrecorded],
    [
      'acks settled after the stream / final SIGTERM exit',
      `${(acks.settleMs / 1000).toFixed(1)} s / ${acks.exit ? (acks.exit.code ?? acks.exit.signal) : '-'}`,
    ],
    ['duration', `${(report.durationMs / 1000).toFixed(1)} s`],
  ];
  const width = Math.max(...rows.map(([label]) => label.length));
  return [
    '',
    `fault stream (${report.profile.name})`,
    ...rows.map(([label, value]) => `  ${label.padEnd(width)}  ${value}`),
    '',
  ].join('\n');
}

function downloadFaults(report: FaultReport): string {
  const counts = new Map<string, number>();
  for (const { fault } of report.documentDownloads) if (fault) counts.set(fault, (counts.get(fault) ?? 0) + 1);
  return [...counts].map(([fault, count]) => `${fault} ${count}`).join(', ') || 'none';
}
