import { mappingError } from './errors.ts';
import { compileCondition } from './conditions.ts';
import { SOURCE_KEYS, type ValueObject, type ValueSpec } from './schema.ts';
import type { CompileEnv, CompiledValue, Path, Scope } from './scope.ts';
import { compileSource, compileTemplate } from './sources.ts';
import { TRANSFORMS, type Step } from './transforms.ts';

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
    perDocument: true,
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
  const sources = SOURCE_KEYS.filter(
    (key) => spec[key] !== undefined && !(key === 'line_number' && spec.line_number === false),
  );
  if (sources.length !== 1) {
    env.problem(
      path,
      sources.length === 0 ? 'a value needs a source' : `a value has one source, found ${sources.join(', ')}`,
      `one of: ${SOURCE_KEYS.join(', ')}`,
    );
  }
  const key = sources[0];
  let source: (scope: Scope) => string | undefined;
  let numericSource =
    key === 'calc' ||
    key === 'count' ||
    key === 'sum' ||
    key === 'line_number' ||
    (key === 'meta' && spec.meta === 'record_count');
  if (key === 'cases') {
    const cases = (spec.cases ?? []).map((entry, i) => ({
      when: entry.when ? compileCondition(entry.when, env, [...path, 'cases', i, 'when']) : undefined,
      value: compileValue(entry.value, env, [...path, 'cases', i, 'value']),
    }));
    cases.slice(0, -1).forEach((entry, i) => {
      if (!entry.when)
        env.problem(
          [...path, 'cases', i],
          'only the last case may leave out `when`; the cases after it can never apply',
        );
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
  if (spec.date !== undefined && spec.number !== undefined)
    env.problem(path, 'a value is either a date or a number, not both');
  const preDefault: Step[] = [];
  const steps: Step[] = [];
  let yieldsNumber = false;
  let yieldsText = false;
  for (const entry of TRANSFORMS) {
    const step = entry.compile(spec, { env, path, label });
    if (step) (entry.phase === 'before_default' ? preDefault : steps).push(step);
    const used = Object.keys(entry.fields).some((field) => spec[field as keyof ValueObject] !== undefined);
    if (used && entry.yields === 'number') yieldsNumber = true;
    if (used && entry.yields === 'text') yieldsText = true;
  }

  // Transliterate before trimming: a character the encoding drops must not leave a space at the edge.
  if ((spec.trim || spec.collapse_whitespace) && env.fitEncoding) preDefault.unshift(env.fitEncoding);

  const fallback = spec.default === undefined ? undefined : String(spec.default);
  const required = spec.required === true;
  if (required && fallback !== undefined)
    env.problem(
      [...path, 'required'],
      'a required value with a default can never be missing',
      'remove `required` or `default`',
    );
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
  return { evaluate, numeric: (numericSource || yieldsNumber) && !yieldsText };
}

function requiredError(
  scope: Scope,
  label: string,
  value: string | undefined,
  schemaId: string | undefined,
  fromRow: boolean,
): Error {
  const where = fromRow && scope.row ? ` in ${scope.row.label}` : '';
  if (value === undefined && schemaId !== undefined) {
    return mappingError(
      'MAPPING_REQUIRED_FIELD',
      `${scope.at} needs the field "${schemaId}"${where}, but the annotation has no datapoint with schema_id "${schemaId}". Add it to the queue's schema or change the mapping.`,
    );
  }
  const datapoint = scope.datapoint;
  return mappingError(
    'MAPPING_REQUIRED_FIELD',
    `${label}${where} is required for ${scope.at}, but it is ${value === undefined ? 'missing' : 'empty'}. Fill it in and export again.`,
    datapoint?.id,
  );
}
