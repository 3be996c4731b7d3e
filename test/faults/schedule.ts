/**
 * What the fault stream does, decided before it starts: which documents are delivered twice, which
 * faults strike in which order after which pauses and for how long, what the ERP answers and how
 * late. Everything comes from the seed, one random stream per consumer, so that timing (which
 * differs from run to run) never changes what is drawn: `FAULT_SEED=n` replays the same schedule.
 */

export type FaultKind =
  | 'sshdKill'
  | 'bridgeKill'
  | 'stall'
  | 'readOnly'
  | 'sigterm'
  | 'acksKill'
  | 'rossumApi'
  | 'tokenExpiry';
export type ErpVerdict = 'accept' | 'reject' | 'silent';
/** What Rossum does to a document download: answers 503, never answers, sends slowly, or breaks off mid-way. */
export type DownloadFault = 'status503' | 'hang' | 'slow' | 'cut';
export const DOWNLOAD_FAULTS: readonly DownloadFault[] = ['status503', 'hang', 'slow', 'cut'];

export interface FaultProfile {
  name: string;
  annotations: number;
  /** Share of annotations delivered more than once (concurrently or later). */
  duplicateShare: number;
  /** Time between two new deliveries. */
  spacingMs: number;
  faults: Record<FaultKind, number>;
  /** What the ERP answers: shares of rejections and of files it never answers; the rest it accepts. */
  erp: { reject: number; silent: number; slowShare: number; noise: number };
  /**
   * Annotations routed to the mapping with a `document:` block (the original PDF goes first): their share,
   * the largest PDF (some above the mapping's buffer_bytes, so streamed), and the share whose first download fails.
   */
  scans: { share: number; maxBytes: number; faultShare: number };
  /** The mapping's ack deadline: long enough for answers delayed by the faults, short enough to see the silent ones flagged. */
  ackDeadlineMs: number;
  seed: number;
}

export const PROFILES: Record<string, Omit<FaultProfile, 'seed'>> = {
  ci: {
    name: 'ci',
    annotations: 240,
    duplicateShare: 0.3,
    spacingMs: 110,
    faults: {
      sshdKill: 3,
      bridgeKill: 2,
      stall: 1,
      readOnly: 1,
      sigterm: 1,
      acksKill: 2,
      rossumApi: 2,
      tokenExpiry: 1,
    },
    erp: { reject: 0.12, silent: 0.06, slowShare: 0.25, noise: 4 },
    scans: { share: 0.2, maxBytes: 300_000, faultShare: 0.25 },
    ackDeadlineMs: 15_000,
  },
  soak: {
    name: 'soak',
    annotations: 3000,
    duplicateShare: 0.3,
    spacingMs: 60,
    faults: {
      sshdKill: 20,
      bridgeKill: 12,
      stall: 6,
      readOnly: 6,
      sigterm: 6,
      acksKill: 12,
      rossumApi: 8,
      tokenExpiry: 4,
    },
    erp: { reject: 0.12, silent: 0.06, slowShare: 0.25, noise: 30 },
    scans: { share: 0.25, maxBytes: 2_000_000, faultShare: 0.2 },
    ackDeadlineMs: 15_000,
  },
};

/** The bridge's webhook deadline in the fault config: a network stall must outlast it. */
export const WEBHOOK_DEADLINE_MS = 3_000;
export const FIRST_ANNOTATION_ID = 900_000;

/** Faults of the acks side run on their own schedule while new documents still arrive (the ERP has answers to write). */
const ACK_SIDE: readonly FaultKind[] = ['acksKill', 'rossumApi'];

/** One fault: the pause before it, and how long it lasts (down time, stall, read-only time, restart pause, API window). */
export interface PlannedFault {
  kind: FaultKind;
  pauseBeforeMs: number;
  durationMs: number;
  /**
   * An API window's own documents, kept out of the stream and sent once the window is open: the ERP rejects
   * them, so the acks process has something to tell Rossum however late the window comes (by construction).
   */
  annotationIds: number[];
}

export interface PlannedDocument {
  annotationId: number;
  /** A second delivery: at the same moment (racing the first), or this many ms later. */
  again: 'none' | 'concurrent' | number;
}

export interface PlannedAnswer {
  verdict: ErpVerdict;
  /** After the ERP noticed the file. */
  delayMs: number;
  /** A rejection written slowly under its final name. */
  slow: boolean;
}

export interface PlannedScan {
  /** Size of the original PDF. */
  bytes: number;
  /** What its first download meets (Rossum's retry then gets it). */
  fault: DownloadFault | null;
}

export interface FaultSchedule {
  seed: number;
  /** The stream's documents in order (without those held for the API windows). */
  documents: PlannedDocument[];
  /** Re-deliveries of documents already sent that keep traffic flowing until the last fault is over (used in a cycle). */
  redeliveries: number[];
  /** Upload-side faults, one after another. */
  faults: PlannedFault[];
  /** Acks-side faults on their own track: kills first (they need new answers behind them), API windows after (they need outcomes to refuse). */
  ackFaults: PlannedFault[];
  /** Every annotation of the run (stream and API windows), in id order. */
  answers: Map<number, PlannedAnswer>;
  /** Pauses between acks that name no export. */
  noisePausesMs: number[];
  /** Annotations whose mapping uploads the original document first, and what their download meets. */
  scans: Map<number, PlannedScan>;
}

/** Deterministic PRNG (mulberry32). */
export function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A seed for a run nobody asked to replay. */
export function freshSeed(): number {
  return Math.floor(Math.random() * 2 ** 31);
}

export function planFaultStream(profile: FaultProfile): FaultSchedule {
  const stream = (salt: number): (() => number) => random(profile.seed ^ salt);
  const documentRand = stream(0);
  const faultRand = stream(0x68e31da4);
  const ackRand = stream(0x27d4eb2f);
  const erpRand = stream(0x5bd1e995);
  const noiseRand = stream(0x1b873593);
  const redeliveryRand = stream(0x85ebca6b);

  const ids = Array.from({ length: profile.annotations }, (_, i) => FIRST_ANNOTATION_ID + i);
  const answers = new Map<number, PlannedAnswer>();
  for (const annotationId of ids) {
    const r = erpRand();
    const verdict: ErpVerdict =
      r < profile.erp.reject ? 'reject' : r < profile.erp.reject + profile.erp.silent ? 'silent' : 'accept';
    answers.set(annotationId, {
      verdict,
      delayMs: 150 + erpRand() * 750,
      slow: verdict === 'reject' && erpRand() < profile.erp.slowShare,
    });
  }
  // Two rejected documents per API window, taken from the end of the stream.
  const heldForApiWindows = ids
    .filter((id) => answers.get(id)!.verdict === 'reject')
    .slice(-2 * profile.faults.rossumApi);
  const documents = ids
    .filter((id) => !heldForApiWindows.includes(id))
    .map((annotationId): PlannedDocument => {
      if (documentRand() >= profile.duplicateShare) return { annotationId, again: 'none' };
      return { annotationId, again: documentRand() < 0.5 ? 'concurrent' : documentRand() * 3_000 };
    });
  // Only documents the stream has sent: those held for an API window must reach the bridge inside it.
  const streamIds = documents.map((document) => document.annotationId);
  const redeliveries = Array.from(
    { length: profile.annotations * 4 },
    () => streamIds[Math.floor(redeliveryRand() * streamIds.length)]!,
  );

  const streamSpanMs = profile.annotations * profile.spacingMs;
  const uploadKinds = shuffled(
    profile,
    (Object.keys(profile.faults) as FaultKind[]).filter((kind) => !ACK_SIDE.includes(kind)),
    faultRand,
  );
  // Faults take ~15 s themselves; spread them over the first part of the stream.
  const faultGapMs = Math.max(300, (streamSpanMs * 0.6 - 15_000) / (uploadKinds.length + 1));
  const faults = uploadKinds.map((kind) => ({
    kind,
    pauseBeforeMs: faultGapMs * (0.5 + faultRand()),
    durationMs: faultDuration(kind, faultRand),
    annotationIds: [],
  }));

  const ackKinds = [...shuffled(profile, ['acksKill'], ackRand), ...shuffled(profile, ['rossumApi'], ackRand)];
  // Acks-side faults must end while new documents still arrive: a kill waits up to 8 s for answers to pile up and
  // then for the first to be recorded, an API window lasts a few seconds. Budget that, spread the rest as gaps.
  const ackBudgetMs = ackKinds.reduce((total, kind) => total + (kind === 'acksKill' ? 8_000 : 4_000), 0);
  const ackGapMs = Math.max(300, (streamSpanMs - 4_000 - ackBudgetMs) / (ackKinds.length + 1));
  let apiWindow = 0;
  const ackFaults = ackKinds.map((kind) => ({
    kind,
    pauseBeforeMs: ackGapMs * (0.5 + ackRand()),
    durationMs: faultDuration(kind, ackRand),
    annotationIds: kind === 'rossumApi' ? heldForApiWindows.slice(2 * apiWindow, 2 * ++apiWindow) : [],
  }));

  const noisePausesMs = Array.from(
    { length: profile.erp.noise },
    () => (streamSpanMs / profile.erp.noise) * (0.5 + noiseRand()),
  );

  // Its own stream: adding scans changed nothing else a seed draws. Every download fault kind at least once.
  const scanRand = stream(0x3c6ef372);
  const scans = new Map<number, PlannedScan>();
  let faulted = 0;
  for (const id of streamIds) {
    if (scanRand() >= profile.scans.share) continue;
    const bytes = 2_000 + Math.floor(scanRand() * (profile.scans.maxBytes - 2_000));
    const fault = scanRand() < profile.scans.faultShare ? DOWNLOAD_FAULTS[faulted++ % DOWNLOAD_FAULTS.length]! : null;
    scans.set(id, { bytes, fault });
  }

  return { seed: profile.seed, documents, redeliveries, faults, ackFaults, answers, noisePausesMs, scans };
}

function shuffled(profile: FaultProfile, kinds: FaultKind[], rand: () => number): FaultKind[] {
  const plan: FaultKind[] = [];
  for (const kind of kinds) for (let i = 0; i < profile.faults[kind]; i++) plan.push(kind);
  for (let i = plan.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [plan[i], plan[j]] = [plan[j]!, plan[i]!];
  }
  return plan;
}

function faultDuration(kind: FaultKind, rand: () => number): number {
  switch (kind) {
    case 'sshdKill':
      return 200 + Math.round(rand() * 1_300);
    case 'bridgeKill':
    case 'acksKill':
      return 200 + Math.round(rand() * 600);
    case 'stall':
      return WEBHOOK_DEADLINE_MS + 1_000 + Math.round(rand() * 1_500);
    case 'readOnly':
      return 500 + Math.round(rand() * 1_500);
    case 'rossumApi':
      return 1_500 + Math.round(rand() * 2_500);
    case 'sigterm':
    case 'tokenExpiry':
      return 0;
  }
}
