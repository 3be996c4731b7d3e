import { readdirSync } from 'node:fs';
import { analyseAcks } from './ack-analysis.ts';
import { analyseBatches } from './batch-analysis.ts';
import { DeliveryStream } from './deliveries.ts';
import { FINAL_NAME, prepareDocuments } from './documents.ts';
import { ErpSide } from './erp-side.ts';
import { analyseExports, exportStatus } from './export-analysis.ts';
import { faultInjectors, type ServeWindows } from './injectors.ts';
import { LedgerProbe } from './ledger-probe.ts';
import { InboundObserver } from './observer.ts';
import type { FaultEvent, FaultReport } from './report.ts';
import { FaultRig } from './rig.ts';
import { planFaultStream, type FaultProfile, type PlannedFault } from './schedule.ts';

export { formatTable, type FaultReport } from './report.ts';
export { FaultRig } from './rig.ts';
export { HOOK_SECRET as SECRET } from './rig.ts';
export { freshSeed, PROFILES, type FaultProfile } from './schedule.ts';

/**
 * The fault stream: signed deliveries (Rossum's retry policy, via the simulator) through a real
 * `serve` child while sshd is SIGKILLed, the bridge is SIGKILLed mid-upload, the network stalls,
 * the folders turn read-only, and the bridge is SIGTERMed with exports in flight. An observer reads
 * the inbound folder throughout. Behind the folder an ERP answers (accepts, rejects, stays silent),
 * and a real `acks` child with the same config and ledger reads the answers and tells the simulated
 * Rossum API, while it is SIGKILLed mid-batch and the API answers 429/503 for a while. Some documents
 * go to a mapping that puts the original PDF in place first (downloads failing as planned), some to a
 * small CSV batch mapping (one file per batch). The result is one table computed from the ledger, the
 * folders and the simulator's record.
 *
 * The parts: `schedule.ts` (what happens, from the seed), `rig.ts` (sshd, proxy, simulator, the two
 * processes), `deliveries.ts` (Rossum's side), `erp-side.ts` (the ERP's side), `observer.ts`,
 * `injectors.ts` (the faults), `ledger-probe.ts`, `export-analysis.ts`, `batch-analysis.ts` and `ack-analysis.ts`.
 */
export async function runFaultStream(
  profile: FaultProfile,
  log: (line: string) => void = () => undefined,
): Promise<FaultReport> {
  const started = Date.now();
  const schedule = planFaultStream(profile);
  log(
    `fault stream ${profile.name}, seed ${profile.seed} (replay: FAULT_PROFILE=${profile.name} FAULT_SEED=${profile.seed} npm run test:faults)`,
  );
  const rig = await FaultRig.start({ ackDeadlineMs: profile.ackDeadlineMs, started, log });
  log(`rig up at ${((Date.now() - started) / 1000).toFixed(1)} s`);
  const probe = new LedgerProbe(rig.ledgerPath);
  const { payloads, expected, scans, batched } = prepareDocuments(
    [...schedule.answers.keys()],
    schedule.scans,
    rig.simulator,
    profile.seed,
    schedule.batched,
  );
  const erp = new ErpSide({
    inboundDir: rig.sshd.inboundDir,
    acksDir: rig.sshd.acksDir,
    finalName: FINAL_NAME,
    answerOf: (id) => schedule.answers.get(id)!,
  });
  const observer = new InboundObserver(rig.sshd.inboundDir, expected, scans);
  const deliveries = new DeliveryStream(rig.simulator, rig.webhookUrl, payloads);

  // ── the stream, and the faults one after another on two tracks while it runs ──
  const faults: FaultEvent[] = [];
  const windows: ServeWindows = { down: [], stopping: [] };
  const sigtermExitCodes: Array<number | null> = [];
  const injectors = faultInjectors({ rig, probe, erp, deliveries, windows, sigtermExitCodes });
  const runTrack = async (track: PlannedFault[]): Promise<void> => {
    for (const fault of track) {
      await sleep(fault.pauseBeforeMs);
      const at = Date.now() - started;
      const detail = await injectors[fault.kind](fault);
      faults.push({ kind: fault.kind, at, detail });
      const tookS = ((Date.now() - started - at) / 1000).toFixed(1);
      log(`fault ${fault.kind} at ${(at / 1000).toFixed(1)} s (took ${tookS} s) ${JSON.stringify(detail)}`);
    }
  };
  const writeNoise = async (): Promise<void> => {
    for (const pause of schedule.noisePausesMs) {
      await sleep(pause);
      erp.writeNoise();
    }
  };
  let faultsDone = false;
  const faulting = Promise.all([runTrack(schedule.faults), runTrack(schedule.ackFaults), writeNoise()]).then(() => {
    faultsDone = true;
  });
  // Traffic keeps flowing until the last fault is over (the faults need something to hit).
  await Promise.all([deliveries.run(schedule, profile.spacingMs, () => !faultsDone), faulting]);
  log(`stream and faults over at ${((Date.now() - started) / 1000).toFixed(1)} s`);

  // ── the operator's retry for what Rossum marked failed_export (no faults any more) ──
  // The export flow's own verdict: the acks process moves rejected and unanswered exports to failed_export too.
  const ids = [...payloads.keys()];
  const failedIds = ids.filter((id) => exportStatus(rig.simulator.annotation(id)) === 'failed_export');
  const failedWithoutMessage = failedIds.filter(
    (id) => !rig.simulator.annotation(id).messages.some((m) => m.type === 'error' && m.content.trim() !== ''),
  ).length;
  // Several at a time, as an operator retrying a selection: one after another, >100 retries took ~20 s.
  const retryQueue = [...failedIds];
  await Promise.all(
    Array.from({ length: OPERATOR_RETRY_CONCURRENCY }, async () => {
      for (let id = retryQueue.shift(); id !== undefined; id = retryQueue.shift()) await rig.simulator.reexport(id);
    }),
  );
  log(`operator retried ${failedIds.length} failed exports by ${((Date.now() - started) / 1000).toFixed(1)} s`);
  // The last batches close on their period and go out (no faults any more).
  // A failed batch send is retried after 30 s (the sender's fixed retryMs): a send failed by the last fault can take that long.
  const batchesUntil = Date.now() + 45_000;
  const unsentAtEnd = probe.unsentBatches();
  while (probe.unsentBatches() > 0 && Date.now() < batchesUntil) await sleep(100);
  log(`${unsentAtEnd} batches unsent after the retries; all sent by ${((Date.now() - started) / 1000).toFixed(1)} s`);
  await observer.stop();

  // ── the ack loop settles: every answer recorded and archived, every silence past its deadline, Rossum told ──
  const settleStarted = Date.now();
  const settleUntil = settleStarted + profile.ackDeadlineMs + 45_000;
  while (!ackLoopSettled(rig, probe, erp) && Date.now() < settleUntil) await sleep(100);
  const settleMs = Date.now() - settleStarted;
  log(`ack loop settled at ${((Date.now() - started) / 1000).toFixed(1)} s (after ${(settleMs / 1000).toFixed(1)} s)`);
  await erp.close();
  const acksExit = await rig.stopAcks();

  // ── the table's sources: folder, ledger, simulator ──
  const verdicts = new Map(ids.map((id) => [id, schedule.answers.get(id)!.verdict]));
  const exportFindings = analyseExports({
    inboundDir: rig.sshd.inboundDir,
    serveOutputPath: rig.outputPath,
    probe,
    expected,
    scans,
    verdicts,
    simulator: rig.simulator,
    attempts: deliveries.attempts,
    windows,
  });
  const batches = analyseBatches({
    inboundDir: rig.sshd.inboundDir,
    probe,
    batched,
    firstViews: observer.batchViews,
    simulator: rig.simulator,
    attempts: deliveries.attempts,
  });
  const acks = analyseAcks({
    erp,
    // Batch documents wait for no ERP answer.
    ids: ids.filter((id) => !batched.has(id)),
    probe,
    acksDir: rig.sshd.acksDir,
    simulator: rig.simulator,
    settleMs,
    exit: acksExit,
    outputPath: rig.acksOutputPath,
    crashes: rig.acksCrashes,
  });
  await rig.close();

  return {
    profile,
    durationMs: Date.now() - started,
    deliveries: deliveries.deliveries,
    attempts: deliveries.attempts.length,
    faults,
    annotations: payloads.size - batched.size,
    batches,
    ...exportFindings,
    failedWithMessage: failedIds.length - failedWithoutMessage,
    failedWithoutMessage,
    retriedByOperator: failedIds.length,
    partialSeen: observer.partialSeen,
    scans: scans.size,
    documentDownloads: rig.simulator.documentDownloads,
    sigtermExitCodes,
    acks,
    outputPath: rig.outputPath,
    ledgerPath: rig.ledgerPath,
    inboundDir: rig.sshd.inboundDir,
    sftpPassword: rig.passwordUser.password,
    rossumPassword: rig.rossumPassword,
    privateKeyLine: rig.sshd.privateKey.split('\n')[1] ?? '',
  };
}

/** Re-exports the operator has running at once after the stream: as many as the bridge's SFTP pool has connections. */
const OPERATOR_RETRY_CONCURRENCY = 4;

function ackLoopSettled(rig: FaultRig, probe: LedgerProbe, erp: ErpSide): boolean {
  if (!erp.idle) return false;
  const inRoot = readdirSync(rig.sshd.acksDir, { withFileTypes: true }).some(
    (entry) => entry.isFile() && !entry.name.startsWith('.'),
  );
  if (inRoot) return false;
  const backlog = probe.ackLoopBacklog();
  return backlog.awaiting === 0 && backlog.pendingOutcomes === 0 && backlog.ackFiles >= erp.written.size;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
