import { createHash } from 'node:crypto';
import { isBridgeError } from '../errors.ts';
import { nameParts, type AckEntryInput, type AckFileInput, type ExportRecord, type Ledger } from '../ledger/index.ts';
import type { Logger } from '../observability/index.ts';
import type { ReadOptions } from '../transport/index.ts';
import type { AcksConfig } from './config.ts';
import { AckParseError, type AckReference, type ParsedAckEntry } from './conventions.ts';
import type { ReadyFile } from './discovery.ts';
import type { Handler, Source } from './sources.ts';

/** A file read and interpreted, waiting to be recorded with its batch. */
export interface Prepared {
  file: ReadyFile;
  input: AckFileInput;
  unmatched: string[];
}

export interface AckReaderOptions {
  ledger: Ledger;
  acks: AcksConfig;
  logger: Logger;
}

const EMPTY = Buffer.alloc(0);
/** Entries of one ack file are numbered; the documents of a batch one entry answers for are numbered within it. */
const BATCH_INDEX_SPREAD = 1_000_000;

/**
 * Interprets one ack file: reads it (within the size limit), picks the convention reading it, and
 * finds the exports it names in the ledger. Every file ends as something to record — matched,
 * unmatched or invalid — except files of no convention, files gone, and answers to uploads not confirmed yet.
 */
export class AckReader {
  /** Ack files left in place because the export they name is not confirmed uploaded yet (warned once). */
  private readonly waitingForUpload = new Set<string>();

  constructor(private readonly options: AckReaderOptions) {}

  /** Null when the file is not ours, gone, or must wait; throws only transient failures (and permanent transport ones). */
  async prepare(source: Source, file: ReadyFile, signal?: AbortSignal): Promise<Prepared | null> {
    const { logger, acks } = this.options;
    const handlers = source.handlers.filter((candidate) => candidate.convention.claims(file.name));
    if (handlers.length === 0) {
      if (!source.unknownNames.has(file.name))
        logger.warn(
          { ackSource: source.name, ackFile: file.path },
          'no configured ack convention reads a file of this name; left in place',
        );
      source.unknownNames.add(file.name);
      return null;
    }
    const { maxFileBytes } = acks.limits;
    let bytes: Buffer = EMPTY;
    // Unread files (a bare `.ok`) are told apart by name alone: their content hash is that of nothing.
    if (handlers.some((handler) => handler.convention.readsBody(file.name))) {
      if (file.size > maxFileBytes)
        return this.refuse(source, handlers, file, this.tooLargeReason(file, file.size), file.size);
      try {
        const readOptions: ReadOptions = {
          maxBytes: maxFileBytes,
          ...(signal ? { signal } : {}),
          // What the listing saw spares the read its own look (a round trip per file over a WAN link).
          ...(file.identity ? { seen: { size: file.size, mtimeMs: file.mtimeMs, identity: file.identity } } : {}),
        };
        bytes = await source.target.readFile(file.path, readOptions);
      } catch (error) {
        // Gone between listing and reading: another process took it.
        if (isBridgeError(error) && error.code === 'NOT_FOUND') {
          source.discovery.forget(file.name);
          return null;
        }
        if (isBridgeError(error) && error.code === 'ACK_FILE_TOO_LARGE')
          return this.refuse(source, handlers, file, this.tooLargeReason(file, null), null);
        // A symlink, folder or device, or a file swapped in after the listing: never read through it.
        if (isBridgeError(error) && error.code === 'ACK_FILE_NOT_REGULAR')
          return this.refuse(source, handlers, file, `${file.path}: ${error.message}; not read`, null);
        throw error;
      }
      // It grew after the listing (or the transport read it whole): the limit holds all the same.
      if (bytes.length > maxFileBytes)
        return this.refuse(source, handlers, file, this.tooLargeReason(file, bytes.length), bytes.length);
    }
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    // Several mappings may read the same names (.ok files of two ERPs): the one whose exports the file names wins.
    let chosen: { input: AckFileInput; unmatched: string[] } | undefined;
    for (const handler of handlers) {
      const candidate = await this.interpret(source, handler, file, bytes, sha256);
      if (candidate.input.entries.length > 0) {
        chosen = candidate;
        break;
      }
      chosen ??= candidate;
    }
    const { input, unmatched } = chosen as { input: AckFileInput; unmatched: string[] };
    if (bytes !== EMPTY) {
      // Kept (its first 64 kB) so the console can show what the ERP wrote, in the encoding it was read in.
      input.content = bytes;
      input.contentEncoding =
        handlers.find((handler) => handler.convention.kind === input.convention)?.convention.encoding ?? 'utf-8';
    }
    const key = `${source.name}\u0000${file.path}`;
    // The ERP can answer a file before the ledger knows it arrived (the process died after the rename, or a
    // stalled rename went through after we gave up): wait for the upload to be confirmed, not unmatched/.
    if (input.disposition === 'unmatched' && (await this.namesUnconfirmedUpload(source, file, bytes))) {
      if (!this.waitingForUpload.has(key))
        logger.warn(
          { ackSource: source.name, ackFile: file.path },
          'ack names an export whose upload is not confirmed yet; left in place until it is',
        );
      this.waitingForUpload.add(key);
      return null;
    }
    this.waitingForUpload.delete(key);
    if (input.disposition === 'invalid') this.warnInvalid(source, file, input);
    return { file, input, unmatched };
  }

  private tooLargeReason(file: ReadyFile, size: number | null): string {
    const { maxFileBytes } = this.options.acks.limits;
    return `${file.path}: ${size === null ? 'larger than' : `${size} bytes, over`} acks.limits.maxFileBytes (${maxFileBytes} bytes); not read`;
  }

  /** Not read (or read no further): invalid/, flagging the export its name points at. */
  private async refuse(
    source: Source,
    handlers: readonly Handler[],
    file: ReadyFile,
    error: string,
    size: number | null,
  ): Promise<Prepared> {
    const entries: AckEntryInput[] = [];
    for (const handler of handlers) {
      const reference = handler.convention.nameReference(file.name);
      const record = reference ? await this.lookup(source, handler, reference) : undefined;
      if (record && reference) {
        for (const [k, each] of (await this.answeredBy(record, reference)).entries())
          entries.push({ index: k, exportId: each.id, verdict: 'invalid', messages: [{ text: error }] });
        break;
      }
    }
    // The content is unknown: the listing's size and mtime stand for it, so a rewritten file is a new one.
    const sha256 = createHash('sha256')
      .update(`unread:${size ?? file.size}:${file.mtimeMs}`)
      .digest('hex');
    const input: AckFileInput = {
      source: source.name,
      fileName: file.path,
      sha256,
      convention: handlers[0]?.convention.kind ?? 'companion',
      landedAt: file.firstSeenAt,
      disposition: 'invalid',
      error,
      entries,
    };
    this.warnInvalid(source, file, input);
    return { file, input, unmatched: [] };
  }

  private warnInvalid(source: Source, file: ReadyFile, input: AckFileInput): void {
    this.options.logger.warn(
      { ackSource: source.name, ackFile: file.path, err: input.error, exportId: input.entries[0]?.exportId },
      input.entries.length > 0
        ? 'unreadable ack file: flagging the export it names'
        : 'unreadable ack file naming no known export',
    );
  }

  /** An answer naming a batch's file (not one of its documents) answers for every document in it. */
  private async answeredBy(record: ExportRecord, reference: AckReference): Promise<ExportRecord[]> {
    if (reference.by !== 'name' && reference.by !== 'stem') return [record];
    const mates = await this.options.ledger.batchMates(record.id);
    return mates.length > 0 ? mates : [record];
  }

  private lookup(source: Source, handler: Handler, reference: AckReference) {
    return this.options.ledger.findExportForAck({
      target: source.name,
      by: reference.by,
      value: reference.value,
      mappingNames: handler.mappingNames,
    });
  }

  /** Whether the file names an export that is being uploaded or failed transiently (its file may be on the server). */
  private async namesUnconfirmedUpload(source: Source, file: ReadyFile, bytes: Buffer): Promise<boolean> {
    const references: Array<ParsedAckEntry['reference']> = [];
    for (const handler of source.handlers) {
      if (!handler.convention.claims(file.name)) continue;
      try {
        references.push(...handler.convention.parse(file.name, bytes).map((entry) => entry.reference));
      } catch {
        // Unreadable by this convention: it names nothing here.
      }
    }
    if (references.length === 0) return false;
    // A batch being sent may be on the server before the ledger has its documents as exports.
    const sending = await this.options.ledger.listBatches({ status: ['closed', 'sending'], limit: 10_000 });
    const namesSending = sending.some((batch) => {
      if (batch.target !== source.name || batch.fileName === null) return false;
      const { name, stem } = nameParts(batch.fileName);
      return references.some(
        (reference) =>
          (reference.by === 'name' && reference.value === name) ||
          (reference.by === 'stem' && reference.value === stem),
      );
    });
    if (namesSending) return true;
    const unconfirmed = await this.options.ledger.list({
      status: ['uploading', 'retryable'],
      target: source.name,
      limit: 10_000,
    });
    return unconfirmed.some((record) => {
      const { name, stem } = nameParts(record.plannedPath);
      return references.some(
        (reference) =>
          (reference.by === 'name' && reference.value === name) ||
          (reference.by === 'stem' && reference.value === stem) ||
          (reference.by === 'annotationId' && reference.value === String(record.annotationId)) ||
          (reference.by === 'documentRef' && reference.value === record.documentRef),
      );
    });
  }

  /** Parses with one convention and finds each named export in the ledger. */
  private async interpret(
    source: Source,
    handler: Handler,
    file: ReadyFile,
    bytes: Buffer,
    sha256: string,
  ): Promise<{ input: AckFileInput; unmatched: string[] }> {
    const { acks, logger } = this.options;
    const base = {
      source: source.name,
      fileName: file.path,
      sha256,
      convention: handler.convention.kind,
      landedAt: file.firstSeenAt,
    };
    const unmatched: string[] = [];
    let parsed: ParsedAckEntry[];
    try {
      parsed = handler.convention.parse(file.name, bytes);
    } catch (error) {
      // Conventions wrap every parser failure; anything else is a bug, and still must not pin the file in place.
      const problem =
        error instanceof AckParseError
          ? error
          : new AckParseError(
              `${file.path}: ${error instanceof Error ? error.message : String(error)}`,
              handler.convention.nameReference(file.name),
            );
      logger.debug(
        { ackSource: source.name, ackFile: file.path, err: problem.message, mappings: handler.mappingNames },
        'not readable by this convention',
      );
      const record = problem.reference ? await this.lookup(source, handler, problem.reference) : undefined;
      const entries: AckEntryInput[] =
        record && problem.reference
          ? (await this.answeredBy(record, problem.reference)).map((each, k) => ({
              index: k,
              exportId: each.id,
              verdict: 'invalid' as const,
              messages: [{ text: problem.message }],
            }))
          : [];
      return { input: { ...base, disposition: 'invalid', error: problem.message, entries }, unmatched };
    }
    const entries: AckEntryInput[] = [];
    for (const entry of parsed) {
      const record = await this.lookup(source, handler, entry.reference);
      if (!record) {
        unmatched.push(`${entry.reference.by} ${entry.reference.value}`);
        continue;
      }
      const answered = await this.answeredBy(record, entry.reference);
      for (const [k, each] of answered.entries()) {
        // Rossum hears of an on-time acceptance only when there is an ERP reference to store.
        const quietIfAccepted = !acks.byMapping[each.mappingName]?.storeErpReference || !entry.erpReference;
        entries.push({
          // Unique within the file (the outcome's dedupe key): a batch's documents share their entry's position.
          index: answered.length > 1 ? entry.index * BATCH_INDEX_SPREAD + k : entry.index,
          exportId: each.id,
          verdict: entry.verdict,
          messages: entry.messages,
          erpReference: entry.erpReference,
          quietIfAccepted,
        });
      }
    }
    return { input: { ...base, disposition: entries.length > 0 ? 'matched' : 'unmatched', entries }, unmatched };
  }
}
