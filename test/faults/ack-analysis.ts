import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { RossumSimulator } from '../support/rossum-simulator.ts';
import type { ExitInfo } from '../support/fault-serve.ts';
import { rejectionLines, type ErpSide } from './erp-side.ts';
import type { AckFileRow, LedgerProbe } from './ledger-probe.ts';
import type { AckReport } from './report.ts';
import type { ErpVerdict } from './schedule.ts';

const ARCHIVES = ['processed', 'unmatched', 'invalid'] as const;
/** What the archive adds to a reused name (`name.2024-01-02T03-04-05-678Z.ext`). */
const STAMP = /\.\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d-\d{3}Z(?=\.[^.]*$|$)/;

/**
 * The ack loop's end state against what the ERP wrote: each ack file recorded and archived once in the
 * right folder; each export's ledger state, outcomes and Rossum changes exactly what its answer calls for.
 */
export function analyseAcks(input: {
  erp: ErpSide;
  ids: number[];
  probe: LedgerProbe;
  acksDir: string;
  simulator: RossumSimulator;
  settleMs: number;
  exit: ExitInfo | null;
  outputPath: string;
  crashes: string[];
}): AckReport {
  const { erp, simulator } = input;
  const ackFiles = input.probe.ackFiles();
  const exportRows = input.probe.exports().filter((row) => row.status === 'uploaded');
  const outcomeRows = input.probe.outcomes();

  // ── the files ──
  const where = new Map<string, string[]>();
  for (const folder of ARCHIVES) {
    const path = join(input.acksDir, folder);
    if (!existsSync(path)) continue;
    for (const name of readdirSync(path)) {
      const original = name.replace(STAMP, '');
      where.set(original, [...(where.get(original) ?? []), `${folder}/${name}`]);
    }
  }
  const inRoot = new Set(
    readdirSync(input.acksDir, { withFileTypes: true })
      .filter((entry) => entry.isFile() && !entry.name.startsWith('.'))
      .map((entry) => entry.name),
  );
  const recordedAs = new Map<string, AckFileRow[]>();
  for (const row of ackFiles) {
    const name = row.file_name.split('/').at(-1) ?? row.file_name;
    recordedAs.set(name, [...(recordedAs.get(name) ?? []), row]);
  }
  const lost: string[] = [];
  const notProcessedOnce: string[] = [];
  const latencies: number[] = [];
  let processedOnce = 0;
  for (const ack of erp.written.values()) {
    const archived = where.get(ack.name) ?? [];
    const rows = recordedAs.get(ack.name) ?? [];
    const folder = ack.verdict === 'noise' ? 'unmatched' : 'processed';
    const disposition = ack.verdict === 'noise' ? 'unmatched' : 'matched';
    if (archived.length === 0)
      lost.push(`${ack.name}: ${inRoot.has(ack.name) ? 'still in the ack folder' : 'nowhere'}`);
    const problems: string[] = [];
    if (archived.length > 1 || (archived.length === 1 && archived[0] !== `${folder}/${ack.name}`))
      problems.push(`archived as ${JSON.stringify(archived)}, expected ${folder}/${ack.name}`);
    if (rows.length !== 1 || rows[0]!.disposition !== disposition)
      problems.push(`ledger ${JSON.stringify(rows.map((row) => row.disposition))}, expected [${disposition}]`);
    if (problems.length > 0) notProcessedOnce.push(`${ack.name}: ${problems.join('; ')}`);
    else if (archived.length === 1) processedOnce++;
    if (rows[0]) latencies.push(rows[0].received_at - ack.writtenAt);
  }
  for (const [original, archived] of where)
    if (!erp.written.has(original))
      notProcessedOnce.push(`${original}: in ${JSON.stringify(archived)} but the ERP never wrote it`);

  // ── the exports and what Rossum was told ──
  const callsById = new Map<number, typeof simulator.calls>();
  for (const call of simulator.calls) {
    const match = /\/v1\/annotations\/(\d+)\/?$/.exec(call.path);
    if (match && call.method === 'PATCH' && call.status === 200)
      callsById.set(Number(match[1]), [...(callsById.get(Number(match[1])) ?? []), call]);
  }
  const noticed = new Map<number, ErpVerdict>();
  for (const entry of erp.noticed.values()) noticed.set(entry.annotationId, entry.verdict);
  const verdicts: Record<ErpVerdict, number> = { accept: 0, reject: 0, silent: 0 };
  const wrong: string[] = [];
  const doubleFlags: string[] = [];
  let rejectedFlaggedOnce = 0;
  let silentFlaggedOnce = 0;
  let acceptedUntouched = 0;
  for (const id of input.ids) {
    const verdict = noticed.get(id);
    if (verdict === undefined) {
      wrong.push(`${id}: the ERP never saw its file`);
      continue;
    }
    verdicts[verdict]++;
    const rows = exportRows.filter((row) => row.annotation_id === id);
    const outcomes = outcomeRows.filter((outcome) => rows.some((row) => row.id === outcome.export_id));
    const annotation = simulator.annotation(id);
    const patches = callsById.get(id) ?? [];
    const statusPatches = patches
      .map((call) => (call.body as { status?: string }).status)
      .filter((status): status is string => status !== undefined);
    const failedPatches = statusPatches.filter((status) => status === 'failed_export').length;
    const mark = annotation.metadata.erp_ack as { result?: string; state?: string; codes?: string[] } | undefined;
    const want = {
      accept: { state: 'accepted', kind: 'accepted' },
      reject: { state: 'rejected', kind: 'rejected' },
      silent: { state: 'ack_timeout', kind: 'timeout' },
    }[verdict];
    const problems: string[] = [];
    if (rows.length !== 1 || rows[0]!.ack_state !== want.state)
      problems.push(`ledger ${JSON.stringify(rows.map((row) => row.ack_state))}, expected ${want.state}`);
    if (outcomes.map((outcome) => outcome.kind).join() !== want.kind)
      problems.push(`outcomes ${JSON.stringify(outcomes.map((outcome) => outcome.kind))}, expected [${want.kind}]`);
    if (annotation.notes.length > 1 || failedPatches > 1)
      doubleFlags.push(`${id} (${verdict}): ${annotation.notes.length} notes, ${failedPatches} failed_export changes`);
    if (verdict === 'accept') {
      if (annotation.notes.length === 0 && statusPatches.length === 0) acceptedUntouched++;
      else
        problems.push(
          `accepted, but Rossum got ${annotation.notes.length} notes and status changes ${JSON.stringify(statusPatches)}`,
        );
    } else {
      const note = annotation.notes[0]?.content ?? '';
      const says = verdict === 'reject' ? rejectionLines(id) : ['No answer from the ERP'];
      const result = verdict === 'reject' ? 'rejected' : 'timeout';
      const flaggedOnce =
        annotation.notes.length === 1 &&
        says.every((line) => note.includes(line)) &&
        failedPatches === 1 &&
        statusPatches.length === 1 &&
        mark?.result === result &&
        mark.state === 'done';
      if (flaggedOnce) {
        if (verdict === 'reject') rejectedFlaggedOnce++;
        else silentFlaggedOnce++;
      } else {
        problems.push(
          `${verdict}: notes ${JSON.stringify(annotation.notes.map((n) => n.content.slice(0, 120)))}, status changes ${JSON.stringify(statusPatches)}, metadata ${JSON.stringify(mark)}`,
        );
      }
    }
    if (problems.length > 0) wrong.push(`${id}: ${problems.join('; ')}`);
  }
  const undelivered = outcomeRows
    .filter((outcome) => outcome.delivery !== 'delivered' && outcome.delivery !== 'not_needed')
    .map((outcome) => `export ${outcome.export_id} ${outcome.kind}: ${outcome.delivery} ${outcome.last_error ?? ''}`);
  latencies.sort((a, b) => a - b);
  const written = [...erp.written.values()];
  return {
    verdicts,
    filesWritten: written.length,
    noise: written.filter((ack) => ack.verdict === 'noise').length,
    slowWrites: written.filter((ack) => ack.slow).length,
    processedOnce,
    notProcessedOnce,
    lost,
    rejectedFlaggedOnce,
    silentFlaggedOnce,
    acceptedUntouched,
    doubleFlags,
    wrong,
    undelivered,
    injectedApiReplies: simulator.calls.filter((call) => call.injected).length,
    latencyMs: { median: latencies[Math.floor(latencies.length / 2)] ?? 0, max: latencies.at(-1) ?? 0 },
    archiveUnrecorded: ackFiles.filter((row) => row.archived_to === null).length,
    settleMs: input.settleMs,
    crashes: input.crashes,
    exit: input.exit,
    outputPath: input.outputPath,
  };
}
