import type { Datapoint } from '../annotation/index.ts';
import {
  DECIMAL_ARITHMETIC,
  EXACT_ARITHMETIC,
  parseCalc,
  exactFirst,
  usesDivision,
  type Arithmetic,
  type CalcNode,
} from './calc.ts';
import { compileCondition } from './conditions.ts';
import { mappingError } from './errors.ts';
import { META_KEYS, type SOURCE_KEYS, type Condition, type ValueSpec } from './schema.ts';
import {
  datapointIdOf,
  docVarsOf,
  type CompileEnv,
  type CompiledValue,
  type Path,
  type RowScope,
  type Scope,
} from './scope.ts';
import { BATCH_TOTAL, batchText, metaValue, routeValue, sequenceText } from './meta-values.ts';
import { rowsOf, tableFor } from './tables.ts';
import { compileValue } from './values.ts';

/** Where a value comes from: datapoints, metadata, vars, route/env, templates, calc and aggregates over tables. */

function datapointText(dp: Datapoint, use: 'normalized' | 'value' | undefined): string {
  if (use === 'value') return dp.value;
  return dp.normalizedValue ?? dp.value;
}

function touch(scope: Scope, dp: Datapoint, row: RowScope | undefined): void {
  scope.datapoint = dp;
  // The label is built only when explaining: a render reads every row's datapoints and never shows it.
  const touched = scope.doc.touched;
  if (touched !== null) touched.push(`${row ? `${row.label}: ` : ''}${dp.schemaId} (datapoint ${dp.id})`);
}

function varValue(scope: Scope, name: string): string | undefined {
  const row = scope.row;
  const rowVar = row?.table.vars.get(name);
  if (row && rowVar) {
    // Each row has its own cache, so the name is key enough.
    row.vars ??= new Map();
    if (row.vars.has(name)) return row.vars.get(name);
    return memo(scope, row.vars, name, rowVar);
  }
  const docVar = docVarsOf(scope.doc)?.get(name);
  if (!docVar) return undefined;
  if (scope.doc.vars.has(name)) return scope.doc.vars.get(name);
  return memo({ ...scope, row: undefined }, scope.doc.vars, name, docVar);
}

/**
 * Evaluates a var once per cache. A var met again while it is being evaluated refers to itself (a var of
 * another row reached from inside one is a cycle too: only an aggregate over its own table gets there).
 */
function memo(
  scope: Scope,
  cache: Map<string, string | undefined>,
  name: string,
  value: CompiledValue,
): string | undefined {
  const evaluating = scope.doc.evaluating;
  if (evaluating.has(value))
    throw mappingError('MAPPING_INVALID', `The value "${name}" refers to itself (directly or through other vars).`);
  evaluating.add(value);
  // The var's own datapoint is the one a message names; the caller's comes back when the var read none.
  const outer = scope.datapoint;
  scope.datapoint = undefined;
  try {
    const result = value.evaluate(scope);
    cache.set(name, result);
    return result;
  } finally {
    evaluating.delete(value);
    if (scope.datapoint === undefined) scope.datapoint = outer;
  }
}

/** A placeholder or reference: `document_id`, `row.x`, `var.x`, `meta.x`, `env.X`, `route.x`, `line_number`. */
function compileReference(
  ref: string,
  env: CompileEnv,
  path: Path,
  use?: 'normalized' | 'value',
): (scope: Scope) => string | undefined {
  const dot = ref.indexOf('.');
  const head = dot < 0 ? ref : ref.slice(0, dot);
  const rest = dot < 0 ? '' : ref.slice(dot + 1);
  if (dot >= 0 && ['row', 'var', 'meta', 'env', 'route', 'field'].includes(head))
    return compileSource(head as SourceKey, rest, env, path, use);
  if (ref === 'line_number') return compileSource('line_number', true, env, path, use);
  return compileSource('field', ref, env, path, use);
}

export type SourceKey = (typeof SOURCE_KEYS)[number];

export function compileSource(
  key: SourceKey,
  arg: unknown,
  env: CompileEnv,
  path: Path,
  use: 'normalized' | 'value' | undefined,
): (scope: Scope) => string | undefined {
  switch (key) {
    case 'field': {
      const id = String(arg);
      env.uses.push({ kind: 'field', id, path });
      return (scope) => {
        const dp = scope.doc.view.field(id);
        if (!dp) return undefined;
        touch(scope, dp, undefined);
        return datapointText(dp, use);
      };
    }
    case 'row': {
      env.rowReads.count++;
      const id = String(arg);
      env.uses.push({ kind: 'row', id, table: env.rowTable?.from, path });
      if (!env.rowTable)
        env.problem(
          path,
          `row field "${id}" is used outside a table`,
          "use it under an element with `repeat`, CSV `rows`, a fixed record with `rows`, or a table's vars; for a header field write {field: ...}",
        );
      return (scope) => {
        const row = scope.row;
        const dp = row?.row.field(id);
        if (!dp) return undefined;
        touch(scope, dp, row);
        return datapointText(dp, use);
      };
    }
    case 'var': {
      const name = String(arg);
      if (env.declaredRowVars?.has(name)) env.rowReads.count++;
      const known = env.declaredDocVars.has(name) || env.declaredRowVars?.has(name);
      if (!known) {
        const all = [...env.declaredDocVars, ...(env.declaredRowVars ?? [])];
        env.problem(
          path,
          `unknown var "${name}"`,
          all.length
            ? `declared vars: ${all.join(', ')}`
            : "declare it under `vars` (document) or a table's `vars` (per row)",
        );
      }
      return (scope) => varValue(scope, name);
    }
    case 'meta': {
      const name = String(arg);
      if (name.startsWith(BATCH_TOTAL)) {
        const total = name.slice(BATCH_TOTAL.length);
        if (!env.batchTotals?.has(total))
          env.problem(
            path,
            `"${name}" reads a batch total that batch.totals does not declare`,
            env.batchTotals
              ? `declared: ${[...env.batchTotals].join(', ') || 'none'}`
              : 'only batch mappings have totals',
          );
      } else if (!(name in META_KEYS))
        env.problem(path, `unknown metadata "${name}"`, `expected one of: ${Object.keys(META_KEYS).join(', ')}`);
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
      const spec =
        typeof arg === 'string' ? { rows: arg, where: undefined } : (arg as { rows: string; where?: Condition });
      const table = tableFor(env, spec.rows, typeof arg === 'string' ? path : [...path, 'rows']);
      const where = spec.where
        ? compileCondition(
            spec.where,
            { ...env, rowTable: table, declaredRowVars: new Set(table.vars.keys()), rowReads: { count: 0 } },
            [...path, 'where'],
          )
        : undefined;
      return (scope) => {
        const rows = rowsOf(scope.doc, table);
        if (!where) return String(rows.length);
        const inner: Scope = { ...scope };
        return String(
          rows.filter((row) => {
            inner.row = row;
            return where(inner);
          }).length,
        );
      };
    }
    case 'sum': {
      let spec: { rows: string; of: string | ValueSpec; where?: Condition | undefined };
      if (typeof arg === 'string') {
        const dot = arg.lastIndexOf('.');
        if (dot <= 0) env.problem(path, `sum "${arg}" needs the form table.field, e.g. line_items.item_amount_total`);
        spec = { rows: arg.slice(0, Math.max(dot, 0)), of: arg.slice(dot + 1) };
      } else spec = arg as typeof spec;
      const table = tableFor(env, spec.rows, typeof arg === 'string' ? path : [...path, 'rows']);
      const rowEnv: CompileEnv = {
        ...env,
        rowTable: table,
        declaredRowVars: new Set(table.vars.keys()),
        rowReads: { count: 0 },
      };
      const of =
        typeof spec.of === 'string' && typeof arg === 'string'
          ? compileSource('row', spec.of, rowEnv, path, 'normalized')
          : typeof spec.of === 'string'
            ? compileSource('row', spec.of, rowEnv, [...path, 'of'], 'normalized')
            : compileValue(spec.of, rowEnv, [...path, 'of']).evaluate;
      const where = spec.where ? compileCondition(spec.where, rowEnv, [...path, 'where']) : undefined;
      const total = <N>(arithmetic: Arithmetic<N>, scope: Scope): string => {
        let sum = arithmetic.parse('0') as N;
        const inner: Scope = { ...scope };
        for (const row of rowsOf(scope.doc, table)) {
          inner.row = row;
          inner.datapoint = undefined;
          if (where && !where(inner)) continue;
          const text = of(inner);
          if (text === undefined || text.trim() === '') continue;
          const n = arithmetic.parse(text);
          if (n === undefined)
            throw mappingError(
              'MAPPING_INVALID_NUMBER',
              `${scope.at}: cannot add up "${text}" from ${row.label}: it is not a number.`,
              datapointIdOf(inner),
            );
          sum = arithmetic.plus(sum, n);
        }
        return arithmetic.plain(sum);
      };
      return exactFirst(
        (scope: Scope) => total(EXACT_ARITHMETIC, scope),
        (scope: Scope) => total(DECIMAL_ARITHMETIC, scope),
      );
    }
    case 'cases':
      throw new Error('cases are compiled by compileValue');
  }
}

/** A piece of a rendered template: literal text from the mapping, or a value that came from the document. */
export type TemplatePiece = { literal: string } | { value: string };

function compileTemplateParts(
  text: string,
  env: CompileEnv,
  path: Path,
): Array<string | ((scope: Scope) => string | undefined)> {
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
    const sequence = /^seq(?::(\d{1,2}))?$/.exec(ref);
    if (sequence) {
      env.metaRead?.add('seq');
      const width = Number(sequence[1] ?? 0);
      parts.push((scope) => sequenceText(scope, width));
      i = end;
      continue;
    }
    const batch = env.batchTotals ? /^batch(?::(\d{1,2}))?$/.exec(ref) : null;
    if (batch) {
      env.metaRead?.add('batch');
      const width = Number(batch[1] ?? 0);
      parts.push((scope) => batchText(scope, 'batch').padStart(width, '0'));
      i = end;
      continue;
    }
    if (!/^[A-Za-z_][\w-]*(\.[\w-]+)?$/.test(ref))
      env.problem(
        path,
        `"{${ref}}" is not a field reference`,
        'use {schema_id}, {row.x}, {var.x}, {meta.x}, {env.X}, {route.x}, {line_number} or {seq:8}',
      );
    parts.push(compileReference(ref, env, path));
    i = end;
  }
  if (literal) parts.push(literal);
  return parts;
}

export function compileTemplate(text: string, env: CompileEnv, path: Path): (scope: Scope) => string | undefined {
  const parts = compileTemplateParts(text, env, path);
  if (parts.length === 1 && typeof parts[0] === 'string') {
    const constant = parts[0];
    return () => constant;
  }
  return (scope) => {
    let out = '';
    for (const part of parts) out += typeof part === 'string' ? part : (part(scope) ?? '');
    return out;
  };
}

/** A template rendered into pieces, so a caller (file names) can treat document values apart from the mapping's text. */
export function compileTemplatePieces(text: string, env: CompileEnv, path: Path): (scope: Scope) => TemplatePiece[] {
  const parts = compileTemplateParts(text, env, path);
  return (scope) => parts.map((part) => (typeof part === 'string' ? { literal: part } : { value: part(scope) ?? '' }));
}

function compileCalc(source: string, env: CompileEnv, path: Path): (scope: Scope) => string {
  let tree: CalcNode;
  try {
    tree = parseCalc(source);
  } catch (error) {
    env.problem(path, `calc: ${(error as Error).message}`);
    return () => '';
  }
  // Each reference compiled once, however often the expression names it.
  const readers = new Map<string, (scope: Scope) => string | undefined>();
  const readerOf = (name: string) => {
    let read = readers.get(name);
    if (!read) {
      read = compileReference(name, env, path, 'normalized');
      readers.set(name, read);
    }
    return read;
  };
  const where = (scope: Scope) => (scope.row ? ` (${scope.row.label})` : '');
  // The tree becomes closures once: constants parsed, references resolved, nothing looked up per row.
  const compile = <N>(arithmetic: Arithmetic<N>) => {
    const compileNode = (node: CalcNode): ((scope: Scope) => N) => {
      switch (node.kind) {
        case 'number': {
          const constant = arithmetic.parse(node.text) as N;
          return () => constant;
        }
        case 'neg': {
          const operand = compileNode(node.operand);
          return (scope) => arithmetic.negate(operand(scope));
        }
        case 'binary': {
          const left = compileNode(node.left);
          const right = compileNode(node.right);
          if (node.op === '+') return (scope) => arithmetic.plus(left(scope), right(scope));
          if (node.op === '-') return (scope) => arithmetic.minus(left(scope), right(scope));
          if (node.op === '*') return (scope) => arithmetic.times(left(scope), right(scope));
          return (scope) => {
            const quotient = arithmetic.divide(left(scope), right(scope));
            if (quotient === undefined)
              throw mappingError('MAPPING_CALC', `${scope.at}: "${source}" divides by zero.`, scope.datapoint?.id);
            return quotient;
          };
        }
        case 'ref': {
          const read = readerOf(node.name);
          return (scope) => {
            scope.datapoint = undefined;
            const text = read(scope);
            if (text === undefined || text.trim() === '') {
              throw mappingError(
                'MAPPING_REQUIRED_FIELD',
                `${scope.at}: "${source}" needs ${node.name}${where(scope)}, which is ${text === undefined ? 'missing from the annotation' : 'empty'}.`,
                datapointIdOf(scope),
              );
            }
            const n = arithmetic.parse(text);
            if (n === undefined)
              throw mappingError(
                'MAPPING_INVALID_NUMBER',
                `${scope.at}: "${source}" needs ${node.name}${where(scope)} to be a number, but it is "${text}".`,
                datapointIdOf(scope),
              );
            return n;
          };
        }
      }
    };
    const evaluate = compileNode(tree);
    return (scope: Scope) => arithmetic.plain(evaluate(scope));
  };
  const decimal = compile(DECIMAL_ARITHMETIC);
  if (usesDivision(tree)) return decimal;
  return exactFirst(compile(EXACT_ARITHMETIC), decimal);
}
