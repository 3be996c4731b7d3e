import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parseExportPayload, type RawNode } from '../annotation/index.ts';
import {
  ConfigFileError,
  formatPath,
  loadYamlFile,
  type Diagnostic,
  type LoadedYaml,
} from '../config-loading/index.ts';
import { compileBatch } from './batch.ts';
import { checkTestCases } from './compile-checks.ts';
import { compileCsv } from './csv.ts';
import { catalogueFromPayloads, checkDatapointUses, type DatapointCatalogue, type DatapointUse } from './datapoints.ts';
import { compileEdifact } from './edifact.ts';
import { fitEncodingStep } from './emit.ts';
import { isKnownEncoding, OutputEncoding } from './encoding.ts';
import { templatePathProblem } from './filename.ts';
import { compileFixed } from './fixed.ts';
import { Mapping, type Compiled, type LoadedMapping } from './mapping.ts';
import { mappingSchema, type MappingSource } from './schema.ts';
import type { CompileEnv } from './scope.ts';
import { compileTemplatePieces } from './sources.ts';
import { compileTables } from './tables.ts';
import { compileValue } from './values.ts';
import { compileXml, type CompiledXml } from './xml.ts';

export type { LoadedMapping } from './mapping.ts';

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
  if (source.batch) env.batchTotals = new Set(Object.keys(source.batch.totals ?? {}));
  compileTables(source.tables, env);
  for (const [name, spec] of Object.entries(source.vars ?? {}))
    env.docVars.set(name, compileValue(spec, env, ['vars', name]));

  const pathProblem = templatePathProblem(source.file.name);
  if (pathProblem) problem(['file', 'name'], pathProblem);
  const usesBeforeName = env.uses.length;
  const fileName = compileTemplatePieces(source.file.name, env, ['file', 'name']);
  if (source.batch && env.uses.length > usesBeforeName)
    problem(
      ['file', 'name'],
      'a batch file holds many documents, so its name cannot read document fields',
      'name it with {batch} (or {seq}), {meta.now}, route and env values',
    );

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
  const batch = compileBatch(source, env, encoding);
  if (source.sequence && !env.metaRead?.has('seq') && !env.metaRead?.has('batch'))
    problem(
      ['sequence'],
      'nothing in the mapping reads the sequence number',
      'use {seq} or {seq:8} in file.name or a value',
    );

  checkTestCases(source, file, problem);

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
      batch,
      metaRead: env.metaRead as Set<string>,
    },
    diagnostics,
    uses: env.uses,
  };
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
