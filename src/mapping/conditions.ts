import type { Condition, ValueSpec } from './schema.ts';
import { parseDecimal } from './format.ts';
import type { CompileEnv, CompiledCondition, Path } from './scope.ts';
import { compileSource } from './sources.ts';
import { compileValue } from './values.ts';

/** The mapping's side of a comparison, parsed once when the condition is compiled. */
type Bound = ReturnType<typeof parseDecimal>;

function boundOf(b: string | number | boolean | undefined): Bound {
  return b === undefined ? undefined : parseDecimal(String(b));
}

function compareNumbers(a: string | undefined, right: Bound): number | undefined {
  if (a === undefined) return undefined;
  const left = parseDecimal(a);
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
  const subjects = (['field', 'row', 'var', 'meta', 'env', 'route', 'value'] as const).filter(
    (key) => condition[key] !== undefined,
  );
  const checks = (['present', 'equals', 'not_equals', 'in', 'matches', 'gt', 'gte', 'lt', 'lte'] as const).filter(
    (key) => condition[key] !== undefined,
  );
  if (subjects.length > 1)
    env.problem(
      path,
      `a condition tests one subject, found ${subjects.join(' and ')}`,
      'combine conditions with all: [...]',
    );
  if (subjects.length === 0 && checks.length > 0)
    env.problem(path, `"${checks[0]}" needs a subject`, 'add field:, row:, var:, meta:, env:, route: or value:');
  if (subjects.length === 1 && checks.length === 0)
    env.problem(path, `nothing to test on ${subjects[0]}`, 'add present: true, equals:, in:, matches:, gt: ...');
  if (subjects.length === 0 && tests.length === 0)
    env.problem(path, 'empty condition', 'e.g. {field: order_id, present: true}');
  const subjectKey = subjects[0];
  if (subjectKey) {
    const subject =
      subjectKey === 'value'
        ? compileValue(condition.value as ValueSpec, env, [...path, 'value']).evaluate
        : compileSource(subjectKey, condition[subjectKey], env, [...path, subjectKey], undefined);
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
    const equalsText = equals === undefined ? undefined : String(equals);
    const notEqualsText = notEquals === undefined ? undefined : String(notEquals);
    const [gtBound, gteBound, ltBound, lteBound] = [gt, gte, lt, lte].map(boundOf);
    tests.push((scope) => {
      const value = subject(scope);
      const has = value !== undefined && value.trim() !== '';
      if (present !== undefined && has !== present) return false;
      if (equalsText !== undefined && value !== equalsText) return false;
      if (notEqualsText !== undefined && value === notEqualsText) return false;
      if (set && (value === undefined || !set.includes(value))) return false;
      if (pattern && (value === undefined || !pattern.test(value))) return false;
      if (gt !== undefined && !((compareNumbers(value, gtBound) ?? 0) > 0)) return false;
      if (gte !== undefined && !((compareNumbers(value, gteBound) ?? -1) >= 0)) return false;
      if (lt !== undefined && !((compareNumbers(value, ltBound) ?? 0) < 0)) return false;
      if (lte !== undefined && !((compareNumbers(value, lteBound) ?? 1) <= 0)) return false;
      return true;
    });
  }
  const test: CompiledCondition =
    tests.length === 1 ? (tests[0] as CompiledCondition) : (scope) => tests.every((each) => each(scope));
  // What a condition reads is not where the value came from: not for error locations, not for --explain.
  return (scope) => {
    const { doc, datapoint } = scope;
    if (doc.touched === null) {
      const holds = test(scope);
      scope.datapoint = datapoint;
      return holds;
    }
    const touched = doc.touched;
    doc.touched = [];
    try {
      return test(scope);
    } finally {
      doc.checked?.push(...doc.touched);
      doc.touched = touched;
      scope.datapoint = datapoint;
    }
  };
}
