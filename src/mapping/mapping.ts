import { createHash } from 'node:crypto';
import { basename, extname } from 'node:path';
import { emptyMetadata, type AnnotationView } from '../annotation/index.ts';
import { isBridgeError } from '../errors.ts';
import { assembleBatch, entryTotals, sumTotals, type CompiledBatch } from './batch.ts';
import type {
  BatchEntry,
  BatchFrame,
  BatchSettings,
  CompiledMapping,
  DocumentSettings,
  ExplainEntry,
  OnExisting,
  RenderContext,
  RenderedFile,
  SequenceSettings,
} from './contract.ts';
import { renderCsv, type CompiledCsv } from './csv.ts';
import { edifactCharFilter, renderEdifact, type CompiledEdifact } from './edifact.ts';
import { Emitter } from './emit.ts';
import { PiecewiseEncoder, type OutputEncoding } from './encoding.ts';
import { mappingError } from './errors.ts';
import { safeFileName } from './filename.ts';
import { renderFixed, type CompiledFixed } from './fixed.ts';
import type { MappingSource, TestCase } from './schema.ts';
import {
  attachDocVars,
  finalWarnings,
  newScope,
  warnAbout,
  type CompiledValue,
  type DocScope,
  type Scope,
} from './scope.ts';
import type { TemplatePiece } from './sources.ts';
import { renderXml, xmlCharFilter, type CompiledXml } from './xml.ts';

/** A compiled mapping rendering documents (and batches of them); compile.ts builds it from the mapping file. */

const MEDIA_TYPES = {
  xml: 'application/xml',
  csv: 'text/csv',
  fixed: 'text/plain',
  edifact: 'application/EDIFACT',
} as const;
/** Metadata that differs between two deliveries of the same export. */
const PER_DELIVERY_META = ['now', 'request_id', 'hook_timestamp'];

const LINE_ENDINGS = { lf: '\n', crlf: '\r\n', cr: '\r' } as const;

/** A loaded mapping: what the pipeline needs (CompiledMapping) plus what `test` and `check` need. */
export interface LoadedMapping extends CompiledMapping {
  readonly source: MappingSource;
  readonly tests: TestCase[];
  explain(view: AnnotationView, context?: RenderContext): { file: RenderedFile; trace: ExplainEntry[] };
  /** Throws unless the mapping has a `batch:` block (`batch` is set). */
  renderBatchEntry(view: AnnotationView, context?: RenderContext): BatchEntry;
  renderBatch(entries: readonly BatchEntry[], frame: BatchFrame, context?: RenderContext): RenderedFile;
}

export interface Compiled {
  source: MappingSource;
  encoding: OutputEncoding | undefined;
  docVars: Map<string, CompiledValue>;
  fileName: (scope: Scope) => TemplatePiece[];
  xml: CompiledXml | undefined;
  csv: CompiledCsv | undefined;
  fixed: CompiledFixed | undefined;
  edifact: CompiledEdifact | undefined;
  batch: CompiledBatch | undefined;
  metaRead: ReadonlySet<string>;
}

export class Mapping implements LoadedMapping {
  readonly name: string;
  readonly sourcePath: string;
  readonly versionHash: string;
  readonly format: CompiledMapping['format'];
  readonly onExisting: OnExisting;
  readonly source: MappingSource;
  readonly tests: TestCase[];
  readonly readsPerDeliveryValues: boolean;
  readonly sequence?: SequenceSettings;
  readonly document?: DocumentSettings;
  readonly batch?: BatchSettings;
  private readonly compiled: Compiled;
  private readonly encoding: OutputEncoding;

  constructor(path: string, text: string, compiled: Compiled) {
    this.sourcePath = path;
    this.name = basename(path, extname(path));
    this.versionHash = createHash('sha256').update(text).digest('hex').slice(0, 12);
    this.source = compiled.source;
    this.format = compiled.source.format;
    this.onExisting = compiled.source.file.on_existing;
    this.tests = compiled.source.tests ?? [];
    this.compiled = compiled;
    this.readsPerDeliveryValues = PER_DELIVERY_META.some((key) => compiled.metaRead.has(key));
    this.encoding = compiled.encoding as OutputEncoding;
    // A batch's number is taken as the batch opens (BatchSettings.counter), not per document.
    if (compiled.metaRead.has('seq') && !compiled.batch)
      this.sequence = { counter: compiled.source.sequence?.counter, start: compiled.source.sequence?.start ?? 1 };
    if (compiled.batch) this.batch = compiled.batch.settings;
    const document = compiled.source.document;
    if (document)
      this.document = {
        name: document.name,
        folder: document.folder?.replace(/\/+$/, '') || undefined,
        extension: document.extension,
        required: document.required,
        maxBytes: document.max_bytes,
        bufferBytes: document.buffer_bytes,
      };
  }

  render(view: AnnotationView, context: RenderContext = {}): RenderedFile {
    if (!this.batch) return this.run(view, context, false).file;
    const at = context.now ?? new Date();
    const frame = { number: context.sequence ?? 1, openedAt: at, closedAt: at };
    return this.renderBatch([this.renderBatchEntry(view, context)], frame, context);
  }

  explain(view: AnnotationView, context: RenderContext = {}): { file: RenderedFile; trace: ExplainEntry[] } {
    const explained = this.run(view, context, true);
    return this.batch ? { file: this.render(view, context), trace: explained.trace } : explained;
  }

  renderBatchEntry(view: AnnotationView, context: RenderContext = {}): BatchEntry {
    const batch = this.compiled.batch;
    if (!batch) throw new Error(`mapping ${this.name} is not a batch mapping`);
    return this.guarded(() => {
      const doc = this.newDoc(view, context);
      const text = this.renderText(doc, false, true).text;
      const entry: BatchEntry = {
        text,
        records: this.compiled.xml ? 1 : doc.recordCount,
        totals: entryTotals(batch, doc),
      };
      if (doc.warnings.size > 0) entry.warnings = finalWarnings(doc);
      return entry;
    });
  }

  renderBatch(entries: readonly BatchEntry[], frame: BatchFrame, context: RenderContext = {}): RenderedFile {
    const batch = this.compiled.batch;
    if (!batch) throw new Error(`mapping ${this.name} is not a batch mapping`);
    return this.guarded(() => {
      const info = {
        number: frame.number,
        documents: entries.length,
        records: entries.reduce((sum, entry) => sum + entry.records, 0),
        openedAt: frame.openedAt.toISOString(),
        closedAt: frame.closedAt.toISOString(),
        totals: sumTotals(batch, entries),
      };
      const doc = this.newDoc(BATCH_VIEW, { ...context, now: frame.closedAt, sequence: frame.number, batch: info });
      const { source, csv, xml } = this.compiled;
      const emitter = new Emitter(doc, this.emitSettings(), false);
      const text = assembleBatch(
        {
          batch,
          csv,
          xml,
          emitter,
          eol: LINE_ENDINGS[source.line_ending],
          finalNewline: source.final_newline,
          declarationEncoding: this.encoding.declarationName,
        },
        entries,
      );
      const warnings = [...new Set([...entries.flatMap((entry) => entry.warnings ?? []), ...finalWarnings(doc)])];
      return this.fileOf(doc, this.encoding.encode(text, this.compiled.source.bom), warnings);
    });
  }

  private guarded<T>(work: () => T): T {
    try {
      return work();
    } catch (error) {
      if (isBridgeError(error)) throw error;
      throw mappingError(
        'MAPPING_RENDER_FAILED',
        `Mapping "${this.name}" could not render this document: ${(error as Error).message ?? String(error)}`,
        undefined,
        error,
      );
    }
  }

  private run(
    view: AnnotationView,
    context: RenderContext,
    explain: boolean,
  ): { file: RenderedFile; trace: ExplainEntry[] } {
    // A bug of ours must still reach Rossum as a clear, permanent mapping error, never as a crash.
    return this.guarded(() => {
      const doc = this.newDoc(view, context);
      const encoder = new PiecewiseEncoder(this.encoding, this.compiled.source.bom);
      const { text, emitter } = this.renderText(doc, explain, false, encoder);
      const trace = emitter.trace ?? [];
      if (explain) doc.touched = [];
      const file = this.fileOf(doc, encoder.finish(text), doc.warnings.size > 0 ? finalWarnings(doc) : []);
      if (explain) trace.unshift({ output: 'file name', value: file.fileName, from: [...new Set(doc.touched ?? [])] });
      return { file, trace };
    });
  }

  private newDoc(view: AnnotationView, context: RenderContext): DocScope {
    const doc: DocScope = {
      view,
      context,
      mappingName: this.name,
      mappingVersion: this.versionHash,
      now: (context.now ?? new Date()).toISOString(),
      recordCount: 0,
      vars: new Map(),
      rowSets: new Map(),
      evaluating: new Set(),
      touched: null,
      checked: null,
      warnings: new Map(),
      droppedWarnings: 0,
      cache: new Map(),
    };
    attachDocVars(doc, this.compiled.docVars);
    return doc;
  }

  private emitSettings(): { encoding: OutputEncoding; unencodable: MappingSource['unencodable']; replacement: string } {
    const { source } = this.compiled;
    return { encoding: this.encoding, unencodable: source.unencodable, replacement: source.replacement };
  }

  /**
   * The document's text; `asEntry`: its share of a batch (no CSV header, no XML declaration, always ending a line).
   * With `encoder`, a large XML or EDIFACT document is encoded as it is written, and `text` is only its last part.
   */
  private renderText(
    doc: DocScope,
    explain: boolean,
    asEntry: boolean,
    encoder?: PiecewiseEncoder,
  ): { text: string; emitter: Emitter } {
    const { source, xml, csv, fixed, edifact } = this.compiled;
    const settings = this.emitSettings();
    const eol = LINE_ENDINGS[source.line_ending];
    const finalNewline = asEntry || source.final_newline;
    if (xml) {
      const emitter = new Emitter(
        doc,
        settings,
        explain,
        xmlCharFilter(xml.config, (detail, scope) => warnAbout(doc, scope, detail)),
      );
      const root = renderXml(
        xml,
        emitter,
        eol,
        this.encoding.declarationName,
        asEntry,
        encoder && ((text) => encoder.settle(text)),
      );
      const end = asEntry ? (xml.config.pretty ? eol : '') : source.final_newline ? eol : '';
      return { text: root + end, emitter };
    }
    if (csv) {
      const emitter = new Emitter(doc, settings, explain);
      const parts = asEntry ? { header: false, records: true } : undefined;
      return { text: renderCsv(csv, emitter, eol, finalNewline, parts), emitter };
    }
    if (edifact) {
      const emitter = new Emitter(
        doc,
        settings,
        explain,
        edifactCharFilter(edifact, source.unencodable, source.replacement),
      );
      return {
        text: renderEdifact(edifact, emitter, eol, source.final_newline, encoder && ((text) => encoder.settle(text))),
        emitter,
      };
    }
    const emitter = new Emitter(doc, settings, explain);
    return { text: renderFixed(fixed as CompiledFixed, emitter, eol, finalNewline), emitter };
  }

  private fileOf(doc: DocScope, bytes: Buffer, warnings: string[]): RenderedFile {
    const { source } = this.compiled;
    const scope = newScope(doc);
    scope.at = 'file name';
    return {
      fileName: safeFileName(this.compiled.fileName(scope)),
      bytes,
      encoding: source.encoding,
      mediaType: MEDIA_TYPES[source.format],
      ...(warnings.length > 0 ? { warnings } : {}),
    };
  }
}

/** What a batch's own parts see in place of a document: no fields, no rows. */
const BATCH_VIEW: AnnotationView = {
  meta: emptyMetadata({ requestId: 'batch' }),
  field: () => undefined,
  rows: () => [],
  hasTable: () => false,
};
