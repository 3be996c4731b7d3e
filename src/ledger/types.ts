import type { BatchAddResult, BatchEntryInput, BatchEntryRecord, BatchFilter, BatchRecord } from './batch-types.ts';

/** Lifecycle of one export (one annotation × target × rendered content). */
export type ExportStatus =
  /** A process holds the lease and is uploading. */
  | 'uploading'
  /** On the target under its final name. */
  | 'uploaded'
  /** Failed for good (mapping, policy); duplicates get the same answer. */
  | 'failed'
  /** Failed transiently; the next delivery takes over. */
  | 'retryable';

/**
 * Where an uploaded export stands with the ERP (null until the ack loop takes it on). Kept apart from
 * `status` so the upload's idempotency rules never see ack states.
 */
export type AckState = 'awaiting_ack' | 'accepted' | 'rejected' | 'ack_timeout' | 'ack_invalid';

/** What `status` shows: the ack state once there is one, else the upload status. */
export type ExportState = ExportStatus | AckState;

export const EXPORT_STATES: readonly ExportState[] = [
  'uploading',
  'uploaded',
  'failed',
  'retryable',
  'awaiting_ack',
  'accepted',
  'rejected',
  'ack_timeout',
  'ack_invalid',
];

/** The HTTP answer given for an export, replayed to duplicates. */
export interface StoredReply {
  statusCode: number;
  body: unknown;
}

export interface ExportRecord {
  id: number;
  idempotencyKey: string;
  annotationId: number;
  mappingName: string;
  mappingHash: string;
  target: string;
  /** Name the mapping asked for, relative to the target folder. */
  plannedPath: string;
  /** Name the file really got (differs under the `version` policy); null until uploaded. */
  remotePath: string | null;
  sha256: string;
  bytes: number;
  status: ExportStatus;
  errorCode: string | null;
  error: string | null;
  reply: StoredReply | null;
  attempts: number;
  leaseOwner: string | null;
  leaseExpiresAt: number | null;
  requestIds: string[];
  createdAt: number;
  updatedAt: number;
  uploadedAt: number | null;
  /** The document's own number (`document_id` datapoint), which some ERPs quote in their acks. */
  documentRef: string | null;
  /** The export payload's `base_url`: where to tell Rossum about the ack when no API URL is configured. */
  rossumBaseUrl: string | null;
  ackState: AckState | null;
  /** No ack by then → `ack_timeout`. */
  ackDeadlineAt: number | null;
  ackAt: number | null;
  /** The ack file that decided `ackState`. */
  ackFile: string | null;
  /** The ERP's own reference (e.g. its document number) from a positive ack. */
  erpReference: string | null;
  /** Held-export mode: Rossum polls until this time (null = not held). */
  holdUntil: number | null;
  /** pending = Rossum is polling; answered = the poll reply carried the ERP's verdict; released = the ack loop tells Rossum. */
  holdState: HoldState | null;
  /** The number `{seq}` rendered as (null when the mapping reads no sequence). */
  sequenceNumber: number | null;
  /** Where the original document goes beside the data file (null when the mapping uploads none). */
  documentPath: string | null;
  /** Set once the document is in place: a retry after a crash finishes the pair without uploading it again. */
  documentSha256: string | null;
  documentBytes: number | null;
  documentUploadedAt: number | null;
}

export type HoldState = 'pending' | 'answered' | 'released';

/** `ackState ?? status`. */
export function stateOf(record: Pick<ExportRecord, 'status' | 'ackState'>): ExportState {
  return record.ackState ?? record.status;
}

/** The rendered bytes kept after a transient upload failure, with the sha256 they were checked against when kept. */
export interface KeptPayload {
  sha256: string;
  content: Buffer;
  keptAt: number;
}

export interface AckFileContent {
  content: Buffer;
  /** The whole file's size; more than `content.length` when the stored copy was cut. */
  totalBytes: number;
  truncated: boolean;
  encoding: string | null;
}

export interface FailureInput {
  code: string;
  message: string;
  permanent: boolean;
  reply: StoredReply;
  /** The rendered bytes, kept for an operator's retry after a transient failure (ignored for a permanent one). */
  keep?: Uint8Array;
}

export interface ClaimInput {
  idempotencyKey: string;
  annotationId: number;
  requestId: string;
  mappingName: string;
  mappingHash: string;
  target: string;
  plannedPath: string;
  sha256: string;
  bytes: number;
  /** Who is claiming (host:pid:random), and for how long before others may take over. */
  owner: string;
  leaseMs: number;
  documentRef?: string | null;
  rossumBaseUrl?: string | null;
  /**
   * `createdAt` of a new record (default: now): the clock a render read, so a later attempt of the same
   * export can render the same bytes.
   */
  receivedAt?: number;
  sequenceNumber?: number | null;
  documentPath?: string | null;
}

/** One number from a named counter for one export content (`key`); the same key always gets the same number. */
export interface SequenceRequest {
  counter: string;
  key: string;
  /** The first number a new counter hands out; raising it later moves the counter forward (never back). */
  start: number;
}

export type ClaimResult =
  /** The caller must upload; `takeover` when an earlier attempt died or failed transiently. */
  | { outcome: 'claimed'; record: ExportRecord; takeover: boolean }
  /** Already answered for good: replay `record.reply`. */
  | { outcome: 'done'; record: ExportRecord }
  /** Another live worker holds the lease. */
  | { outcome: 'in_progress'; record: ExportRecord };

export interface LedgerEvent {
  id: number;
  exportId: number;
  at: number;
  kind: string;
  detail: Record<string, unknown>;
}

export interface ExportFilter {
  status?: ExportStatus[];
  /** Matches `ackState ?? status` (what `status` shows). */
  state?: ExportState[];
  mappingName?: string;
  target?: string;
  annotationId?: number;
  /** Only exports created at or after this epoch ms. */
  createdAfter?: number;
  createdBefore?: number;
  limit?: number;
}

/** What an ERP said about one export. `invalid` = the ack file names it but cannot be read. */
export type AckVerdict = 'accepted' | 'rejected' | 'invalid';

export interface AckMessage {
  code?: string;
  text: string;
}

export interface AckEntryInput {
  /** Position in the ack file (a CSV row); unique within the file. */
  index: number;
  exportId: number;
  verdict: AckVerdict;
  messages: AckMessage[];
  erpReference?: string | null;
  /**
   * An on-time acceptance of an export that is not held needs no Rossum call (nothing to store): its
   * outcome is recorded as `not_needed` instead of going through the outbox.
   */
  quietIfAccepted?: boolean;
}

export interface AckFileInput {
  /** Target whose exports the file answers. */
  source: string;
  /** Path relative to the ack folder's target. */
  fileName: string;
  /** Content hash: the same name with new content is a new ack. */
  sha256: string;
  convention: string;
  disposition: 'matched' | 'unmatched' | 'invalid';
  error?: string | null;
  /** When the file was first seen (for the "landed → Rossum told" delay). */
  landedAt?: number;
  /** The bytes as read (absent when the file was not read); the ledger keeps the first 64 kB for the console. */
  content?: Uint8Array;
  /** The encoding the convention read it in, to show it as text. */
  contentEncoding?: string;
  entries: AckEntryInput[];
}

/**
 * One thing Rossum must be told (the outbox). `duplicate` needs no call; `*_late` follow a timeout or an
 * unreadable ack.
 */
export type AckOutcomeKind =
  | 'accepted'
  | 'rejected'
  | 'invalid'
  | 'timeout'
  | 'accepted_late'
  | 'rejected_late'
  | 'duplicate';

/**
 * pending → delivered (Rossum told), not_needed, by_hold (the held export's poll reply told it),
 * left_alone (an operator or another system had moved the annotation: its status was kept, the verdict
 * went into a note), gone (the annotation was deleted for good: 404 or purged) or failed (needs a human).
 */
export type AckDelivery = 'pending' | 'delivered' | 'not_needed' | 'by_hold' | 'left_alone' | 'gone' | 'failed';

export interface AckOutcomeDetail {
  ackFile?: string;
  messages: AckMessage[];
  erpReference?: string | null;
  /** The ack state before this outcome. */
  previousState?: ExportState | null;
  deadlineAt?: number | null;
  landedAt?: number;
}

export interface AckOutcome {
  id: number;
  exportId: number;
  ackFileId: number | null;
  kind: AckOutcomeKind;
  detail: AckOutcomeDetail;
  delivery: AckDelivery;
  /** Claims so far; each claim adds one, so it is also the claim's generation (the fencing token). */
  attempts: number;
  nextAttemptAt: number;
  createdAt: number;
  deliveredAt: number | null;
  lastError: string | null;
  /** When delivery was last tried (claims count as tries). */
  lastAttemptAt: number | null;
  /** What Rossum ended up with, in words ("status failed_export", "left alone: annotation was in to_review"). */
  result: string | null;
  /** A delivery got as far as sending the note (it may be in Rossum even if the attempt failed). */
  noteAttempted: boolean;
}

export interface RecordAckResult {
  ackFileId: number;
  /** The same file (name and content) was recorded before, e.g. by a process that died before archiving it. */
  alreadyRecorded: boolean;
  outcomes: AckOutcome[];
}

export interface AckLookup {
  target: string;
  by: 'name' | 'stem' | 'annotationId' | 'documentRef';
  value: string;
  /** Only exports of these mappings. */
  mappingNames?: readonly string[];
}

export type OutcomeSettlement =
  | { delivery: 'delivered' | 'not_needed' | 'by_hold'; note?: string }
  | { delivery: 'left_alone'; rossumStatus: string; note?: string }
  | { delivery: 'failed' | 'gone'; error: string }
  | { delivery: 'retry'; error: string; retryAt: number };

/**
 * Durable record of every export. The unique idempotency key decides who uploads, across
 * requests, processes and replicas. SQLite by default; PostgreSQL implements the same interface.
 */
export interface Ledger {
  readonly kind: 'sqlite' | 'postgres';
  claim(input: ClaimInput): Promise<ClaimResult>;
  /** A delivery answered by an in-flight export of the same key (never claimed itself): its request_id and the fact are recorded. */
  recordDuplicate(idempotencyKey: string, requestId: string): Promise<void>;
  complete(id: number, owner: string, result: { remotePath: string; reply: StoredReply }): Promise<void>;
  /** A transient failure keeps `failure.keep` (when they hash to the recorded sha256) for a console retry; a permanent one frees them. */
  fail(id: number, owner: string, failure: FailureInput): Promise<void>;
  get(id: number): Promise<ExportRecord | undefined>;
  list(filter?: ExportFilter): Promise<ExportRecord[]>;
  events(exportId: number): Promise<LedgerEvent[]>;
  recordEvent(exportId: number, kind: string, detail?: Record<string, unknown>): Promise<void>;
  /** The next number of a counter, or the one this key already has (safe across processes and replicas). */
  allocateSequence(request: SequenceRequest): Promise<number>;
  /** The original document is in place beside the (not yet uploaded) data file of a claimed export. */
  recordDocument(id: number, owner: string, document: { path: string; sha256: string; bytes: number }): Promise<void>;

  // ── batches ──
  /** Records a document's entry in its mapping's open batch (opening one, closing a full or overdue one). */
  addToBatch(input: BatchEntryInput): Promise<BatchAddResult>;
  /** Leases the batch due longest, so one sender of several sends it. */
  claimDueBatch(owner: string, leaseMs: number): Promise<BatchRecord | undefined>;
  /** Gives a dead sender's batch back to the queue; true when this caller did. */
  releaseBatch(id: number, deadOwner: string): Promise<boolean>;
  /** The file about to be uploaded (a sender taking over looks for exactly it on the server). */
  planBatchFile(id: number, owner: string, file: { fileName: string; sha256: string; bytes: number }): Promise<void>;
  /** Sent: each document of the batch becomes an uploaded export of its file. */
  completeBatch(id: number, owner: string, result: { remotePath: string; reply: StoredReply }): Promise<void>;
  failBatch(id: number, owner: string, failure: { error: string; retryAt: number }): Promise<void>;
  getBatch(id: number): Promise<BatchRecord | undefined>;
  listBatches(filter?: BatchFilter): Promise<BatchRecord[]>;
  batchEntries(batchId: number): Promise<BatchEntryRecord[]>;
  /** The exports sent in the same batch file as this one (an ack naming the file answers for all of them). */
  batchMates(exportId: number): Promise<ExportRecord[]>;

  // ── acknowledgements ──
  /** Uploaded exports of these mappings (not yet tracked, uploaded after `since`) start waiting for an ack. */
  awaitAcks(rules: ReadonlyArray<{ mappingName: string; deadlineMs: number; since: number }>): Promise<number>;
  /** The export an ack refers to: an open one (awaiting, timed out) first, then the newest. */
  findExportForAck(lookup: AckLookup): Promise<ExportRecord | undefined>;
  /** Atomically records an ack file, moves each named export to its new state and queues what Rossum must hear. */
  recordAck(input: AckFileInput): Promise<RecordAckResult>;
  /** `recordAck` for several files in one transaction (one commit per batch, not per file); results in input order. */
  recordAcks(inputs: readonly AckFileInput[]): Promise<RecordAckResult[]>;
  markAckFileArchived(ackFileId: number, archivedTo: string | null): Promise<void>;
  /** `markAckFileArchived` for several files in one transaction. */
  markAckFilesArchived(archived: ReadonlyArray<{ ackFileId: number; archivedTo: string | null }>): Promise<void>;
  /** Awaiting exports past their deadline → `ack_timeout`, each with a `timeout` outcome; `targets` limits it to exports of those targets. */
  expireAcks(limit?: number, targets?: readonly string[]): Promise<AckOutcome[]>;
  /** Leases pending outcomes due now, oldest first, so one process delivers each. */
  claimOutcomes(owner: string, leaseMs: number, limit?: number): Promise<AckOutcome[]>;
  /**
   * Fencing, right before each write to Rossum: extends the lease of this claim (`generation` = the
   * outcome's `attempts` when it was claimed) in one atomic statement; false when another process (or the
   * console) took the outcome over, and then the caller must not write.
   */
  renewOutcomeLease(id: number, owner: string, generation: number, leaseMs: number): Promise<boolean>;
  /** Throws `LEDGER_LEASE_LOST` when the outcome is no longer this owner's (this claim's, with `generation`). */
  settleOutcome(id: number, owner: string, settlement: OutcomeSettlement, generation?: number): Promise<void>;
  /** Notes that a delivery is about to post the outcome's note (a retry then looks for it before posting again). */
  markNoteAttempted(id: number): Promise<void>;
  /** Every pending outcome becomes due now (e.g. after new Rossum credentials); returns how many. */
  retryPendingNow(): Promise<number>;
  outcomes(exportId: number): Promise<AckOutcome[]>;
  /** Counts of outcomes by delivery state (for metrics and `status`). */
  outcomeBacklog(): Promise<Record<AckDelivery, number>>;
  startHold(exportId: number, until: number): Promise<void>;
  /** Compare-and-set of the hold state; true when this caller made the change. */
  moveHold(exportId: number, from: readonly HoldState[], to: HoldState): Promise<boolean>;

  /** Readiness: the ledger accepts writes. */
  ping(): Promise<void>;
  close(): Promise<void>;
}
