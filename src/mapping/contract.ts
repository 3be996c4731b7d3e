import type { AnnotationView } from '../annotation/index.ts';

/** A file ready to upload: bytes exactly as the ERP will read them. */
export interface RenderedFile {
  /** Path relative to the target folder; sanitized, never absolute, never containing `..`. */
  fileName: string;
  bytes: Buffer;
  /** iconv-lite encoding name used for the bytes, e.g. `utf-8`, `windows-1252`. */
  encoding: string;
  /** `application/xml`, `text/csv`, `text/plain`, `application/EDIFACT`. */
  mediaType: string;
  /**
   * Things the render changed to make the file valid (characters XML forbids, characters the encoding
   * cannot hold when the mapping allows replacing them), in plain words; show them as Rossum `warning` messages.
   */
  warnings?: string[];
}

/** One output value and the datapoints it came from (`render --explain`). */
export interface ExplainEntry {
  /** Where in the file: `Invoice/Lines/Line[2]/Amount`, `column "Betrag" of record 3`, ... */
  output: string;
  value: string;
  /** `schema_id (datapoint id)` for every datapoint the value was read from, each once. */
  from: string[];
  /** Datapoints only its conditions (`when`, `cases`) looked at. */
  checked?: string[];
}

/** Values from outside the document that a mapping may use. */
export interface RenderContext {
  /** Route values (from the routing config and the hook's `settings`). */
  route?: Record<string, string>;
  /** Environment values the mapping may read (only what the operator exposes). */
  env?: Record<string, string | undefined>;
  /** Clock for `now`-based values; tests pin it. */
  now?: Date;
  /** The export's sequence number (`{seq}`), allocated in the ledger; tests pin it. */
  sequence?: number;
  /** Set while rendering a batch's file name, header and trailer. */
  batch?: BatchInfo;
}

/** The original document uploaded beside the data file (`document:` block). */
export interface DocumentSettings {
  /** `{stem}{ext}`: the only placeholders are the data file's stem and the document's extension. */
  name: string;
  /** Folder of the same target, relative; undefined = beside the data file. */
  folder: string | undefined;
  /** `.pdf`; undefined = the original file's. */
  extension: string | undefined;
  required: boolean;
  maxBytes: number;
  /** Up to this size the document is held in memory; beyond, it is streamed into the upload. */
  bufferBytes: number;
}

/** Where a mapping that reads `{seq}` takes its numbers from. */
export interface SequenceSettings {
  /** Named counter; undefined = one counter per target (named after it). */
  counter: string | undefined;
  /** The first number of a new counter. */
  start: number;
}

export type OnExisting = 'fail' | 'overwrite' | 'version';

export interface CompiledMapping {
  /** File stem in `mappings/`, e.g. `datev-csv`. */
  readonly name: string;
  /** Absolute path of the mapping file. */
  readonly sourcePath: string;
  /** Short sha256 of the mapping source: a changed mapping is a new version in the ledger. */
  readonly versionHash: string;
  readonly format: 'xml' | 'csv' | 'fixed' | 'edifact';
  /** What to do when the file name already exists on the target. */
  readonly onExisting: OnExisting;
  /**
   * Whether the output depends on the delivery rather than the document (`meta.now`, `meta.request_id`,
   * `meta.hook_timestamp`): exactly-once then keys on a render with those values pinned.
   */
  readonly readsPerDeliveryValues?: boolean;
  /** Set when the mapping reads `{seq}`: the export allocates a number before rendering the file it uploads. */
  readonly sequence?: SequenceSettings;
  /** Set when the mapping uploads the original document beside the data file. */
  readonly document?: DocumentSettings;
  /** Set for a batch mapping: documents are collected and sent as one file when the batch closes. */
  readonly batch?: BatchSettings;
  /** A batch mapping's share of one document (throws like `render`). */
  renderBatchEntry?(view: AnnotationView, context?: RenderContext): BatchEntry;
  /** A batch mapping's file for the entries of one batch, in order; `context.sequence` and `batch.number` are the batch number. */
  renderBatch?(entries: readonly BatchEntry[], frame: BatchFrame, context?: RenderContext): RenderedFile;
  /** Throws a permanent BridgeError (code `MAPPING_*`, with `location.datapointId` when a field is to blame). For a batch mapping: a batch of this one document. */
  render(view: AnnotationView, context?: RenderContext): RenderedFile;
  /** Like `render`, and lists where every output value came from. */
  explain?(view: AnnotationView, context?: RenderContext): { file: RenderedFile; trace: ExplainEntry[] };
}

export interface MappingRegistry {
  get(name: string): CompiledMapping | undefined;
  names(): string[];
}

/** When a batch mapping's open batch closes: after a period, at a daily time, or when it is full. */
export interface BatchSettings {
  /** Period in ms (`every: 15m`); batches close on multiples of it (UTC), not a period after they open. */
  everyMs: number | undefined;
  /** Daily local time `HH:MM` (`at:`) in `timezone`. */
  at: string | undefined;
  timezone: string;
  /** Closes as soon as it holds this many documents. */
  maxDocuments: number | undefined;
  /** Where batch numbers come from (`sequence.counter`); undefined = one counter per mapping and target. */
  counter: string | undefined;
  start: number;
  /** When a batch opened at `openedAt` (epoch ms) closes (epoch ms). */
  closesAt(openedAt: number): number;
}

/** One document's share of a batch file, rendered at the webhook and kept in the ledger until the batch is sent. */
export interface BatchEntry {
  /** Text in the output's characters (already fitted to its encoding), ending with a line ending. */
  text: string;
  /** Records it adds (CSV rows, fixed-width records, 1 XML element). */
  records: number;
  /** `batch.totals` of this document, as plain decimals. */
  totals: Record<string, string>;
  warnings?: string[];
}

/** The batch a file is rendered for: its number (`{batch}`, `{seq}`) and when it opened and closed (`meta.now` is the close). */
export interface BatchFrame {
  number: number;
  openedAt: Date;
  closedAt: Date;
}

/** What a batch's own parts (file name, header, trailer) may read (`meta.batch*`). */
export interface BatchInfo {
  number: number;
  documents: number;
  records: number;
  /** ISO, UTC. */
  openedAt: string;
  closedAt: string;
  /** Sums of `batch.totals` over the batch's documents. */
  totals: Record<string, string>;
}
