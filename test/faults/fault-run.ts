import { chmodSync, mkdtempSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { parseExportPayload, viewAnnotation } from '../../src/annotation/index.ts';
import { loadMappings } from '../../src/mapping/index.ts';
import type { AttemptRecord } from '../../src/rossum/delivery.ts';
import { fixture, repoRoot } from '../support/bridge.ts';
import { ServeProcess, writeServeConfig } from '../support/fault-serve.ts';
import { RossumSimulator } from '../support/rossum-simulator.ts';
import { ensurePasswordUser, freePort, startSshd, type SshdInstance } from '../support/sshd.ts';
import { TcpProxy } from '../support/tcp-proxy.ts';

/**
 * The fault stream: signed deliveries (Rossum's retry policy, via the simulator) through a real
 * `serve` child while sshd is SIGKILLed, the bridge is SIGKILLed mid-upload, the network stalls,
 * the folder turns read-only, and the bridge is SIGTERMed with exports in flight. An observer reads
 * the inbound folder throughout. The result is one table computed from the ledger, the folder and
 * the simulator's record.
 */

export interface FaultProfile {
  name: string;
  annotations: number;
  /** Share of annotations delivered more than once (concurrently or later). */
  duplicateShare: number;
  /** Time between two new deliveries. */
  spacingMs: number;
  faults: { sshdKill: number; bridgeKill: number; stall: number; readOnly: number; sigterm: number };
  seed: number;
}

export const PROFILES: Record<string, Omit<FaultProfile, 'seed'>> = {
  ci: { name: 'ci', annotations: 240, duplicateShare: 0.3, spacingMs: 110, faults: { sshdKill: 3, bridgeKill: 2, stall: 1, readOnly: 1, sigterm: 1 } },
  soak: { name: 'soak', annotations: 3000, duplicateShare: 0.3, spacingMs: 60, faults: { sshdKill: 20, bridgeKill: 12, stall: 6, readOnly: 6, sigterm: 6 } },
};

export const SECRET = 'fault-suite-hook-secret-3e9b1c7d5a';
const DEADLINE_MS = 3_000;
const ROSSUM_TIMEOUT_S = 8;
const HOOK = { retryDelayS: 0.7, pollIntervalS: 0.05, timeoutS: ROSSUM_TIMEOUT_S } as const;

export interface FaultEvent {
  kind: keyof FaultProfile['faults'];
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
  failedWithMessage: number;
  failedWithoutMessage: number;
  retriedByOperator: number;
  lost: string[];
  duplicated: string[];
  partialSeen: string[];
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
  outputPath: string;
  ledgerPath: string;
  inboundDir: string;
  sftpPassword: string;
  privateKeyLine: string;
}

/** Deterministic PRNG (mulberry32): the seed printed with the table reproduces the schedule. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const TEMP = /^\..*\.[0-9a-f]{8}\.part$/;
const FINAL = /^INV_.*_(\d+)(?:_v\d+)?\.xml$/;

export async function runFaultStream(profile: FaultProfile, log: (line: string) => void = () => undefined): Promise<FaultReport> {
  const started = Date.now();
  const rand = random(profile.seed);
  const dir = mkdtempSync(join(tmpdir(), 'rsb-faults-'));
  const passwordUser = await ensurePasswordUser();
  const sshd: SshdInstance = await startSshd({ baseDir: mkdtempSync(join(tmpdir(), 'rsb-faults-sshd-')), passwordUser });
  const proxy = await TcpProxy.start(sshd.port);
  const simulator = await RossumSimulator.start();
  const port = await freePort();
  const ledgerPath = join(dir, 'data', 'ledger.db');
  const outputPath = join(dir, 'serve.out');
  const configPath = writeServeConfig(dir, {
    port,
    secret: '${FAULT_HOOK_SECRET}',
    ledgerPath,
    server: { deadlineMs: DEADLINE_MS },
    target: {
      url: `sftp://${passwordUser.username}@127.0.0.1:${proxy.port}/~/inbound`,
      hostKey: sshd.hostKeyFingerprint,
      password: '${FAULT_SFTP_PASSWORD}',
      pool: { size: 4, connectTimeoutMs: 1_500, operationTimeoutMs: 2_000, checkIdleAfterMs: 300, keepaliveMs: 1_000 },
      retry: { attempts: 2, minDelayMs: 100, maxDelayMs: 300 },
    },
  });
  const env = { FAULT_HOOK_SECRET: SECRET, FAULT_SFTP_PASSWORD: passwordUser.password };
  const startServe = (): Promise<ServeProcess> => ServeProcess.start({ configPath, port, outputPath, env });
  let serve = await startServe();
  /** Windows in which the bridge was down on purpose: attempts failing then are Rossum's to retry. */
  const downWindows: Array<{ from: number; to: number; startedAfter?: number }> = [];
  const stopWindows: Array<{ from: number; to: number }> = [];

  // ── the documents and what each must look like on the server ────────────────────
  const mappings = loadMappings(join(repoRoot, 'mappings'));
  const mapping = mappings.get('generic-xml')!;
  const fixtures = ['export-invoice.json', 'export-tricky-characters.json', 'export-no-line-items.json'];
  const payloads = new Map<number, Record<string, unknown>>();
  const expected = new Map<number, Buffer>();
  for (let i = 0; i < profile.annotations; i++) {
    const id = 900_000 + i;
    const payload = fixture(fixtures[i % fixtures.length]!);
    (payload.annotation as { id: number }).id = id;
    payloads.set(id, payload);
    expected.set(id, mapping.render(viewAnnotation(parseExportPayload(payload))).bytes);
  }

  // ── the observer: reads every file under a final name as soon as it appears or changes ──
  const partialSeen: string[] = [];
  let observing = true;
  const seen = new Map<string, string>();
  const observer = (async () => {
    while (observing) {
      let names: string[] = [];
      try {
        names = readdirSync(sshd.inboundDir);
      } catch {
        names = [];
      }
      for (const name of names) {
        if (TEMP.test(name)) continue;
        try {
          const stat = statSync(join(sshd.inboundDir, name));
          const stamp = `${stat.ino}:${stat.size}:${stat.mtimeMs}`;
          if (seen.get(name) === stamp) continue;
          seen.set(name, stamp);
          const bytes = readFileSync(join(sshd.inboundDir, name));
          const match = FINAL.exec(name);
          const want = match ? expected.get(Number(match[1])) : undefined;
          if (!want || !bytes.equals(want)) partialSeen.push(`${name} (${bytes.length} bytes${want ? ` of ${want.length}` : ', unknown name'})`);
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
        }
      }
      await sleep(3);
    }
  })();

  // ── the delivery stream ──────────────────────────────────────────────────────────
  const attempts: Array<{ id: number; record: AttemptRecord; endedAt: number }> = [];
  let deliveries = 0;
  let inFlight = 0;
  const deliver = async (id: number): Promise<void> => {
    deliveries++;
    inFlight++;
    try {
      await simulator.exportAnnotation(payloads.get(id)!, {
        hookUrl: `http://127.0.0.1:${port}/webhooks/rossum`,
        secret: SECRET,
        ...HOOK,
        onAttempt: (record) => attempts.push({ id, record, endedAt: Date.now() }),
      });
    } finally {
      inFlight--;
    }
  };
  const stream: Array<Promise<void>> = [];
  let streamDone = false;
  let faultsDone = false;
  const streaming = (async () => {
    for (const id of payloads.keys()) {
      stream.push(deliver(id));
      if (rand() < profile.duplicateShare) {
        // Half at the same moment (racing the first), half later (a re-delivery of the same content).
        if (rand() < 0.5) stream.push(deliver(id));
        else stream.push(sleep(rand() * 3_000).then(() => deliver(id)));
      }
      await sleep(profile.spacingMs);
    }
    // Keep traffic flowing until the last fault is over: re-deliveries of documents already sent.
    const ids = [...payloads.keys()];
    while (!faultsDone) {
      stream.push(deliver(ids[Math.floor(rand() * ids.length)]!));
      await sleep(profile.spacingMs);
    }
    streamDone = true;
  })();

  // ── the faults, one after another at random moments while the stream runs ─────────
  const faults: FaultEvent[] = [];
  const sigtermExitCodes: Array<number | null> = [];
  const ledgerReader = (): Database.Database => new Database(ledgerPath, { readonly: true, fileMustExist: true });
  const uploadingRows = (ownerPid?: number): number => {
    const db = ledgerReader();
    try {
      const owner = ownerPid === undefined ? '%' : `%:${ownerPid}:%`;
      return (db.prepare("SELECT count(*) AS n FROM exports WHERE status = 'uploading' AND lease_owner LIKE ?").get(owner) as { n: number }).n;
    } finally {
      db.close();
    }
  };
  const plan: Array<FaultEvent['kind']> = [];
  for (const [kind, count] of Object.entries(profile.faults) as Array<[FaultEvent['kind'], number]>) for (let i = 0; i < count; i++) plan.push(kind);
  for (let i = plan.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [plan[i], plan[j]] = [plan[j]!, plan[i]!];
  }
  const streamSpanMs = profile.annotations * profile.spacingMs;
  // Faults take ~15 s themselves; spread them over the first part of the stream.
  const gapMs = Math.max(300, (streamSpanMs * 0.6 - 15_000) / (plan.length + 1));

  const injectors: Record<FaultEvent['kind'], () => Promise<Record<string, unknown>>> = {
    sshdKill: async () => {
      await sshd.kill('SIGKILL');
      const downMs = 200 + Math.round(rand() * 1_300);
      await sleep(downMs);
      await sshd.restart();
      return { downMs };
    },
    bridgeKill: async () => {
      // Mid-upload: wait until the ledger shows an upload in progress, then kill at once.
      const waitUntil = Date.now() + 10_000;
      let uploading = 0;
      while (Date.now() < waitUntil && (uploading = uploadingRows()) === 0) await sleep(1);
      const from = Date.now();
      serve.kill('SIGKILL');
      await serve.exited;
      const tempsAtKill = readdirSync(sshd.inboundDir).filter((name) => TEMP.test(name)).length;
      await sleep(200 + Math.round(rand() * 600));
      serve = await startServe();
      downWindows.push({ from, to: Date.now() });
      return { uploadingAtKill: uploading, tempsAtKill };
    },
    stall: async () => {
      proxy.stall();
      const stallMs = DEADLINE_MS + 1_000 + Math.round(rand() * 1_500);
      await sleep(stallMs);
      proxy.resume();
      return { stallMs };
    },
    readOnly: async () => {
      chmodSync(sshd.inboundDir, 0o555);
      const readOnlyMs = 500 + Math.round(rand() * 1_500);
      await sleep(readOnlyMs);
      chmodSync(sshd.inboundDir, 0o755);
      return { readOnlyMs };
    },
    sigterm: async () => {
      const waitUntil = Date.now() + 5_000;
      while (Date.now() < waitUntil && inFlight === 0) await sleep(1);
      const inFlightAtSignal = inFlight;
      const stoppedPid = serve.pid;
      const from = Date.now();
      serve.kill('SIGTERM');
      const exit = await Promise.race([serve.exited, sleep(20_000).then(() => null)]);
      if (exit === null) serve.kill('SIGKILL');
      sigtermExitCodes.push(exit === null ? null : exit.code);
      const stoppedAt = Date.now();
      const uploadingAfterStop = uploadingRows(stoppedPid);
      stopWindows.push({ from, to: stoppedAt });
      serve = await startServe();
      // Requests started before the signal must have been answered; later ones may be refused (Rossum retries them).
      downWindows.push({ from, to: Date.now(), startedAfter: from - 5 });
      return { inFlightAtSignal, uploadingAfterStop, exitCode: exit?.code ?? 'hung', stopMs: stoppedAt - from, signalAt: from };
    },
  };

  const faulting = (async () => {
    for (const kind of plan) {
      await sleep(gapMs * (0.5 + rand()));
      const at = Date.now() - started;
      const detail = await injectors[kind]();
      faults.push({ kind, at, detail });
      log(`fault ${kind} at ${(at / 1000).toFixed(1)} s ${JSON.stringify(detail)}`);
    }
    faultsDone = true;
  })();

  await Promise.all([streaming, faulting]);
  while (!streamDone) await sleep(10);
  await Promise.all(stream);

  // ── the operator's retry for what Rossum marked failed_export (no faults any more) ──
  const failedIds = [...payloads.keys()].filter((id) => simulator.annotation(id).status === 'failed_export');
  const failedWithoutMessage = failedIds.filter((id) => !simulator.annotation(id).messages.some((m) => m.type === 'error' && m.content.trim() !== '')).length;
  for (const id of failedIds) await simulator.reexport(id);
  await sleep(300);
  observing = false;
  await observer;

  // ── the table's sources: folder, ledger, simulator ────────────────────────────────
  const files = readdirSync(sshd.inboundDir);
  const leftoverTemps = files.filter((name) => TEMP.test(name));
  // Cleanup is best effort (it runs on the next takeover); a leftover is acceptable only where the bridge tried and said so.
  const output = readFileSync(outputPath, 'utf8');
  const cleanupFailed = new Set(
    output
      .split('\n')
      .filter((line) => line.includes('could not remove temporary files'))
      .map((line) => (JSON.parse(line) as { annotationId?: number }).annotationId),
  );
  const unexplainedTemps = leftoverTemps.filter((name) => !cleanupFailed.has(Number(/_(\d+)\.xml\.[0-9a-f]{8}\.part$/.exec(name)?.[1])));
  const reconciled = { checked: 0, recorded: 0, released: 0 };
  for (const line of output.split('\n')) {
    if (!line.includes('start-up reconciliation of uploads')) continue;
    const entry = JSON.parse(line) as typeof reconciled;
    reconciled.checked += entry.checked;
    reconciled.recorded += entry.recorded;
    reconciled.released += entry.released;
  }
  const byAnnotation = new Map<number, string[]>();
  for (const name of files) {
    const match = FINAL.exec(name);
    if (!match) continue;
    const id = Number(match[1]);
    byAnnotation.set(id, [...(byAnnotation.get(id) ?? []), name]);
  }
  const db = ledgerReader();
  const rows = db.prepare('SELECT annotation_id, status, remote_path, sha256 FROM exports').all() as Array<{ annotation_id: number; status: string; remote_path: string | null; sha256: string }>;
  db.close();
  const lost: string[] = [];
  const duplicated: string[] = [];
  const ledgerMismatches: string[] = [];
  let exportedExactlyOnce = 0;
  for (const id of payloads.keys()) {
    const names = byAnnotation.get(id) ?? [];
    const annotation = simulator.annotation(id);
    const idRows = rows.filter((row) => row.annotation_id === id);
    if (names.length > 1) duplicated.push(`${id}: ${names.join(', ')}`);
    const complete = names.filter((name) => readFileSync(join(sshd.inboundDir, name)).equals(expected.get(id)!));
    if (complete.length === 0) lost.push(`${id}: Rossum ${annotation.status}, no complete file on the server`);
    else if (annotation.status !== 'exported') lost.push(`${id}: file on the server but Rossum ${annotation.status}`);
    if (idRows.length !== 1 || idRows[0]!.status !== 'uploaded' || !names.includes(idRows[0]!.remote_path ?? '')) {
      ledgerMismatches.push(`${id}: ledger ${JSON.stringify(idRows.map((row) => [row.status, row.remote_path]))}, files ${JSON.stringify(names)}`);
    }
    if (names.length === 1 && complete.length === 1 && annotation.status === 'exported') exportedExactlyOnce++;
  }

  const unanswered: string[] = [];
  const resetDuringStop: string[] = [];
  const badReplies: string[] = [];
  for (const { id, record, endedAt } of attempts) {
    const startedAt = endedAt - record.durationMs;
    if (record.statusCode === null) {
      const excused = downWindows.some((w) => startedAt <= w.to && endedAt >= w.from - 50 && (w.startedAfter === undefined || startedAt >= w.startedAfter));
      // Node closes idle keep-alive sockets on close: a request still unread in one is reset (Rossum retries it).
      const resetAtStop = /ECONNRESET|socket hang up|other side closed/i.test(record.error ?? '') && stopWindows.some((w) => endedAt >= w.from && endedAt <= w.to + 50);
      if (resetAtStop) resetDuringStop.push(`${id} attempt ${record.attempt}: ${record.error} after ${Math.round(record.durationMs)} ms`);
      else if (!excused) unanswered.push(`${id} attempt ${record.attempt}: ${record.error ?? 'no answer'} after ${Math.round(record.durationMs)} ms`);
    } else if (record.statusCode >= 500 && (record.statusCode !== 503 || !/"error"/.test(record.bodyExcerpt))) {
      badReplies.push(`${id} attempt ${record.attempt}: ${record.statusCode} ${record.bodyExcerpt.slice(0, 160)}`);
    } else if (record.statusCode === 503 && record.durationMs > ROSSUM_TIMEOUT_S * 1000) {
      unanswered.push(`${id} attempt ${record.attempt}: 503 only after ${Math.round(record.durationMs)} ms`);
    }
  }

  await serve.stop();
  await simulator.close();
  await proxy.close();
  await sshd.stop();

  return {
    profile,
    durationMs: Date.now() - started,
    deliveries,
    attempts: attempts.length,
    faults,
    annotations: payloads.size,
    exportedExactlyOnce,
    failedWithMessage: failedIds.length - failedWithoutMessage,
    failedWithoutMessage,
    retriedByOperator: failedIds.length,
    lost,
    duplicated,
    partialSeen,
    leftoverTemps,
    unexplainedTemps,
    reconciled,
    unanswered,
    resetDuringStop,
    badReplies,
    sigtermExitCodes,
    ledgerMismatches,
    outputPath,
    ledgerPath,
    inboundDir: sshd.inboundDir,
    sftpPassword: passwordUser.password,
    privateKeyLine: sshd.privateKey.split('\n')[1] ?? '',
  };
}

export function formatTable(report: FaultReport): string {
  const count = (kind: FaultEvent['kind']): number => report.faults.filter((fault) => fault.kind === kind).length;
  const rows: Array<[string, string | number]> = [
    ['profile / seed', `${report.profile.name} / ${report.profile.seed}`],
    ['annotations', report.annotations],
    ['deliveries (incl. duplicates)', report.deliveries],
    ['HTTP attempts (incl. Rossum retries)', report.attempts],
    [
      'faults injected',
      `${report.faults.length} (sshd SIGKILL ${count('sshdKill')}, bridge SIGKILL mid-upload ${count('bridgeKill')}, network stall ${count('stall')}, read-only folder ${count('readOnly')}, SIGTERM in flight ${count('sigterm')})`,
    ],
    ['exported exactly once', report.exportedExactlyOnce],
    ['failed with a message in Rossum (then retried by the operator)', report.failedWithMessage],
    ['failed without a message', report.failedWithoutMessage],
    ['LOST (must be 0)', report.lost.length],
    ['DUPLICATED (must be 0)', report.duplicated.length],
    ['PARTIAL FILES SEEN BY THE OBSERVER (must be 0)', report.partialSeen.length],
    ['leftover temp files at the end (hidden .part names)', `${report.leftoverTemps.length} (cleanup never attempted: ${report.unexplainedTemps.length})`],
    [
      'interrupted uploads reconciled at start-up',
      `${report.reconciled.checked} (found on the server ${report.reconciled.recorded}, re-uploaded on the next delivery ${report.reconciled.released})`,
    ],
    ['attempts unanswered while the bridge was up', report.unanswered.length],
    ['unread requests reset by the graceful stop (Rossum retried)', report.resetDuringStop.length],
    ['5xx replies other than 503 + message', report.badReplies.length],
    ['ledger rows disagreeing with the folder', report.ledgerMismatches.length],
    ['SIGTERM exit codes', report.sigtermExitCodes.join(', ') || '-'],
    ['duration', `${(report.durationMs / 1000).toFixed(1)} s`],
  ];
  const width = Math.max(...rows.map(([label]) => label.length));
  return ['', `fault stream (${report.profile.name})`, ...rows.map(([label, value]) => `  ${label.padEnd(width)}  ${value}`), ''].join('\n');
}
