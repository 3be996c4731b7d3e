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
  mappingName?: string;
  target?: string;
  annotationId?: number;
  /** Only exports created at or after this epoch ms. */
  createdAfter?: number;
  createdBefore?: number;
  limit?: number;
}

/**
 * Durable record of every export. The unique idempotency key decides who uploads, across
 * requests, processes and replicas. SQLite by default; PostgreSQL implements the same interface.
 */
export interface Ledger {
  readonly kind: 'sqlite' | 'postgres';
  claim(input: ClaimInput): Promise<ClaimResult>;
  complete(id: number, owner: string, result: { remotePath: string; reply: StoredReply }): Promise<void>;
  fail(id: number, owner: string, failure: { code: string; message: string; permanent: boolean; reply: StoredReply }): Promise<void>;
  get(id: number): Promise<ExportRecord | undefined>;
  list(filter?: ExportFilter): Promise<ExportRecord[]>;
  events(exportId: number): Promise<LedgerEvent[]>;
  recordEvent(exportId: number, kind: string, detail?: Record<string, unknown>): Promise<void>;
  /** Readiness: the ledger accepts writes. */
  ping(): Promise<void>;
  close(): Promise<void>;
}
