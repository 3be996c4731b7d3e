import type { AnnotationView, Datapoint, Row } from '../annotation/index.ts';
import type { RenderContext } from './contract.ts';
import { calcReferences, parseCalc, type CalcNode } from './calc.ts';
import { mappingError } from './errors.ts';
import { Decimal, datePatternProblem, formatNumber, formatUtc, parseDecimal, parseIsoDate, plain } from './format.ts';
import { META_KEYS, SOURCE_KEYS, type Condition, type TableConfig, type ValueMap, type ValueObject, type ValueSpec } from './schema.ts';

/** Everything one render shares: the document, the context, caches, and what --explain collects. */
export interface DocScope {
  view: AnnotationView;
  context: RenderContext;
  mappingName: string;
  mappingVersion: string;
  now: string;
  recordCount: number;
  vars: Map<string, string | undefined>;
  rowSets: Map<string, RowScope[]>;
  evaluating: Set<string>;
  /** Datapoints read while evaluating the current value; null unless explaining. */
  touched: string[] | null;
  warnings: string[];
  droppedWarnings: number;
  /** Results of values that do not depend on the row, computed once per document. */
  cache: Map<CompiledValue, { value: string | undefined; datapoint: Datapoint | undefined }>;
}

export interface RowScope {
  row: Row;
  /** 1-based among the rows written. */
  lineNumber: number;
  table: CompiledTable;
  label: string;
  vars: Map<string, string | undefined>;
}

export interface Scope {
  doc: DocScope;
  row: RowScope | undefined;
  /** Where in the output the current value goes, for messages. */
  at: string;
  /** The datapoint the current value came from, for error locations. */
  datapoint: Datapoint | undefined;
}

export interface CompiledValue {
  evaluate(scope: Scope): string | undefined;
  /** Produces a formatted number (never formula-escaped, right-aligned in fixed width). */
  readonly numeric: boolean;
}

export type CompiledCondition = (scope: Scope) => boolean;

export interface CompiledTable {
  name: string;
  from: string;
  where: CompiledCondition | undefined;
  vars: Map<string, CompiledValue>;
}

export interface CompileEnv {
  valueMaps: Record<string, ValueMap>;
  tables: Map<string, CompiledTable>;
  docVars: Map<string, CompiledValue>;
  declaredDocVars: Set<string>;
  /** Row vars visible here; undefined outside a row context. */
  rowTable: CompiledTable | undefined;
  declaredRowVars: Set<string> | undefined;
  /** Counts references to the current row, so values that never read one can be computed once per document. */
  rowReads: { count: number };
  /** Metadata keys the mapping reads anywhere (values, conditions, file name). */
  metaRead?: Set<string>;
  problem(path: ReadonlyArray<PropertyKey>, message: string, hint?: string): void;
}

type Path = ReadonlyArray<PropertyKey>;

/** Read through a function: the compiler narrows `scope.datapoint` after a reset and forgets sources set it. */
function datapointIdOf(scope: Scope): number | undefined {
  return scope.datapoint?.id;
}

const MAX_WARNINGS = 20;

/** Warnings become Rossum messages: keep the first few, then say how many more there were. */
export function addWarning(doc: DocScope, message: string): void {
  if (doc.warnings.length < MAX_WARNINGS) doc.warnings.push(message);
  else doc.droppedWarnings++;
}

export function finalWarnings(doc: DocScope): string[] {
  return doc.droppedWarnings > 0 ? [...doc.warnings, `... and ${doc.droppedWarnings} more similar changes`] : doc.warnings;
}

export function newScope(doc: DocScope): Scope {
  return { doc, row: undefined, at: '', datapoint: undefined };
}

// ---------------------------------------------------------------- tables

export function tableFor(env: CompileEnv, name: string): CompiledTable {
  let table = env.tables.get(name);
  if (!table) {
    table = { name, from: name, where: undefined, vars: new Map() };
    env.tables.set(name, table);
  }
  return table;
}

export function compileTables(config: Record<string, TableConfig> | undefined, env: CompileEnv): void {
  const entries = Object.entries(config ?? {});
  for (const [name, table] of entries) env.tables.set(name, { name, from: table.from, where: undefined, vars: new Map() });
  for (const [name, table] of entries) {
    const compiled = env.tables.get(name) as CompiledTable;
    const rowEnv: CompileEnv = { ...env, rowTable: compiled, declaredRowVars: new Set(Object.keys(table.vars ?? {})), rowReads: { count: 0 } };
    if (table.where) compiled.where = compileCondition(table.where, rowEnv, ['tables', name, 'where']);
    for (const [varName, spec] of Object.entries(table.vars ?? {})) compiled.vars.set(varName, compileValue(spec, rowEnv, ['tables', name, 'vars', varName]));
  }
}

/** Rows of a table after its filter, computed once per render. */
export function rowsOf(doc: DocScope, table: CompiledTable): RowScope[] {
  let rows = doc.rowSets.get(table.name);
  if (rows) return rows;
  rows = [];
  const scope = newScope(doc);
  for (const row of doc.view.rows(table.from)) {
    const candidate: RowScope = { row, lineNumber: rows.length + 1, table, label: `${table.from} row ${row.index}`, vars: new Map() };
    if (table.where) {
      scope.row = candidate;
      if (!table.where(scope)) continue;
    }
    rows.push(candidate);
  }
  doc.rowSets.set(table.name, rows);
  return rows;
}

// ---------------------------------------------------------------- sources

function datapointText(dp: Datapoint, use: 'normalized' | 'value' | undefined): string {
  if (use === 'value') return dp.value;
  return dp.normalizedValue ?? dp.value;
}

function touch(scope: Scope, dp: Datapoint, owner: string): void {
  scope.datapoint = dp;
  scope.doc.touched?.push(`${owner}${dp.schemaId} (datapoint ${dp.id})`);
}

function metaValue(scope: Scope, key: string): string | undefined {
  const { meta } = scope.doc.view;
  const text = (v: string | number | null): string | undefined => (v === null ? undefined : String(v));
  switch (key as keyof typeof META_KEYS) {
    case 'annotation_id':
      return String(meta.annotationId);
    case 'document_id':
      return text(meta.documentId);
    case 'queue_id':
      return text(meta.queueId);
    case 'document_file_name':
      return text(meta.documentFileName);
    case 'request_id':
      return meta.requestId;
    case 'hook_timestamp':
      return text(meta.hookTimestamp);
    case 'confirmed_at':
      return text(meta.confirmedAt);
    case 'created_at':
      return text(meta.createdAt);
    case 'arrived_at':
      return text(meta.arrivedAt);
    case 'base_url':
      return text(meta.baseUrl);
    case 'now':
      return scope.doc.now;
    case 'mapping_name':
      return scope.doc.mappingName;
    case 'mapping_version':
      return scope.doc.mappingVersion;
    case 'record_count':
      return String(scope.doc.recordCount);
    default:
      return undefined;
  }
}

function routeValue(scope: Scope, key: string): string | undefined {
  const fromRoute = scope.doc.context.route?.[key];
  if (fromRoute !== undefined) return fromRoute;
  const setting = scope.doc.view.meta.settings[key];
  return typeof setting === 'string' || typeof setting === 'number' || typeof setting === 'boolean' ? String(setting) : undefined;
}

function varValue(scope: Scope, name: string): string | undefined {
  const row = scope.row;
  const rowVar = row?.table.vars.get(name);
  if (row && rowVar) return memo(scope, row.vars, `${row.label}/${name}`, name, rowVar);
  const docVar = docVarTable.get(scope.doc)?.get(name);
  if (!docVar) return undefined;
  return memo({ ...scope, row: undefined }, scope.doc.vars, name, name, docVar);
}

function memo(scope: Scope, cache: Map<string, string | undefined>, key: string, name: string, value: CompiledValue): string | undefined {
  if (cache.has(key)) return cache.get(key);
  if (scope.doc.evaluating.has(key)) throw mappingError('MAPPING_INVALID', `The value "${name}" refers to itself (directly or through other vars).`);
  scope.doc.evaluating.add(key);
  const inner: Scope = { ...scope, datapoint: undefined };
  try {
    const result = value.evaluate(inner);
    cache.set(key, result);
    return result;
  } finally {
    scope.doc.evaluating.delete(key);
    if (inner.datapoint) scope.datapoint = inner.datapoint;
  }
}

/** Document vars are attached per render (the compiled mapping owns them, the scope borrows them). */
const docVarTable = new WeakMap<DocScope, Map<string, CompiledValue>>();
export function attachDocVars(doc: DocScope, vars: Map<string, CompiledValue>): void {
  docVarTable.set(doc, vars);
}

/** A placeholder or reference: `document_id`, `row.x`, `var.x`, `meta.x`, `env.X`, `route.x`, `line_number`. */
function compileReference(ref: string, env: CompileEnv, path: Path, use?: 'normalized' | 'value'): (scope: Scope) => string | undefined {
  const dot = ref.indexOf('.');
  const head = dot < 0 ? ref : ref.slice(0, dot);
  const rest = dot < 0 ? '' : ref.slice(dot + 1);
  if (dot >= 0 && ['row', 'var', 'meta', 'env', 'route', 'field'].includes(head)) return compileSource(head as SourceKey, rest, env, path, use);
  if (ref === 'line_number') return compileSource('line_number', true, env, path, use);
  return compileSource('field', ref, env, path, use);
}

type SourceKey = (typeof SOURCE_KEYS)[number];

function compileSource(key: SourceKey, arg: unknown, env: CompileEnv, path: Path, use: 'normalized' | 'value' | undefined): (scope: Scope) => string | undefined {
  switch (key) {
    case 'field': {
      const id = String(arg);
      return (scope) => {
        const dp = scope.doc.view.field(id);
        if (!dp) return undefined;
        touch(scope, dp, '');
        return datapointText(dp, use);
      };
    }
    case 'row': {
      env.rowReads.count++;
      const id = String(arg);
      if (!env.rowTable) env.problem(path, `row field "${id}" is used outside a table`, 'use it under an element with `repeat`, CSV `rows`, a fixed record with `rows`, or a table\'s vars; for a header field write {field: ...}');
      return (scope) => {
        const dp = scope.row?.row.field(id);
        if (!dp) return undefined;
        touch(scope, dp, `${scope.row?.label}: `);
        return datapointText(dp, use);
      };
    }
    case 'var': {
      const name = String(arg);
      if (env.declaredRowVars?.has(name)) env.rowReads.count++;
      const known = env.declaredDocVars.has(name) || env.declaredRowVars?.has(name);
      if (!known) {
        const all = [...env.declaredDocVars, ...(env.declaredRowVars ?? [])];
        env.problem(path, `unknown var "${name}"`, all.length ? `declared vars: ${all.join(', ')}` : 'declare it under `vars` (document) or a table\'s `vars` (per row)');
      }
      return (scope) => varValue(scope, name);
    }
    case 'meta': {
      const name = String(arg);
      if (!(name in META_KEYS)) env.problem(path, `unknown metadata "${name}"`, `expected one of: ${Object.keys(META_KEYS).join(', ')}`);
      env.metaRead?.add(name);
      return (scope) => metaValue(scope, name);
    }
    case 'const': {
      const text = String(arg);
      return () => text;
    }
    case 'env': {
      const name = String(arg);
      return (scope) => scope.doc.context.env?.[name];
    }
    case 'route': {
      const name = String(arg);
      return (scope) => routeValue(scope, name);
    }
    case 'line_number': {
      env.rowReads.count++;
      if (!env.rowTable) env.problem(path, 'line_number is used outside a table', 'use it inside repeated rows');
      return (scope) => (scope.row ? String(scope.row.lineNumber) : undefined);
    }
    case 'template':
      return compileTemplate(String(arg), env, path);
    case 'calc':
      return compileCalc(String(arg), env, path);
    case 'count': {
      const spec = typeof arg === 'string' ? { rows: arg, where: undefined } : (arg as { rows: string; where?: Condition });
      const table = tableFor(env, spec.rows);
      const where = spec.where ? compileCondition(spec.where, { ...env, rowTable: table, declaredRowVars: new Set(table.vars.keys()), rowReads: { count: 0 } }, [...path, 'where']) : undefined;
      return (scope) => {
        const rows = rowsOf(scope.doc, table);
        if (!where) return String(rows.length);
        const inner: Scope = { ...scope };
        return String(rows.filter((row) => ((inner.row = row), where(inner))).length);
      };
    }
    case 'sum': {
      let spec: { rows: string; of: string | ValueSpec; where?: Condition | undefined };
      if (typeof arg === 'string') {
        const dot = arg.lastIndexOf('.');
        if (dot <= 0) env.problem(path, `sum "${arg}" needs the form table.field, e.g. line_items.item_amount_total`);
        spec = { rows: arg.slice(0, Math.max(dot, 0)), of: arg.slice(dot + 1) };
      } else spec = arg as typeof spec;
      const table = tableFor(env, spec.rows);
      const rowEnv: CompileEnv = { ...env, rowTable: table, declaredRowVars: new Set(table.vars.keys()), rowReads: { count: 0 } };
      const of = typeof spec.of === 'string' && typeof arg === 'string' ? compileSource('row', spec.of, rowEnv, path, 'normalized') : typeof spec.of === 'string' ? compileSource('row', spec.of, rowEnv, [...path, 'of'], 'normalized') : compileValue(spec.of, rowEnv, [...path, 'of']).evaluate;
      const where = spec.where ? compileCondition(spec.where, rowEnv, [...path, 'where']) : undefined;
      return (scope) => {
        let total = new Decimal(0);
        const inner: Scope = { ...scope };
        for (const row of rowsOf(scope.doc, table)) {
          inner.row = row;
          inner.datapoint = undefined;
          if (where && !where(inner)) continue;
          const text = of(inner);
          if (text === undefined || text.trim() === '') continue;
          const n = parseDecimal(text);
          if (!n) throw mappingError('MAPPING_INVALID_NUMBER', `${scope.at}: cannot add up "${text}" from ${row.label}: it is not a number.`, datapointIdOf(inner));
          total = total.plus(n);
        }
        return plain(total);
      };
    }
    case 'cases':
      throw new Error('cases are compiled by compileValue');
  }
}

function compileTemplate(text: string, env: CompileEnv, path: Path, wrap?: (value: string) => string): (scope: Scope) => string | undefined {
  const parts: Array<string | ((scope: Scope) => string | undefined)> = [];
  let literal = '';
  for (let i = 0; i < text.length; i++) {
    const ch = text[i] as string;
    if ((ch === '{' || ch === '}') && text[i + 1] === ch) {
      literal += ch;
      i++;
      continue;
    }
    if (ch === '}') {
      env.problem(path, `unmatched "}" at character ${i + 1} of the template`, 'write "}}" for a literal brace');
      continue;
    }
    if (ch !== '{') {
      literal += ch;
      continue;
    }
    const end = text.indexOf('}', i);
    if (end < 0) {
      env.problem(path, `unclosed "{" at character ${i + 1} of the template`, 'write "{{" for a literal brace');
      break;
    }
    if (literal) parts.push(literal);
    literal = '';
    const ref = text.slice(i + 1, end).trim();
    if (!/^[A-Za-z_][\w-]*(\.[\w-]+)?$/.test(ref)) env.problem(path, `"{${ref}}" is not a field reference`, 'use {schema_id}, {row.x}, {var.x}, {meta.x}, {env.X}, {route.x} or {line_number}');
    parts.push(compileReference(ref, env, path));
    i = end;
  }
  if (literal) parts.push(literal);
  if (parts.length === 1 && typeof parts[0] === 'string' && !wrap) {
    const constant = parts[0];
    return () => constant;
  }
  return (scope) => {
    let out = '';
    for (const part of parts) {
      if (typeof part === 'string') out += part;
      else {
        const value = part(scope) ?? '';
        out += wrap ? wrap(value) : value;
      }
    }
    return out;
  };
}

/** A template whose substituted values go through `wrap` (file names sanitize them). */
export function compileWrappedTemplate(text: string, env: CompileEnv, path: Path, wrap: (value: string) => string): (scope: Scope) => string {
  const template = compileTemplate(text, env, path, wrap);
  return (scope) => template(scope) ?? '';
}

function compileCalc(source: string, env: CompileEnv, path: Path): (scope: Scope) => string {
  let tree: CalcNode;
  try {
    tree = parseCalc(source);
  } catch (error) {
    env.problem(path, `calc: ${(error as Error).message}`);
    return () => '';
  }
  const refs = new Map<string, (scope: Scope) => string | undefined>();
  for (const ref of calcReferences(tree)) refs.set(ref, compileReference(ref, env, path, 'normalized'));
  const evaluate = (node: CalcNode, scope: Scope): Decimal => {
    switch (node.kind) {
      case 'number':
        return new Decimal(node.text);
      case 'neg':
        return evaluate(node.operand, scope).negated();
      case 'binary': {
        const left = evaluate(node.left, scope);
        const right = evaluate(node.right, scope);
        if (node.op === '+') return left.plus(right);
        if (node.op === '-') return left.minus(right);
        if (node.op === '*') return left.times(right);
        if (right.isZero()) throw mappingError('MAPPING_CALC', `${scope.at}: "${source}" divides by zero.`, scope.datapoint?.id);
        return left.dividedBy(right);
      }
      case 'ref': {
        scope.datapoint = undefined;
        const text = (refs.get(node.name) as (scope: Scope) => string | undefined)(scope);
        const where = scope.row ? ` (${scope.row.label})` : '';
        if (text === undefined || text.trim() === '') {
          throw mappingError('MAPPING_REQUIRED_FIELD', `${scope.at}: "${source}" needs ${node.name}${where}, which is ${text === undefined ? 'missing from the annotation' : 'empty'}.`, datapointIdOf(scope));
        }
        const n = parseDecimal(text);
        if (!n) throw mappingError('MAPPING_INVALID_NUMBER', `${scope.at}: "${source}" needs ${node.name}${where} to be a number, but it is "${text}".`, datapointIdOf(scope));
        return n;
      }
    }
  };
  return (scope) => plain(evaluate(tree, scope));
}

// ---------------------------------------------------------------- conditions

function compareNumbers(a: string | undefined, b: string | number | boolean): number | undefined {
  if (a === undefined) return undefined;
  const left = parseDecimal(a);
  const right = parseDecimal(String(b));
  return left && right ? left.comparedTo(right) : undefined;
}

export function compileCondition(condition: Condition, env: CompileEnv, path: Path): CompiledCondition {
  const tests: CompiledCondition[] = [];
  if (condition.all) {
    const inner = condition.all.map((c, i) => compileCondition(c, env, [...path, 'all', i]));
    tests.push((scope) => inner.every((test) => test(scope)));
  }
  if (condition.any) {
    const inner = condition.any.map((c, i) => compileCondition(c, env, [...path, 'any', i]));
    tests.push((scope) => inner.some((test) => test(scope)));
  }
  if (condition.not) {
    const inner = compileCondition(condition.not, env, [...path, 'not']);
    tests.push((scope) => !inner(scope));
  }
  const subjects = (['field', 'row', 'var', 'meta', 'env', 'route', 'value'] as const).filter((key) => condition[key] !== undefined);
  const checks = (['present', 'equals', 'not_equals', 'in', 'matches', 'gt', 'gte', 'lt', 'lte'] as const).filter((key) => condition[key] !== undefined);
  if (subjects.length > 1) env.problem(path, `a condition tests one subject, found ${subjects.join(' and ')}`, 'combine conditions with all: [...]');
  if (subjects.length === 0 && checks.length > 0) env.problem(path, `"${checks[0]}" needs a subject`, 'add field:, row:, var:, meta:, env:, route: or value:');
  if (subjects.length === 1 && checks.length === 0) env.problem(path, `nothing to test on ${subjects[0]}`, 'add present: true, equals:, in:, matches:, gt: ...');
  if (subjects.length === 0 && tests.length === 0) env.problem(path, 'empty condition', 'e.g. {field: order_id, present: true}');
  const subjectKey = subjects[0];
  if (subjectKey) {
    const subject =
      subjectKey === 'value' ? compileValue(condition.value as ValueSpec, env, [...path, 'value']).evaluate : compileSource(subjectKey, condition[subjectKey], env, [...path, subjectKey], undefined);
    let pattern: RegExp | undefined;
    if (condition.matches !== undefined) {
      try {
        pattern = new RegExp(condition.matches, 'u');
      } catch (error) {
        env.problem([...path, 'matches'], `invalid regular expression: ${(error as Error).message}`);
      }
    }
    const { present, equals, not_equals: notEquals, in: oneOf, gt, gte, lt, lte } = condition;
    const set = oneOf?.map(String);
    tests.push((scope) => {
      const value = subject(scope);
      const has = value !== undefined && value.trim() !== '';
      if (present !== undefined && has !== present) return false;
      if (equals !== undefined && value !== String(equals)) return false;
      if (notEquals !== undefined && value === String(notEquals)) return false;
      if (set && (value === undefined || !set.includes(value))) return false;
      if (pattern && (value === undefined || !pattern.test(value))) return false;
      if (gt !== undefined && !((compareNumbers(value, gt) ?? 0) > 0)) return false;
      if (gte !== undefined && !((compareNumbers(value, gte) ?? -1) >= 0)) return false;
      if (lt !== undefined && !((compareNumbers(value, lt) ?? 0) < 0)) return false;
      if (lte !== undefined && !((compareNumbers(value, lte) ?? 1) <= 0)) return false;
      return true;
    });
  }
  if (tests.length === 1) return tests[0] as CompiledCondition;
  return (scope) => tests.every((test) => test(scope));
}

// ---------------------------------------------------------------- values

const WHITESPACE_EDGES = /^[\s\u00a0\u2007\u202f\ufeff]+|[\s\u00a0\u2007\u202f\ufeff]+$/g;

function sourceLabel(spec: ValueObject): string {
  if (spec.label) return spec.label;
  if (spec.field !== undefined) return `"${spec.field}"`;
  if (spec.row !== undefined) return `"${spec.row}"`;
  if (spec.var !== undefined) return `var "${spec.var}"`;
  if (spec.meta !== undefined) return `metadata "${spec.meta}"`;
  if (spec.env !== undefined) return `environment value "${spec.env}"`;
  if (spec.route !== undefined) return `route value "${spec.route}"`;
  return 'the value';
}

export function compileValue(spec: ValueSpec, env: CompileEnv, path: Path): CompiledValue {
  const before = env.rowReads.count;
  const compiled = compileValueUncached(spec, env, path);
  if (env.rowReads.count !== before || !env.rowTable) return compiled;
  // Header values inside a per-row context (CSV columns, repeated elements) are the same for every row.
  const cached: CompiledValue = {
    numeric: compiled.numeric,
    evaluate(scope) {
      if (scope.doc.touched !== null) return compiled.evaluate(scope);
      const hit = scope.doc.cache.get(cached);
      if (hit) {
        scope.datapoint = hit.datapoint;
        return hit.value;
      }
      const value = compiled.evaluate(scope);
      scope.doc.cache.set(cached, { value, datapoint: scope.datapoint });
      return value;
    },
  };
  return cached;
}

function compileValueUncached(spec: ValueSpec, env: CompileEnv, path: Path): CompiledValue {
  if (typeof spec === 'string') return { evaluate: compileTemplate(spec, env, path), numeric: false };
  const sources = SOURCE_KEYS.filter((key) => spec[key] !== undefined && !(key === 'line_number' && spec.line_number === false));
  if (sources.length !== 1) {
    env.problem(path, sources.length === 0 ? 'a value needs a source' : `a value has one source, found ${sources.join(', ')}`, `one of: ${SOURCE_KEYS.join(', ')}`);
  }
  const key = sources[0];
  let source: (scope: Scope) => string | undefined;
  let numericSource = key === 'calc' || key === 'count' || key === 'sum' || key === 'line_number' || (key === 'meta' && spec.meta === 'record_count');
  if (key === 'cases') {
    const cases = (spec.cases ?? []).map((entry, i) => ({
      when: entry.when ? compileCondition(entry.when, env, [...path, 'cases', i, 'when']) : undefined,
      value: compileValue(entry.value, env, [...path, 'cases', i, 'value']),
    }));
    cases.slice(0, -1).forEach((entry, i) => {
      if (!entry.when) env.problem([...path, 'cases', i], 'only the last case may leave out `when`; the cases after it can never apply');
    });
    numericSource = cases.length > 0 && cases.every((entry) => entry.value.numeric);
    source = (scope) => {
      for (const entry of cases) if (!entry.when || entry.when(scope)) return entry.value.evaluate(scope);
      return undefined;
    };
  } else if (key) {
    source = compileSource(key, spec[key], env, [...path, key], spec.use);
  } else source = () => undefined;

  const label = sourceLabel(spec);
  const when = spec.when ? compileCondition(spec.when, env, [...path, 'when']) : undefined;
  const steps: Array<(value: string, scope: Scope) => string> = [];

  if (spec.trim) steps.push((v) => v.replace(WHITESPACE_EDGES, ''));
  if (spec.collapse_whitespace) steps.push((v) => v.replace(/[\s\u00a0]+/g, ' ').replace(WHITESPACE_EDGES, ''));
  if (spec.strip_line_breaks) steps.push((v) => v.replace(/\r\n|\r|\n|\u2028|\u2029/g, ' '));
  const preDefault = steps.splice(0);

  for (const [i, rule] of (spec.replace ?? []).entries()) {
    try {
      const regex = new RegExp(rule.pattern, 'gu');
      steps.push((v) => v.replace(regex, rule.with));
    } catch (error) {
      env.problem([...path, 'replace', i, 'pattern'], `invalid regular expression: ${(error as Error).message}`);
    }
  }
  if (spec.map !== undefined) {
    let map: ValueMap | undefined;
    if (typeof spec.map === 'string') {
      map = env.valueMaps[spec.map];
      if (!map) env.problem([...path, 'map'], `unknown value map "${spec.map}"`, Object.keys(env.valueMaps).length ? `defined maps: ${Object.keys(env.valueMaps).join(', ')}` : 'define it under value_maps');
    } else map = spec.map;
    if (map) {
      const entries = map.ignore_case ? new Map(Object.entries(map.entries).map(([k, v]) => [k.toLowerCase(), v])) : new Map(Object.entries(map.entries));
      const { fallback, keep_unmapped: keep, ignore_case: ignoreCase } = map;
      const mapName = typeof spec.map === 'string' ? `value map "${spec.map}"` : 'the value map';
      steps.push((v, scope) => {
        const hit = entries.get(ignoreCase ? v.toLowerCase() : v);
        if (hit !== undefined) return hit;
        if (fallback !== undefined) return fallback;
        if (keep) return v;
        throw mappingError('MAPPING_UNMAPPED_VALUE', `${scope.at}: ${label} is "${v}", which ${mapName} does not list (known: ${[...entries.keys()].slice(0, 10).join(', ')}). Correct the value in Rossum or add it to the mapping.`, scope.datapoint?.id);
      });
    }
  }
  if (spec.date !== undefined && spec.number !== undefined) env.problem(path, 'a value is either a date or a number, not both');
  if (spec.date !== undefined) {
    const pattern = spec.date;
    const problem = datePatternProblem(pattern);
    if (problem) env.problem([...path, 'date'], `invalid date pattern: ${problem}`, 'e.g. yyyyMMdd, dd.MM.yyyy, yyyy-MM-dd\'T\'HH:mm:ss');
    steps.push((v, scope) => {
      const date = parseIsoDate(v);
      if (!date) throw mappingError('MAPPING_INVALID_DATE', `${scope.at}: ${label} is "${v}", which is not a date. Correct it in Rossum so it has a normalized date.`, scope.datapoint?.id);
      return formatUtc(date, pattern);
    });
  }
  if (spec.number !== undefined) {
    const format = spec.number;
    if (format.implied_decimals && format.decimals === undefined) env.problem([...path, 'number', 'implied_decimals'], 'implied_decimals needs a fixed number of `decimals`');
    numericSource = true;
    steps.push((v, scope) => {
      const formatted = formatNumber(v, format);
      if (formatted === undefined) throw mappingError('MAPPING_INVALID_NUMBER', `${scope.at}: ${label} is "${v}", which is not a number. Correct it in Rossum so it has a normalized amount.`, scope.datapoint?.id);
      return formatted;
    });
  }
  if (spec.case === 'upper') steps.push((v) => v.toUpperCase());
  if (spec.case === 'lower') steps.push((v) => v.toLowerCase());
  if (spec.prefix !== undefined || spec.suffix !== undefined) {
    const prefix = spec.prefix ?? '';
    const suffix = spec.suffix ?? '';
    steps.push((v) => (v === '' ? v : `${prefix}${v}${suffix}`));
  }
  if (spec.truncate !== undefined) {
    const max = spec.truncate;
    steps.push((v) => {
      const chars = Array.from(v);
      return chars.length > max ? chars.slice(0, max).join('') : v;
    });
  }
  if (spec.pad) {
    const { width, char = ' ', align = 'left' } = spec.pad;
    steps.push((v) => (align === 'right' ? v.padStart(width, char) : v.padEnd(width, char)));
  }

  const fallback = spec.default === undefined ? undefined : String(spec.default);
  const required = spec.required === true;
  if (required && fallback !== undefined) env.problem([...path, 'required'], 'a required value with a default can never be missing', 'remove `required` or `default`');
  const missingId = spec.field ?? spec.row;
  const fromRow = spec.row !== undefined;

  const evaluate = (scope: Scope): string | undefined => {
    if (when && !when(scope)) return undefined;
    let value = source(scope);
    if (value !== undefined) for (const step of preDefault) value = step(value, scope);
    if (value === undefined || value === '') {
      if (fallback !== undefined) value = fallback;
      else if (required) throw requiredError(scope, label, value, missingId, fromRow);
      else return value;
    }
    for (const step of steps) value = step(value, scope);
    return value;
  };
  return { evaluate, numeric: numericSource && !spec.case && !spec.map };
}

function requiredError(scope: Scope, label: string, value: string | undefined, schemaId: string | undefined, fromRow: boolean): Error {
  const where = fromRow && scope.row ? ` in ${scope.row.label}` : '';
  if (value === undefined && schemaId !== undefined) {
    return mappingError(
      'MAPPING_REQUIRED_FIELD',
      `${scope.at} needs the field "${schemaId}"${where}, but the annotation has no datapoint with schema_id "${schemaId}". Add it to the queue's schema or change the mapping.`,
    );
  }
  const datapoint = scope.datapoint;
  return mappingError('MAPPING_REQUIRED_FIELD', `${label}${where} is required for ${scope.at}, but it is ${value === undefined ? 'missing' : 'empty'}. Fill it in and export again.`, datapoint?.id);
}
