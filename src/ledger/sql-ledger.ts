import * as acks from './ack-operations.ts';
import * as batches from './batch-operations.ts';
import type { BatchAddResult, BatchEntryInput, BatchEntryRecord, BatchFilter, BatchRecord } from './batch-types.ts';
import { consoleLedger, type ConsoleLedger } from './console-ledger.ts';
import type { Driver } from './driver.ts';
import * as exports from './export-operations.ts';
import * as files from './file-operations.ts';
import type {
  AckDelivery,
  AckFileInput,
  AckLookup,
  AckOutcome,
  ClaimInput,
  ClaimResult,
  ExportFilter,
  ExportRecord,
  FailureInput,
  HoldState,
  Ledger,
  LedgerEvent,
  OutcomeSettlement,
  RecordAckResult,
  SequenceRequest,
  StoredReply,
} from './types.ts';

/** The `Ledger` for any driver: each operation is written once, in `export-operations.ts` and `ack-operations.ts`. */
export class SqlLedger implements Ledger {
  readonly kind: 'sqlite' | 'postgres';
  private readonly context: exports.LedgerContext;
  /** The operator console's reads and recorded actions, over the same connection. */
  readonly console: ConsoleLedger;

  constructor(driver: Driver, now?: () => number) {
    this.kind = driver.dialect.name;
    this.context = exports.ledgerContext(driver, now);
    this.console = consoleLedger(this.context);
  }

  claim(input: ClaimInput): Promise<ClaimResult> {
    return exports.claim(this.context, input);
  }

  recordDuplicate(idempotencyKey: string, requestId: string): Promise<void> {
    return exports.recordDuplicate(this.context, idempotencyKey, requestId);
  }

  complete(id: number, owner: string, result: { remotePath: string; reply: StoredReply }): Promise<void> {
    return exports.complete(this.context, id, owner, result);
  }

  fail(id: number, owner: string, failure: FailureInput): Promise<void> {
    return exports.fail(this.context, id, owner, failure);
  }

  get(id: number): Promise<ExportRecord | undefined> {
    return exports.getExport(this.context, id);
  }

  list(filter: ExportFilter = {}): Promise<ExportRecord[]> {
    return exports.listExports(this.context, filter);
  }

  events(exportId: number): Promise<LedgerEvent[]> {
    return exports.listEvents(this.context, exportId);
  }

  recordEvent(exportId: number, kind: string, detail: Record<string, unknown> = {}): Promise<void> {
    return exports.recordEvent(this.context, exportId, kind, detail);
  }

  allocateSequence(request: SequenceRequest): Promise<number> {
    return files.allocateSequence(this.context, request);
  }

  recordDocument(id: number, owner: string, document: { path: string; sha256: string; bytes: number }): Promise<void> {
    return files.recordDocument(this.context, id, owner, document);
  }

  addToBatch(input: BatchEntryInput): Promise<BatchAddResult> {
    return batches.addToBatch(this.context, input);
  }

  claimDueBatch(owner: string, leaseMs: number): Promise<BatchRecord | undefined> {
    return batches.claimDueBatch(this.context, owner, leaseMs);
  }

  releaseBatch(id: number, deadOwner: string): Promise<boolean> {
    return batches.releaseBatch(this.context, id, deadOwner);
  }

  planBatchFile(id: number, owner: string, file: { fileName: string; sha256: string; bytes: number }): Promise<void> {
    return batches.planBatchFile(this.context, id, owner, file);
  }

  completeBatch(id: number, owner: string, result: { remotePath: string; reply: StoredReply }): Promise<void> {
    return batches.completeBatch(this.context, id, owner, result);
  }

  failBatch(id: number, owner: string, failure: { error: string; retryAt: number }): Promise<void> {
    return batches.failBatch(this.context, id, owner, failure);
  }

  getBatch(id: number): Promise<BatchRecord | undefined> {
    return batches.getBatch(this.context, id);
  }

  listBatches(filter: BatchFilter = {}): Promise<BatchRecord[]> {
    return batches.listBatches(this.context, filter);
  }

  batchMates(exportId: number): Promise<ExportRecord[]> {
    return batches.batchMates(this.context, exportId);
  }

  batchEntries(batchId: number): Promise<BatchEntryRecord[]> {
    return batches.batchEntries(this.context, batchId);
  }

  awaitAcks(rules: ReadonlyArray<{ mappingName: string; deadlineMs: number; since: number }>): Promise<number> {
    return acks.awaitAcks(this.context, rules);
  }

  findExportForAck(lookup: AckLookup): Promise<ExportRecord | undefined> {
    return acks.findExportForAck(this.context, lookup);
  }

  async recordAck(input: AckFileInput): Promise<RecordAckResult> {
    return (await this.recordAcks([input]))[0] as RecordAckResult;
  }

  async recordAcks(inputs: readonly AckFileInput[]): Promise<RecordAckResult[]> {
    return inputs.length === 0 ? [] : acks.recordAcks(this.context, inputs);
  }

  markAckFileArchived(ackFileId: number, archivedTo: string | null): Promise<void> {
    return this.markAckFilesArchived([{ ackFileId, archivedTo }]);
  }

  async markAckFilesArchived(archived: ReadonlyArray<{ ackFileId: number; archivedTo: string | null }>): Promise<void> {
    if (archived.length > 0) await acks.markAckFilesArchived(this.context, archived);
  }

  expireAcks(limit = 500, targets?: readonly string[]): Promise<AckOutcome[]> {
    return acks.expireAcks(this.context, limit, targets);
  }

  markNoteAttempted(id: number): Promise<void> {
    return acks.markNoteAttempted(this.context, id);
  }

  retryPendingNow(): Promise<number> {
    return acks.retryPendingNow(this.context);
  }

  claimOutcomes(owner: string, leaseMs: number, limit = 200): Promise<AckOutcome[]> {
    return acks.claimOutcomes(this.context, owner, leaseMs, limit);
  }

  renewOutcomeLease(id: number, owner: string, generation: number, leaseMs: number): Promise<boolean> {
    return acks.renewOutcomeLease(this.context, id, owner, generation, leaseMs);
  }

  settleOutcome(id: number, owner: string, settlement: OutcomeSettlement, generation?: number): Promise<void> {
    return acks.settleOutcome(this.context, id, owner, settlement, generation);
  }

  outcomes(exportId: number): Promise<AckOutcome[]> {
    return acks.outcomesOf(this.context, exportId);
  }

  outcomeBacklog(): Promise<Record<AckDelivery, number>> {
    return acks.outcomeBacklog(this.context);
  }

  startHold(exportId: number, until: number): Promise<void> {
    return acks.startHold(this.context, exportId, until);
  }

  moveHold(exportId: number, from: readonly HoldState[], to: HoldState): Promise<boolean> {
    return acks.moveHold(this.context, exportId, from, to);
  }

  ping(): Promise<void> {
    return this.context.driver.ping();
  }

  close(): Promise<void> {
    return this.context.driver.close();
  }
}
