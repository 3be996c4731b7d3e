import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { RossumSimulator, SimulatedAnnotation } from '../support/rossum-simulator.ts';
import type { Attempt } from './deliveries.ts';
import { FINAL_NAME, SCAN_NAME, TEMP_NAME } from './documents.ts';
import type { ServeWindows } from './injectors.ts';
import type { LedgerProbe } from './ledger-probe.ts';
import type { FaultReport } from './report.ts';
import { ROSSUM_TIMEOUT_S } from './rig.ts';
import type { ErpVerdict } from './schedule.ts';

export type ExportFindings = Pick<
  FaultReport,
  | 'exportedExactlyOnce'
  | 'refusedRejectedRedeliveries'
  | 'lost'
  | 'duplicated'
  | 'leftoverTemps'
  | 'unexplainedTemps'
  | 'reconciled'
  | 'unanswered'
  | 'resetDuringStop'
  | 'badReplies'
  | 'ledgerMismatches'
>;

/** The status Rossum's own export flow gave the annotation last (API changes by the acks process aside). */
export function exportStatus(annotation: SimulatedAnnotation): string {
  return annotation.history.filter((change) => change.by === 'export').at(-1)?.status ?? annotation.status;
}

/**
 * The upload side's end state: each document exactly once and complete in the inbound folder, the ledger
 * agreeing, Rossum told the truth; every leftover temp file and every failed webhook attempt explained
 * (by the bridge's own log, or by a window in which the bridge was down on purpose).
 */
export function analyseExports(input: {
  inboundDir: string;
  /** The serve processes' log (JSON lines). */
  serveOutputPath: string;
  probe: LedgerProbe;
  expected: ReadonlyMap<number, Buffer>;
  /** Annotation id → its original PDF, for the annotations whose mapping uploads it. */
  scans: ReadonlyMap<number, Buffer>;
  verdicts: ReadonlyMap<number, ErpVerdict>;
  simulator: RossumSimulator;
  attempts: Attempt[];
  windows: ServeWindows;
}): ExportFindings {
  const files = readdirSync(input.inboundDir);
  const output = readFileSync(input.serveOutputPath, 'utf8');
  return {
    ...checkFiles(input, files),
    ...explainTemps(files, output),
    reconciled: reconciliations(output),
    ...explainAttempts(input.attempts, input.windows),
  };
}

function checkFiles(
  input: Parameters<typeof analyseExports>[0],
  files: string[],
): Pick<
  ExportFindings,
  'exportedExactlyOnce' | 'refusedRejectedRedeliveries' | 'lost' | 'duplicated' | 'ledgerMismatches'
> {
  const { simulator } = input;
  const byAnnotation = new Map<number, string[]>();
  const scansByAnnotation = new Map<number, string[]>();
  for (const name of files) {
    const scan = SCAN_NAME.exec(name);
    const match = scan ?? FINAL_NAME.exec(name);
    if (!match) continue;
    const id = Number(match[1]);
    const into = scan ? scansByAnnotation : byAnnotation;
    into.set(id, [...(into.get(id) ?? []), name]);
  }
  const rows = input.probe.exports();
  const lost: string[] = [];
  const duplicated: string[] = [];
  const ledgerMismatches: string[] = [];
  let exportedExactlyOnce = 0;
  let refusedRejectedRedeliveries = 0;
  for (const [id, want] of input.expected) {
    const names = byAnnotation.get(id) ?? [];
    const annotation = simulator.annotation(id);
    const idRows = rows.filter((row) => row.annotation_id === id);
    if (names.length > 1) duplicated.push(`${id}: ${names.join(', ')}`);
    const complete = names.filter((name) => readFileSync(join(input.inboundDir, name)).equals(want));
    // A re-delivery (late duplicate, operator retry) of bytes the ERP had already rejected is refused
    // with the ERP's verdict: failed_export is then the truth, and the file was still exported once.
    const refusedAsRejected =
      input.verdicts.get(id) === 'reject' &&
      exportStatus(annotation) === 'failed_export' &&
      annotation.messages.some((m) => m.type === 'error' && m.content.startsWith('The ERP rejected this exact file'));
    if (refusedAsRejected) refusedRejectedRedeliveries++;
    if (complete.length === 0) lost.push(`${id}: Rossum ${annotation.status}, no complete file on the server`);
    else if (exportStatus(annotation) !== 'exported' && !refusedAsRejected)
      lost.push(`${id}: file on the server but Rossum ${exportStatus(annotation)}`);
    if (idRows.length !== 1 || idRows[0]!.status !== 'uploaded' || !names.includes(idRows[0]!.remote_path ?? '')) {
      ledgerMismatches.push(
        `${id}: ledger ${JSON.stringify(idRows.map((row) => [row.status, row.remote_path]))}, files ${JSON.stringify(names)}`,
      );
    }
    // The pair: exactly one complete original document beside the data file, recorded in the ledger.
    const scanWanted = input.scans.get(id);
    const scanNames = scansByAnnotation.get(id) ?? [];
    const pairComplete =
      scanWanted === undefined
        ? scanNames.length === 0
        : scanNames.length === 1 &&
          readFileSync(join(input.inboundDir, scanNames[0]!)).equals(scanWanted) &&
          idRows[0]?.document_path === scanNames[0] &&
          idRows[0]?.document_uploaded_at !== null;
    if (scanNames.length > 1 || (scanWanted === undefined && scanNames.length > 0))
      duplicated.push(`${id}: documents ${scanNames.join(', ')}`);
    else if (!pairComplete)
      lost.push(
        `${id}: original document ${JSON.stringify(scanNames)} incomplete or not recorded (ledger ${JSON.stringify(idRows.map((row) => row.document_path))})`,
      );
    if (
      names.length === 1 &&
      complete.length === 1 &&
      pairComplete &&
      (exportStatus(annotation) === 'exported' || refusedAsRejected)
    )
      exportedExactlyOnce++;
  }
  return { exportedExactlyOnce, refusedRejectedRedeliveries, lost, duplicated, ledgerMismatches };
}

/** Cleanup is best effort (it runs on the next takeover); a leftover is acceptable only where the bridge tried and said so. */
function explainTemps(files: string[], output: string): Pick<ExportFindings, 'leftoverTemps' | 'unexplainedTemps'> {
  const leftoverTemps = files.filter((name) => TEMP_NAME.test(name));
  const cleanupFailed = new Set(
    output
      .split('\n')
      .filter((line) => line.includes('could not remove temporary files'))
      .map((line) => (JSON.parse(line) as { annotationId?: number }).annotationId),
  );
  const unexplainedTemps = leftoverTemps.filter(
    (name) => !cleanupFailed.has(Number(/_(\d+)(?:~[0-9a-f]{8})?\.(?:xml|pdf)\.[0-9a-f]{8}\.part$/.exec(name)?.[1])),
  );
  return { leftoverTemps, unexplainedTemps };
}

/** What start-up reconciliation found after bridge kills, from the bridge's own log. */
function reconciliations(output: string): ExportFindings['reconciled'] {
  const reconciled = { checked: 0, recorded: 0, released: 0 };
  for (const line of output.split('\n')) {
    if (!line.includes('start-up reconciliation of uploads')) continue;
    const entry = JSON.parse(line) as typeof reconciled;
    reconciled.checked += entry.checked;
    reconciled.recorded += entry.recorded;
    reconciled.released += entry.released;
  }
  return reconciled;
}

function explainAttempts(
  attempts: Attempt[],
  windows: ServeWindows,
): Pick<ExportFindings, 'unanswered' | 'resetDuringStop' | 'badReplies'> {
  const unanswered: string[] = [];
  const resetDuringStop: string[] = [];
  const badReplies: string[] = [];
  for (const { id, record, endedAt } of attempts) {
    const startedAt = endedAt - record.durationMs;
    if (record.statusCode === null) {
      const excused = windows.down.some(
        (w) =>
          startedAt <= w.to && endedAt >= w.from - 50 && (w.startedAfter === undefined || startedAt >= w.startedAfter),
      );
      // Node closes idle keep-alive sockets on close: a request still unread in one is reset (Rossum retries it).
      const resetAtStop =
        /ECONNRESET|socket hang up|other side closed/i.test(record.error ?? '') &&
        windows.stopping.some((w) => endedAt >= w.from && endedAt <= w.to + 50);
      if (resetAtStop)
        resetDuringStop.push(
          `${id} attempt ${record.attempt}: ${record.error} after ${Math.round(record.durationMs)} ms`,
        );
      else if (!excused)
        unanswered.push(
          `${id} attempt ${record.attempt}: ${record.error ?? 'no answer'} after ${Math.round(record.durationMs)} ms`,
        );
    } else if (record.statusCode >= 500 && (record.statusCode !== 503 || !/"error"/.test(record.bodyExcerpt))) {
      badReplies.push(`${id} attempt ${record.attempt}: ${record.statusCode} ${record.bodyExcerpt.slice(0, 160)}`);
    } else if (record.statusCode === 503 && record.durationMs > ROSSUM_TIMEOUT_S * 1000) {
      unanswered.push(`${id} attempt ${record.attempt}: 503 only after ${Math.round(record.durationMs)} ms`);
    }
  }
  return { unanswered, resetDuringStop, badReplies };
}
