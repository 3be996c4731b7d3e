/**
 * open → (time reached or full) closed → sending (a sender holds the lease) → sent. Only an `open` batch
 * takes documents; a `closed` or `sending` batch is frozen, so a retry renders the same file.
 */
export type BatchStatus = 'open' | 'closed' | 'sending' | 'sent';

export interface BatchRecord {
  id: number;
  mappingName: string;
  target: string;
  /** The batch number (`{batch}` / `{seq}`), taken from the mapping's counter as the batch opened. */
  number: number;
  status: BatchStatus;
  openedAt: number;
  closesAt: number;
  /** When it stopped taking documents (its time, full, or claimed by a sender); the file's `meta.now`. */
  closedAt: number | null;
  leaseOwner: string | null;
  leaseExpiresAt: number | null;
  attempts: number;
  /** A failed send waits until then. */
  nextAttemptAt: number | null;
  /** Planned before the upload: a sender that takes over checks the server for exactly this file. */
  fileName: string | null;
  sha256: string | null;
  bytes: number | null;
  remotePath: string | null;
  sentAt: number | null;
  error: string | null;
  /** Documents in it. */
  documents: number;
}

/** A document's share of a batch, as collected at the webhook. */
export interface BatchEntryContent {
  annotationId: number;
  /** annotation × target × sha256 of the entry: the same content is collected (and sent) once. */
  idempotencyKey: string;
  mappingHash: string;
  /** The mapping's rendered share of this document (JSON of the mapping's BatchEntry). */
  entry: string;
  documentRef: string | null;
  rossumBaseUrl: string | null;
  requestId: string;
}

export interface BatchEntryRecord extends BatchEntryContent {
  id: number;
  batchId: number;
  createdAt: number;
  updatedAt: number;
  /** A later export of the document replaced its entry while the batch was open. */
  replaced: boolean;
  /** Its `exports` row, once the batch is sent. */
  exportId: number | null;
}

export interface BatchEntryInput extends BatchEntryContent {
  mappingName: string;
  target: string;
  /** Where a new batch takes its number from. */
  counter: string;
  start: number;
  /** When a batch opened at `openedAt` closes. */
  closesAt(openedAt: number): number;
  maxDocuments: number | undefined;
}

export type BatchAddResult =
  /** In the open batch now (`replaced`: instead of the document's earlier entry); `closed` when this filled it. */
  | { outcome: 'added'; batch: BatchRecord; replaced: boolean; closed: boolean }
  /** This exact content is already waiting in a batch that has not been sent. */
  | { outcome: 'waiting'; batch: BatchRecord }
  /** This exact content was sent in a batch: its `exports` row answers. */
  | { outcome: 'sent'; exportId: number };

export interface BatchFilter {
  status?: BatchStatus[];
  mappingName?: string;
  /** Only batches this annotation has (or had) an entry in. */
  annotationId?: number;
  limit?: number;
}
