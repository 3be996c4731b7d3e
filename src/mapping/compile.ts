import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { basename, dirname, extname, resolve } from 'node:path';
import { parseExportPayload, type AnnotationView, type RawNode } from '../annotation/index.ts';
import {
  ConfigFileError,
  formatPath,
  loadYamlFile,
  type Diagnostic,
  type LoadedYaml,
} from '../config-loading/index.ts';
import { isBridgeError } from '../errors.ts';
import type {
  CompiledMapping,
  ExplainEntry,
  OnExisting,
  RenderContext,
  RenderedFile,
  SequenceSettings,
  DocumentSettings,
} from './contract.ts';
import { compileCsv, renderCsv, type CompiledCsv } from './csv.ts';
import { catalogueFromPayloads, checkDatapointUses, type DatapointCatalogue, type DatapointUse } from './datapoints.ts';
import { compileEdifact, edifactCharFilter, renderEdifact, type CompiledEdifact } from './edifact.ts';
import { Emitter, fitEncodingStep } from './emit.ts';
import { isKnownEncoding, OutputEncoding } from './encoding.ts';
import { mappingError } from './errors.ts';
import { safeFileName, templatePathProblem } from './filename.ts';
import { compileFixed, renderFixed, type CompiledFixed } from './fixed.ts';
import { mappingSchema, type MappingSource, type TestCase } from './schema.ts';
import {
  addWarning,
  attachDocVars,
  warnAbout,
  finalWarnings,
  newScope,
  type CompileEnv,
  type CompiledValue,
  type DocScope,
  type Scope,
} from './scope.ts';
import { compileTemplatePieces, type TemplatePiece } from './sources.ts';
import { compileTables } from './tables.ts';
import { compileValue } from './values.ts';
import { compileXml, renderXml, xmlCharFilter, type CompiledXml } from './xml.ts';

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
}

interface Compiled {
  source: MappingSource;
  encoding: OutputEncoding | undefined;
  docVars: Map<string, CompiledValue>;
  fileName: (scope: Scope) => TemplatePiece[];
  xml: CompiledXml | undefined;
  csv: CompiledCsv | undefined;
  fixed: CompiledFixed | undefined;
  edifact: CompiledEdifact | undefined;
  metaRead: ReadonlySet<string>;
}

/** Compiles a validated mapping; every semantic problem is reported at its key, none is fatal until the end. */
function compile(
  source: MappingSource,
  file: string,
  locate: LoadedYaml<MappingSource>['locate'],
): { compiled: Compiled; diagnostics: Diagnostic[]; uses: DatapointUse[] } {
  const diagnostics: Diagnostic[] = [];
  const problem = (path: ReadonlyArray<PropertyKey>, message: string, hint?: string): void => {
    diagnostics.push({ file, ...locate(path), key: formatPath(path), message, ...(hint ? { hint } : {}) });
  };

  let encoding: OutputEncoding | undefined;
  if (!isKnownEncoding(source.encoding)) {
    problem(
      ['encoding'],
      `unknown encoding "${source.encoding}"`,
      'e.g. utf-8, windows-1252, iso-8859-15, cp850 (any iconv-lite name)',
    );
  } else {
    encoding = new OutputEncoding(source.encoding);
    if (source.bom && !encoding.isUtf)
      problem(['bom'], `${source.encoding} has no byte order mark`, 'set bom: false, or use utf-8 / utf-16le');
    if (source.unencodable !== 'error' && !encoding.fits(source.replacement))
      problem(['replacement'], `the replacement "${source.replacement}" cannot be written in ${source.encoding}`);
  }

  const env: CompileEnv = {
    valueMaps: source.value_maps ?? {},
    tables: new Map(),
    docVars: new Map(),
    declaredDocVars: new Set(Object.keys(source.vars ?? {})),
    rowTable: undefined,
    declaredRowVars: undefined,
    rowReads: { count: 0 },
    // Only a policy that changes text (transliterate, replace) needs to run before trimming; under `error`
    // the format's own filter (e.g. XML's forbidden characters) must see the text first, as at emit time.
    fitEncoding:
      encoding && source.unencodable !== 'error'
        ? fitEncodingStep({ encoding, unencodable: source.unencodable, replacement: source.replacement })
        : undefined,
    uses: [],
    metaRead: new Set(),
    problem,
  };
  compileTables(source.tables, env);
  for (const [name, spec] of Object.entries(source.vars ?? {}))
    env.docVars.set(name, compileValue(spec, env, ['vars', name]));

  const pathProblem = templatePathProblem(source.file.name);
  if (pathProblem) problem(['file', 'name'], pathProblem);
  const fileName = compileTemplatePieces(source.file.name, env, ['file', 'name']);

  for (const format of ['xml', 'csv', 'fixed', 'edifact'] as const) {
    if (format !== source.format && source[format] !== undefined)
      problem(
        [format],
        `the "${format}" block is ignored because format is ${source.format}`,
        `remove it or set format: ${format}`,
      );
  }
  if (source[source.format] === undefined)
    problem(
      ['format'],
      `format is ${source.format} but the mapping has no "${source.format}" block`,
      `add ${source.format}: with its settings`,
    );

  let xml: CompiledXml | undefined;
  if (source.format === 'xml' && source.xml) {
    xml = compileXml(source.xml, env);
    if (source.xml.root.repeat || source.xml.root.when)
      problem(['xml', 'root'], 'the root element is always written once', 'move repeat/when to a child element');
    if (
      source.xml.invalid_chars === 'replace' &&
      /[\u0000-\u0008\u000B\u000C\u000E-\u001F]/.test(source.xml.invalid_char_replacement)
    ) {
      problem(['xml', 'invalid_char_replacement'], 'the replacement itself is not allowed in XML');
    }
    if (encoding && !encoding.isUtf && !source.xml.declaration)
      problem(
        ['xml', 'declaration'],
        `XML in ${source.encoding} needs a declaration naming the encoding; readers assume UTF-8 without it`,
        'set declaration: true',
      );
  }
  const csv = source.format === 'csv' && source.csv ? compileCsv(source.csv, env) : undefined;
  const fixed = source.format === 'fixed' && source.fixed ? compileFixed(source.fixed, env, encoding) : undefined;
  const edifact =
    source.format === 'edifact' && source.edifact ? compileEdifact(source.edifact, env, source) : undefined;

  if (source.document?.folder !== undefined) {
    const folderProblem = templatePathProblem(`${source.document.folder.replace(/\/+$/, '')}/x`);
    if (folderProblem || /[{}]/.test(source.document.folder))
      problem(['document', 'folder'], folderProblem ?? 'the folder is fixed text (no placeholders)');
  }
  if (source.document) {
    const name = source.document.name;
    const other = name.replace(/\{stem\}|\{ext\}/g, '').match(/\{[^}]*\}/)?.[0];
    const nameProblem = name.includes('/')
      ? 'the name has no folders (use folder:)'
      : !name.includes('{stem}')
        ? 'the name must contain {stem}, or every export would overwrite one document'
        : other
          ? `${other} is not available here: use {stem} and {ext}`
          : templatePathProblem(name.replace(/\{stem\}|\{ext\}/g, 'x'));
    if (nameProblem) problem(['document', 'name'], nameProblem);
  }
  if (source.sequence && !env.metaRead?.has('seq'))
    problem(
      ['sequence'],
      'nothing in the mapping reads the sequence number',
      'use {seq} or {seq:8} in file.name or a value',
    );

  for (const [i, test] of (source.tests ?? []).entries()) {
    const base = dirname(file);
    if (!existsSync(resolve(base, test.payload)))
      problem(
        ['tests', i, 'payload'],
        `payload file not found: ${resolve(base, test.payload)}`,
        'paths are relative to the mapping file',
      );
    const expectations = ['output', 'output_file', 'errors', 'file_name'].filter(
      (key) => test.expect[key as keyof typeof test.expect] !== undefined,
    );
    if (expectations.length === 0)
      problem(['tests', i, 'expect'], 'the test expects nothing', 'add output, output_file, file_name or errors');
    if (test.expect.errors && (test.expect.output !== undefined || test.expect.output_file !== undefined))
      problem(['tests', i, 'expect'], 'a test expects either output or errors, not both');
  }

  return {
    compiled: {
      source,
      encoding,
      docVars: env.docVars,
      fileName,
      xml,
      csv,
      fixed,
      edifact,
      metaRead: env.metaRead as Set<string>,
    },
    diagnostics,
    uses: env.uses,
  };
}

class Mapping implements LoadedMapping {
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
    if (compiled.metaRead.has('seq'))
      this.sequence = { counter: compiled.source.sequence?.counter, start: compiled.source.sequence?.start ?? 1 };
    const document = compiled.source.document;
    if (document)
      this.document = {
        name: document.name,
        folder: document.folder?.replace(/\/+$/, '') || undefined,
        extension: document.extension,
        required: document.required,
        maxBytes: document.max_bytes,
      };
  }

  render(view: AnnotationView, context: RenderContext = {}): RenderedFile {
    return this.run(view, context, false).file;
  }

  explain(view: AnnotationView, context: RenderContext = {}): { file: RenderedFile; trace: ExplainEntry[] } {
    return this.run(view, context, true);
  }

  private run(
    view: AnnotationView,
    context: RenderContext,
    explain: boolean,
  ): { file: RenderedFile; trace: ExplainEntry[] } {
    try {
      return this.runUnguarded(view, context, explain);
    } catch (error) {
      if (isBridgeError(error)) throw error;
      // A bug of ours must still reach Rossum as a clear, permanent mapping error, never as a crash.
      throw mappingError(
        'MAPPING_RENDER_FAILED',
        `Mapping "${this.name}" could not render this document: ${(error as Error).message ?? String(error)}`,
        undefined,
        error,
      );
    }
  }

  private runUnguarded(
    view: AnnotationView,
    context: RenderContext,
    explain: boolean,
  ): { file: RenderedFile; trace: ExplainEntry[] } {
    const { source, xml, csv, fixed, edifact } = this.compiled;
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
    const settings = { encoding: this.encoding, unencodable: source.unencodable, replacement: source.replacement };
    const eol = LINE_ENDINGS[source.line_ending];
    let text: string;
    let emitter: Emitter;
    if (xml) {
      emitter = new Emitter(
        doc,
        settings,
        explain,
        xmlCharFilter(xml.config, (detail, scope) => warnAbout(doc, scope, detail)),
      );
      text = renderXml(xml, emitter, eol, this.encoding.declarationName) + (source.final_newline ? eol : '');
    } else if (csv) {
      emitter = new Emitter(doc, settings, explain);
      text = renderCsv(csv, emitter, eol, source.final_newline);
    } else if (edifact) {
      emitter = new Emitter(
        doc,
        settings,
        explain,
        edifactCharFilter(edifact, source.unencodable, source.replacement, (message) => addWarning(doc, message)),
      );
      text = renderEdifact(edifact, emitter, eol, source.final_newline);
    } else {
      emitter = new Emitter(doc, settings, explain);
      text = renderFixed(fixed as CompiledFixed, emitter, eol, source.final_newline);
    }
    const scope = newScope(doc);
    scope.at = 'file name';
    if (explain) doc.touched = [];
    const fileName = safeFileName(this.compiled.fileName(scope));
    const trace = emitter.trace ?? [];
    if (explain) trace.unshift({ output: 'file name', value: fileName, from: [...new Set(doc.touched ?? [])] });
    const file: RenderedFile = {
      fileName,
      bytes: this.encoding.encode(text, source.bom),
      encoding: source.encoding,
      mediaType: MEDIA_TYPES[source.format],
      ...(doc.warnings.size > 0 ? { warnings: finalWarnings(doc) } : {}),
    };
    return { file, trace };
  }
}

export interface MappingCheck {
  errors: Diagnostic[];
  warnings: Diagnostic[];
}

/** The annotation trees of the mapping's own test payloads (those that exist and parse). */
function testPayloadContents(source: MappingSource, file: string): RawNode[][] {
  const contents: RawNode[][] = [];
  for (const test of source.tests ?? []) {
    try {
      contents.push(
        parseExportPayload(JSON.parse(readFileSync(resolve(dirname(file), test.payload), 'utf8'))).annotation.content,
      );
    } catch {
      // A missing payload is reported by compile; a broken one fails its test with the reason.
    }
  }
  return contents;
}

/**
 * All problems of one mapping file (syntax, schema, semantics). With a queue schema, every datapoint the
 * mapping names must be in it (errors); without one, the mapping's test payloads stand in (warnings).
 */
export function checkMapping(path: string, options: { schema?: DatapointCatalogue | undefined } = {}): MappingCheck {
  const absolute = resolve(path);
  let loaded: LoadedYaml<MappingSource>;
  try {
    loaded = loadYamlFile(absolute, mappingSchema);
  } catch (error) {
    if (error instanceof ConfigFileError) return { errors: error.diagnostics, warnings: [] };
    throw error;
  }
  const { diagnostics, uses } = compile(loaded.value, absolute, loaded.locate);
  const warnings: Diagnostic[] = [];
  const at = (problem: {
    path: ReadonlyArray<PropertyKey>;
    message: string;
    hint?: string | undefined;
  }): Diagnostic => ({
    file: absolute,
    ...loaded.locate(problem.path),
    key: formatPath(problem.path),
    message: problem.message,
    ...(problem.hint ? { hint: problem.hint } : {}),
  });
  if (options.schema) diagnostics.push(...checkDatapointUses(uses, options.schema).map(at));
  else {
    const payloads = testPayloadContents(loaded.value, absolute);
    if (payloads.length > 0)
      warnings.push(...checkDatapointUses(uses, catalogueFromPayloads(payloads, 'the test payloads')).map(at));
    else if (uses.length > 0) {
      warnings.push({
        file: absolute,
        line: 1,
        column: 1,
        key: '',
        message: 'datapoint names not checked: no queue schema given and the mapping has no test payloads',
        hint: 'check --schema SCHEMA.json (get it with: rossum-sftp-bridge schema pull --queue ID)',
      });
    }
  }
  const byPosition = (a: Diagnostic, b: Diagnostic): number => a.line - b.line || a.column - b.column;
  return { errors: diagnostics.sort(byPosition), warnings: warnings.sort(byPosition) };
}

/** All problems of one mapping file (syntax, schema, semantics); empty when it is fine. */
export function checkMappingFile(
  path: string,
  options: { schema?: DatapointCatalogue | undefined } = {},
): Diagnostic[] {
  return checkMapping(path, options).errors;
}

/** Loads, validates and compiles one mapping; throws ConfigFileError listing every problem with file:line:column. */
export function loadMappingFile(path: string): LoadedMapping {
  const absolute = resolve(path);
  const loaded = loadYamlFile(absolute, mappingSchema);
  const { compiled, diagnostics } = compile(loaded.value, absolute, loaded.locate);
  if (diagnostics.length > 0) {
    diagnostics.sort((a, b) => a.line - b.line || a.column - b.column);
    throw new ConfigFileError(diagnostics);
  }
  return new Mapping(absolute, loaded.source, compiled);
}
