import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, statSync, watch, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { stringify } from 'yaml';
import { parseExportPayload, viewAnnotation } from '../../src/annotation/index.ts';
import { loadMappings } from '../../src/mapping/index.ts';
import type { AttemptRecord } from '../../src/rossum/hook-call.ts';
import { fixture, repoRoot } from '../support/bridge.ts';
import { ServeProcess, tail, type ExitInfo } from '../support/fault-serve.ts';
import { RossumSimulator, type SimulatedAnnotation } from '../support/rossum-simulator.ts';
import { ensurePasswordUser, freePort, startSshd, type SshdInstance } from '../support/sshd.ts';
import { TcpProxy } from '../support/tcp-proxy.ts';
import { AcksProcess } from './acks-child.ts';
import { ErpSide, rejectionLines, type ErpVerdict } from './erp-side.ts';

/**
 * The fault stream: signed deliveries (Rossum's retry policy, via the simulator) through a real
 * `serve` child while sshd is SIGKILLed, the bridge is SIGKILLed mid-upload, the network stalls,
 * the folders turn read-only, and the bridge is SIGTERMed with exports in flight. An observer reads
 * the inbound folder throughout. Behind the folder an ERP answers (accepts, rejects, stays silent),
 * and a real `acks` child with the same config and ledger reads the answers and tells the simulated
 * Rossum API, while it is SIGKILLed mid-batch and the API answers 429/503 for a while. The result is
 * one table computed from the ledger, the folders and the simulator's record.
 */

export interface FaultProfile {
  name: string;
  annotations: number;
  /** Share of annotations delivered more than once (concurrently or later). */
  duplicateShare: number;
  /** Time between two new deliveries. */
  spacingMs: number;
  faults: { sshdKill: number; bridgeKill: number; stall: number; readOnly: number; sigterm: number; acksKill: number; rossumApi: number };
  /** What the ERP answers: shares of rejections and of files it never answers; the rest it accepts. */
  erp: { reject: number; silent: number; slowShare: number; noise: number };
  /** The mapping's ack deadline: long enough for answers delayed by the faults, short enough to see the silent ones flagged. */
  ackDeadlineMs: number;
  seed: number;
}

/** Faults of the acks side run on their own schedule while new documents still arrive (the ERP has answers to write). */
const ACK_SIDE: ReadonlyArray<FaultEvent['kind']> = ['acksKill', 'rossumApi'];

export const PROFILES: Record<string, Omit<FaultProfile, 'seed'>> = {
  ci: {
    name: 'ci',
    annotations: 240,
    duplicateShare: 0.3,
    spacingMs: 110,
    faults: { sshdKill: 3, bridgeKill: 2, stall: 1, readOnly: 1, sigterm: 1, acksKill: 2, rossumApi: 2 },
    erp: { reject: 0.12, silent: 0.06, slowShare: 0.25, noise: 4 },
    ackDeadlineMs: 15_000,
  },
  soak: {
    name: 'soak',
    annotations: 3000,
    duplicateShare: 0.3,
    spacingMs: 60,
    faults: { sshdKill: 20, bridgeKill: 12, stall: 6, readOnly: 6, sigterm: 6, acksKill: 12, rossumApi: 8 },
    erp: { reject: 0.12, silent: 0.06, slowShare: 0.25, noise: 30 },
    ackDeadlineMs: 15_000,
  },
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
  /** Re-deliveries of bytes the ERP had rejected, answered failed_export with the ERP's verdict (the truth). */
  refusedRejectedRedeliveries: number;
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
  const acksOutputPath = join(dir, 'acks.out');
  const [rossumUser, rossumPassword] = Object.entries(simulator.users)[0]!;
  // One config for both processes, the way an operator runs them: serve, and acks next to it.
  const sftp = (folder: string): Record<string, unknown> => ({
    url: `sftp://${passwordUser.username}@127.0.0.1:${proxy.port}/~/${folder}`,
    hostKey: sshd.hostKeyFingerprint,
    password: '${FAULT_SFTP_PASSWORD}',
    pool: { size: 4, connectTimeoutMs: 1_500, operationTimeoutMs: 2_000, checkIdleAfterMs: 300, keepaliveMs: 1_000 },
    retry: { attempts: 2, minDelayMs: 100, maxDelayMs: 300 },
  });
  const configPath = join(dir, 'bridge.yaml');
  writeFileSync(
    configPath,
    stringify({
      server: { host: '127.0.0.1', port, secret: '${FAULT_HOOK_SECRET}', deadlineMs: DEADLINE_MS },
      ledger: { url: `sqlite:${ledgerPath}` },
      mappingsDir: join(repoRoot, 'mappings'),
      logLevel: 'info',
      targets: { erp: sftp('inbound'), 'erp-out': sftp('acks') },
      routes: [{ mapping: 'generic-xml', target: 'erp' }],
      rossum: { baseUrl: simulator.apiUrl, username: rossumUser, password: '${FAULT_ROSSUM_PASSWORD}', timeoutMs: 5_000, retry: { attempts: 3, minDelayMs: 50, maxDelayMs: 300 } },
      acks: {
        pollIntervalMs: 300,
        minAgeMs: 400,
        concurrency: 4,
        targets: { erp: { folder: '.', readFrom: 'erp-out' } },
        delivery: { leaseMs: 1_500, retryMinMs: 200, retryMaxMs: 1_000 },
        // No `hold`: the webhook answers as usual and the ack loop alone tells Rossum.
        byMapping: { 'generic-xml': { convention: 'companion', deadlineMs: profile.ackDeadlineMs, companion: { encoding: 'windows-1252' } } },
      },
    }),
    { mode: 0o600 },
  );
  const env = { FAULT_HOOK_SECRET: SECRET, FAULT_SFTP_PASSWORD: passwordUser.password, FAULT_ROSSUM_PASSWORD: rossumPassword };
  const startServe = (): Promise<ServeProcess> => ServeProcess.start({ configPath, port, outputPath, env });
  const startAcks = (): Promise<AcksProcess> => AcksProcess.start({ configPath, outputPath: acksOutputPath, env });
  let serve = await startServe();
  let acks = await startAcks();
  // A supervisor's view of the acks process: an exit we did not cause is a crash (counted), and it is started again.
  const acksCrashes: string[] = [];
  let acksExpectedDown = false;
  let supervising = true;
  const supervisor = (async () => {
    while (supervising) {
      if (!acks.running && !acksExpectedDown) {
        const exit = await acks.exited;
        acksCrashes.push(`${((Date.now() - started) / 1000).toFixed(1)} s: ${JSON.stringify(exit)}\n${tail(acksOutputPath, 12)}`);
        log(`acks process crashed ${JSON.stringify(exit)}; starting it again`);
        acks = await startAcks();
      }
      await sleep(50);
    }
  })();
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

  // ── the ERP behind the folder: its verdicts come from their own seeded stream ──────
  const erpRand = random(profile.seed ^ 0x5bd1e995);
  const verdicts = new Map<number, ErpVerdict>();
  for (const id of payloads.keys()) {
    const r = erpRand();
    verdicts.set(id, r < profile.erp.reject ? 'reject' : r < profile.erp.reject + profile.erp.silent ? 'silent' : 'accept');
  }
  const erp = new ErpSide({
    inboundDir: sshd.inboundDir,
    acksDir: sshd.acksDir,
    finalName: FINAL,
    verdictOf: (id) => verdicts.get(id) ?? 'accept',
    rand: erpRand,
    slowShare: profile.erp.slowShare,
    answerDelayMs: [150, 900],
  });

  // ── the observer: reads every file under a final name as soon as it appears or changes ──
  // File events (inotify) name what changed at once; a full look every 250 ms catches anything they missed.
  // Stat-ing thousands of files every few milliseconds instead would starve this process, which also
  // runs the TCP proxy and the simulated Rossum.
  const partialSeen: string[] = [];
  let observing = true;
  const seen = new Map<string, string>();
  const changed = new Set<string>();
  const watcher = watch(sshd.inboundDir, (_event, name) => {
    if (name) changed.add(name.toString());
  });
  const inspect = (name: string): void => {
    if (TEMP.test(name)) return;
    try {
      const stat = statSync(join(sshd.inboundDir, name));
      const stamp = `${stat.ino}:${stat.size}:${stat.mtimeMs}`;
      if (seen.get(name) === stamp) return;
      seen.set(name, stamp);
      const bytes = readFileSync(join(sshd.inboundDir, name));
      const match = FINAL.exec(name);
      const want = match ? expected.get(Number(match[1])) : undefined;
      if (!want || !bytes.equals(want)) partialSeen.push(`${name} (${bytes.length} bytes${want ? ` of ${want.length}` : ', unknown name'})`);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
  };
  const observer = (async () => {
    let fullLookAt = 0;
    while (observing) {
      const names = [...changed];
      changed.clear();
      for (const name of names) inspect(name);
      if (Date.now() >= fullLookAt) {
        fullLookAt = Date.now() + 250;
        let all: string[] = [];
        try {
          all = readdirSync(sshd.inboundDir);
        } catch {
          all = [];
        }
        for (const name of all) inspect(name);
      }
      await sleep(2);
    }
    watcher.close();
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
  const countAckFiles = (db: Database.Database): number => (db.prepare('SELECT count(*) AS n FROM ack_files').get() as { n: number }).n;
  const ackRand = random(profile.seed ^ 0x27d4eb2f);
  const shuffled = (kinds: Array<FaultEvent['kind']>, rand: () => number): Array<FaultEvent['kind']> => {
    const plan: Array<FaultEvent['kind']> = [];
    for (const [kind, count] of Object.entries(profile.faults) as Array<[FaultEvent['kind'], number]>) if (kinds.includes(kind)) for (let i = 0; i < count; i++) plan.push(kind);
    for (let i = plan.length - 1; i > 0; i--) {
      const j = Math.floor(rand() * (i + 1));
      [plan[i], plan[j]] = [plan[j]!, plan[i]!];
    }
    return plan;
  };
  const plan = shuffled((Object.keys(profile.faults) as Array<FaultEvent['kind']>).filter((kind) => !ACK_SIDE.includes(kind)), rand);
  // Kills of the acks process first, while the stream still brings new answers to kill it in the middle
  // of; API windows after, when outcomes flow (they need none of the new files, only things to tell Rossum).
  const ackPlan = [...shuffled(['acksKill'], ackRand), ...shuffled(['rossumApi'], ackRand)];
  const streamSpanMs = profile.annotations * profile.spacingMs;
  // Faults take ~15 s themselves; spread them over the first part of the stream.
  const gapMs = Math.max(300, (streamSpanMs * 0.6 - 15_000) / (plan.length + 1));
  // Acks-side faults must end while new documents still arrive: a kill waits up to 8 s for answers to pile up and
  // then for the first to be recorded, an API window lasts a few seconds. Budget that, spread the rest as gaps.
  const ackBudgetMs = ackPlan.reduce((total, kind) => total + (kind === 'acksKill' ? 8_000 : 4_000), 0);
  const ackGapMs = Math.max(300, (streamSpanMs - 4_000 - ackBudgetMs) / (ackPlan.length + 1));

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
      // Both folders: uploads fail (Rossum is told), and acks cannot be archived (they wait for the next pass).
      chmodSync(sshd.inboundDir, 0o555);
      chmodSync(sshd.acksDir, 0o555);
      const readOnlyMs = 500 + Math.round(rand() * 1_500);
      await sleep(readOnlyMs);
      chmodSync(sshd.inboundDir, 0o755);
      chmodSync(sshd.acksDir, 0o755);
      return { readOnlyMs };
    },
    acksKill: async () => {
      // Mid-batch: let the ERP's answers pile up, write them at once, and kill as soon as the first one is recorded.
      erp.pause();
      const waitUntil = Date.now() + 8_000;
      while (Date.now() < waitUntil && erp.queued < 8) await sleep(10);
      const db = ledgerReader();
      const before = countAckFiles(db);
      const batch = erp.flushAll();
      const recordUntil = Date.now() + 15_000;
      let recorded = 0;
      try {
        while (Date.now() < recordUntil && (recorded = countAckFiles(db) - before) === 0) await sleep(1);
        acksExpectedDown = true;
        acks.kill('SIGKILL');
      } finally {
        db.close();
      }
      const exit = await acks.exited;
      const leftInFolder = readdirSync(sshd.acksDir, { withFileTypes: true }).filter((entry) => entry.isFile() && !entry.name.startsWith('.')).length;
      await sleep(200 + Math.round(ackRand() * 600));
      acks = await startAcks();
      acksExpectedDown = false;
      return { batch, recordedAtKill: recorded, leftInFolder, signal: exit.signal };
    },
    rossumApi: async () => {
      // Every API call in the window gets 503 or 429 (Retry-After: 1 s); a few queued ones outlive it. The window
      // lasts until some calls were refused, at most 60 s: the outbox can be idle for a long while, early in the
      // stream or while the SFTP side is being killed and stalled (acks cannot read answers then).
      const minimumMs = 1_500 + Math.round(ackRand() * 2_500);
      // Calls are only appended: count the refused ones from where the window began.
      const firstCall = simulator.calls.length;
      const injected = (): number => simulator.calls.slice(firstCall).filter((call) => call.injected).length;
      const injectedBefore = 0;
      const from = Date.now();
      let queued = 0;
      while (Date.now() - from < minimumMs || (injected() - injectedBefore < 3 && Date.now() - from < 60_000)) {
        while (simulator.pendingFaults() < 3) {
          simulator.injectFaults(queued++ % 3 === 0 ? { status: 429, retryAfter: '1' } : { status: 503 });
        }
        await sleep(5);
      }
      return { windowMs: Date.now() - from, answered: injected() - injectedBefore };
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

  const runPlan = async (kinds: Array<FaultEvent['kind']>, gap: number, rand: () => number): Promise<void> => {
    for (const kind of kinds) {
      await sleep(gap * (0.5 + rand()));
      const at = Date.now() - started;
      const detail = await injectors[kind]();
      faults.push({ kind, at, detail });
      log(`fault ${kind} at ${(at / 1000).toFixed(1)} s ${JSON.stringify(detail)}`);
    }
  };
  let noiseWritten = 0;
  const noise = (async () => {
    while (noiseWritten < profile.erp.noise) {
      await sleep((streamSpanMs / profile.erp.noise) * (0.5 + ackRand()));
      erp.writeNoise();
      noiseWritten++;
    }
  })();
  const faulting = Promise.all([runPlan(plan, gapMs, rand), runPlan(ackPlan, ackGapMs, ackRand), noise]).then(() => {
    faultsDone = true;
  });

  await Promise.all([streaming, faulting]);
  while (!streamDone) await sleep(10);
  await Promise.all(stream);

  // ── the operator's retry for what Rossum marked failed_export (no faults any more) ──
  // The export flow's own verdict: the acks process moves rejected and unanswered exports to failed_export too.
  const failedIds = [...payloads.keys()].filter((id) => exportStatus(simulator.annotation(id)) === 'failed_export');
  const failedWithoutMessage = failedIds.filter((id) => !simulator.annotation(id).messages.some((m) => m.type === 'error' && m.content.trim() !== '')).length;
  for (const id of failedIds) await simulator.reexport(id);
  await sleep(300);
  observing = false;
  await observer;

  // ── the ack loop settles: every answer recorded and archived, every silence past its deadline, Rossum told ──
  const settleStarted = Date.now();
  const ackSettled = (): boolean => {
    if (!erp.idle) return false;
    const inRoot = readdirSync(sshd.acksDir, { withFileTypes: true }).some((entry) => entry.isFile() && !entry.name.startsWith('.'));
    if (inRoot) return false;
    const db = ledgerReader();
    try {
      const open = (db.prepare(`SELECT count(*) AS n FROM exports WHERE status = 'uploaded' AND (ack_state IS NULL OR ack_state = 'awaiting_ack')`).get() as { n: number }).n;
      const pending = (db.prepare(`SELECT count(*) AS n FROM ack_outcomes WHERE delivery = 'pending'`).get() as { n: number }).n;
      const recorded = (db.prepare('SELECT count(*) AS n FROM ack_files').get() as { n: number }).n;
      return open === 0 && pending === 0 && recorded >= erp.written.size;
    } finally {
      db.close();
    }
  };
  const settleUntil = Date.now() + profile.ackDeadlineMs + 45_000;
  while (!ackSettled() && Date.now() < settleUntil) await sleep(100);
  const settleMs = Date.now() - settleStarted;
  await erp.close();
  acksExpectedDown = true;
  supervising = false;
  await supervisor;
  const acksExit = await acks.stop();

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
  let refusedRejectedRedeliveries = 0;
  for (const id of payloads.keys()) {
    const names = byAnnotation.get(id) ?? [];
    const annotation = simulator.annotation(id);
    const idRows = rows.filter((row) => row.annotation_id === id);
    if (names.length > 1) duplicated.push(`${id}: ${names.join(', ')}`);
    const complete = names.filter((name) => readFileSync(join(sshd.inboundDir, name)).equals(expected.get(id)!));
    // A re-delivery (late duplicate, operator retry) of bytes the ERP had already rejected is refused
    // with the ERP's verdict: failed_export is then the truth, and the file was still exported once.
    const refusedAsRejected =
      verdicts.get(id) === 'reject' && exportStatus(annotation) === 'failed_export' && annotation.messages.some((m) => m.type === 'error' && m.content.startsWith('The ERP rejected this exact file'));
    if (refusedAsRejected) refusedRejectedRedeliveries++;
    if (complete.length === 0) lost.push(`${id}: Rossum ${annotation.status}, no complete file on the server`);
    else if (exportStatus(annotation) !== 'exported' && !refusedAsRejected) lost.push(`${id}: file on the server but Rossum ${exportStatus(annotation)}`);
    if (idRows.length !== 1 || idRows[0]!.status !== 'uploaded' || !names.includes(idRows[0]!.remote_path ?? '')) {
      ledgerMismatches.push(`${id}: ledger ${JSON.stringify(idRows.map((row) => [row.status, row.remote_path]))}, files ${JSON.stringify(names)}`);
    }
    if (names.length === 1 && complete.length === 1 && (exportStatus(annotation) === 'exported' || refusedAsRejected)) exportedExactlyOnce++;
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

  const ackReport = analyseAcks({ erp, verdicts, ids: [...payloads.keys()], ledgerPath, acksDir: sshd.acksDir, simulator, settleMs, exit: acksExit, outputPath: acksOutputPath, crashes: acksCrashes });

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
    refusedRejectedRedeliveries,
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
    acks: ackReport,
    outputPath,
    ledgerPath,
    inboundDir: sshd.inboundDir,
    sftpPassword: passwordUser.password,
    rossumPassword,
    privateKeyLine: sshd.privateKey.split('\n')[1] ?? '',
  };
}

const ARCHIVES = ['processed', 'unmatched', 'invalid'] as const;
/** What the archive adds to a reused name (`name.2024-01-02T03-04-05-678Z.ext`). */
const STAMP = /\.\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d-\d{3}Z(?=\.[^.]*$|$)/;

/**
 * The ack loop's end state against what the ERP wrote: each ack file recorded and archived once in the
 * right folder; each export's ledger state, outcomes and Rossum changes exactly what its answer calls for.
 */
function analyseAcks(input: {
  erp: ErpSide;
  verdicts: ReadonlyMap<number, ErpVerdict>;
  ids: number[];
  ledgerPath: string;
  acksDir: string;
  simulator: RossumSimulator;
  settleMs: number;
  exit: ExitInfo | null;
  outputPath: string;
  crashes: string[];
}): AckReport {
  const { erp, simulator } = input;
  const db = new Database(input.ledgerPath, { readonly: true, fileMustExist: true });
  const ackFiles = db.prepare('SELECT file_name, disposition, received_at, archived_to FROM ack_files').all() as Array<{ file_name: string; disposition: string; received_at: number; archived_to: string | null }>;
  const exportRows = db.prepare(`SELECT id, annotation_id, ack_state FROM exports WHERE status = 'uploaded'`).all() as Array<{ id: number; annotation_id: number; ack_state: string | null }>;
  const outcomeRows = db.prepare('SELECT export_id, kind, delivery, last_error FROM ack_outcomes ORDER BY id').all() as Array<{ export_id: number; kind: string; delivery: string; last_error: string | null }>;
  db.close();

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
  const inRoot = new Set(readdirSync(input.acksDir, { withFileTypes: true }).filter((entry) => entry.isFile() && !entry.name.startsWith('.')).map((entry) => entry.name));
  const recordedAs = new Map<string, typeof ackFiles>();
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
    if (archived.length === 0) lost.push(`${ack.name}: ${inRoot.has(ack.name) ? 'still in the ack folder' : 'nowhere'}`);
    const problems: string[] = [];
    if (archived.length > 1 || (archived.length === 1 && archived[0] !== `${folder}/${ack.name}`)) problems.push(`archived as ${JSON.stringify(archived)}, expected ${folder}/${ack.name}`);
    if (rows.length !== 1 || rows[0]!.disposition !== disposition) problems.push(`ledger ${JSON.stringify(rows.map((row) => row.disposition))}, expected [${disposition}]`);
    if (problems.length > 0) notProcessedOnce.push(`${ack.name}: ${problems.join('; ')}`);
    else if (archived.length === 1) processedOnce++;
    if (rows[0]) latencies.push(rows[0].received_at - ack.writtenAt);
  }
  for (const [original, archived] of where) if (!erp.written.has(original)) notProcessedOnce.push(`${original}: in ${JSON.stringify(archived)} but the ERP never wrote it`);

  // ── the exports and what Rossum was told ──
  const callsById = new Map<number, typeof simulator.calls>();
  for (const call of simulator.calls) {
    const match = /\/v1\/annotations\/(\d+)\/?$/.exec(call.path);
    if (match && call.method === 'PATCH' && call.status === 200) callsById.set(Number(match[1]), [...(callsById.get(Number(match[1])) ?? []), call]);
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
    const statusPatches = patches.map((call) => (call.body as { status?: string }).status).filter((status): status is string => status !== undefined);
    const failedPatches = statusPatches.filter((status) => status === 'failed_export').length;
    const mark = annotation.metadata.erp_ack as { result?: string; state?: string; codes?: string[] } | undefined;
    const want = { accept: { state: 'accepted', kind: 'accepted' }, reject: { state: 'rejected', kind: 'rejected' }, silent: { state: 'ack_timeout', kind: 'timeout' } }[verdict];
    const problems: string[] = [];
    if (rows.length !== 1 || rows[0]!.ack_state !== want.state) problems.push(`ledger ${JSON.stringify(rows.map((row) => row.ack_state))}, expected ${want.state}`);
    if (outcomes.map((outcome) => outcome.kind).join() !== want.kind) problems.push(`outcomes ${JSON.stringify(outcomes.map((outcome) => outcome.kind))}, expected [${want.kind}]`);
    if (annotation.notes.length > 1 || failedPatches > 1) doubleFlags.push(`${id} (${verdict}): ${annotation.notes.length} notes, ${failedPatches} failed_export changes`);
    if (verdict === 'accept') {
      if (annotation.notes.length === 0 && statusPatches.length === 0) acceptedUntouched++;
      else problems.push(`accepted, but Rossum got ${annotation.notes.length} notes and status changes ${JSON.stringify(statusPatches)}`);
    } else {
      const note = annotation.notes[0]?.content ?? '';
      const says = verdict === 'reject' ? rejectionLines(id) : ['No answer from the ERP'];
      const result = verdict === 'reject' ? 'rejected' : 'timeout';
      const flaggedOnce = annotation.notes.length === 1 && says.every((line) => note.includes(line)) && failedPatches === 1 && statusPatches.length === 1 && mark?.result === result && mark.state === 'done';
      if (flaggedOnce) {
        if (verdict === 'reject') rejectedFlaggedOnce++;
        else silentFlaggedOnce++;
      } else {
        problems.push(`${verdict}: notes ${JSON.stringify(annotation.notes.map((n) => n.content.slice(0, 120)))}, status changes ${JSON.stringify(statusPatches)}, metadata ${JSON.stringify(mark)}`);
      }
    }
    if (problems.length > 0) wrong.push(`${id}: ${problems.join('; ')}`);
  }
  const undelivered = outcomeRows.filter((outcome) => outcome.delivery !== 'delivered' && outcome.delivery !== 'not_needed').map((outcome) => `export ${outcome.export_id} ${outcome.kind}: ${outcome.delivery} ${outcome.last_error ?? ''}`);
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

/** The status Rossum's own export flow gave the annotation last (API changes by the acks process aside). */
function exportStatus(annotation: SimulatedAnnotation): string {
  return annotation.history.filter((change) => change.by === 'export').at(-1)?.status ?? annotation.status;
}

export function formatTable(report: FaultReport): string {
  const { acks } = report;
  const count = (kind: FaultEvent['kind']): number => report.faults.filter((fault) => fault.kind === kind).length;
  const rows: Array<[string, string | number]> = [
    ['profile / seed', `${report.profile.name} / ${report.profile.seed}`],
    ['annotations', report.annotations],
    ['deliveries (incl. duplicates)', report.deliveries],
    ['HTTP attempts (incl. Rossum retries)', report.attempts],
    [
      'faults injected',
      `${report.faults.length} (sshd SIGKILL ${count('sshdKill')}, bridge SIGKILL mid-upload ${count('bridgeKill')}, network stall ${count('stall')}, read-only folders ${count('readOnly')}, SIGTERM in flight ${count('sigterm')}, acks SIGKILL mid-batch ${count('acksKill')}, Rossum API 429/503 window ${count('rossumApi')} (${report.acks.injectedApiReplies} calls refused))`,
    ],
    ['exported exactly once', report.exportedExactlyOnce],
    ['  of which re-sent after the ERP rejected them, refused with its verdict', report.refusedRejectedRedeliveries],
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
    ['— acknowledgements (acks process)', ''],
    ['ERP verdicts (accept / reject / no answer)', `${acks.verdicts.accept} / ${acks.verdicts.reject} / ${acks.verdicts.silent}`],
    ['ack files written by the ERP', `${acks.filesWritten} (naming no export ${acks.noise}, written slowly under the final name ${acks.slowWrites})`],
    ['acks processed exactly once (recorded once, archived once)', acks.processedOnce],
    ['rejections flagged in Rossum exactly once (note + status)', `${acks.rejectedFlaggedOnce} of ${acks.verdicts.reject}`],
    ['no answer flagged in Rossum exactly once (deadline)', `${acks.silentFlaggedOnce} of ${acks.verdicts.silent}`],
    ['accepted, Rossum left alone', `${acks.acceptedUntouched} of ${acks.verdicts.accept}`],
    ['ACK FILES LOST (must be 0)', acks.lost.length],
    ['DOUBLE FLAGS (must be 0)', acks.doubleFlags.length],
    ['acks not processed exactly once (must be 0)', acks.notProcessedOnce.length],
    ['ledger/Rossum disagreeing with the ERP (must be 0)', acks.wrong.length],
    ['outcomes not delivered to Rossum (must be 0)', acks.undelivered.length],
    ['ACKS PROCESS CRASHES (must be 0)', acks.crashes.length],
    ['ERP wrote → ledger recorded (median / max)', `${(acks.latencyMs.median / 1000).toFixed(1)} s / ${(acks.latencyMs.max / 1000).toFixed(1)} s (deadline ${(report.profile.ackDeadlineMs / 1000).toFixed(0)} s)`],
    ['archived files the ledger did not record (killed between move and record)', acks.archiveUnrecorded],
    ['acks settled after the stream / final SIGTERM exit', `${(acks.settleMs / 1000).toFixed(1)} s / ${acks.exit ? (acks.exit.code ?? acks.exit.signal) : '-'}`],
    ['duration', `${(report.durationMs / 1000).toFixed(1)} s`],
  ];
  const width = Math.max(...rows.map(([label]) => label.length));
  return ['', `fault stream (${report.profile.name})`, ...rows.map(([label, value]) => `  ${label.padEnd(width)}  ${value}`), ''].join('\n');
}
