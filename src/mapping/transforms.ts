import { z } from 'zod';
import { mappingError } from './errors.ts';
import { datePatternProblem, formatNumber, formatUtc, parseIsoDate } from './format.ts';
import { datePatternMistake, numberFormatMistakes } from './patterns.ts';
import type { CompileEnv, Path, Scope } from './scope.ts';

/**
 * The steps a value goes through after its source, one entry each: the keys it reads (with their
 * schema, so validation, the JSON Schema and docs/mappings.md come from here), and the function it
 * compiles to. The order of the list is the order the steps run in, and the order the docs show.
 */

export const ROUNDING = ['half-up', 'half-even', 'half-down', 'up', 'down', 'ceiling', 'floor'] as const;
export type Rounding = (typeof ROUNDING)[number];
export const SIGN_STYLES = ['leading', 'trailing', 'parentheses', 'always', 'none'] as const;
export type SignStyle = (typeof SIGN_STYLES)[number];

export interface NumberFormat {
  decimals?: number | undefined;
  rounding?: Rounding | undefined;
  decimal_separator?: string | undefined;
  group_separator?: string | undefined;
  sign?: SignStyle | undefined;
  implied_decimals?: boolean | undefined;
  scale?: number | undefined;
  negate?: boolean | undefined;
}

export interface ValueMap {
  entries: Record<string, string>;
  fallback?: string | undefined;
  keep_unmapped?: boolean | undefined;
  ignore_case?: boolean | undefined;
}

export const numberFormatSchema = z
  .strictObject({
    decimals: z
      .number()
      .int()
      .min(0)
      .max(20)
      .optional()
      .describe('Fixed number of decimals; rounds with `rounding`. Omit to keep the decimals as given.'),
    rounding: z.enum(ROUNDING).optional().describe('Rounding mode, decimal-exact. Default half-up.'),
    decimal_separator: z.string().max(3).optional().describe('Decimal separator. Default ".".'),
    group_separator: z.string().max(3).optional().describe('Thousands separator. Default none.'),
    sign: z
      .enum(SIGN_STYLES)
      .optional()
      .describe(
        'Negative numbers: leading "-5.00" (default), trailing "5.00-", parentheses "(5.00)", always "+5.00"/"-5.00", none (absolute value).',
      ),
    implied_decimals: z
      .boolean()
      .optional()
      .describe('Write without a decimal separator: 12.34 with 2 decimals becomes "1234".'),
    scale: z
      .number()
      .int()
      .min(-20)
      .max(20)
      .optional()
      .describe('Multiply by 10^scale before formatting (2 turns 0.19 into 19).'),
    negate: z.boolean().optional().describe('Flip the sign (credit notes).'),
  })
  .describe('Decimal-exact number formatting of the normalized value.')
  .meta({ id: 'NumberFormat' });

export const valueMapSchema = z
  .strictObject({
    entries: z.record(z.string(), z.string()).describe('Input value → output value.'),
    fallback: z.string().optional().describe('Output for values not in `entries`.'),
    keep_unmapped: z.boolean().optional().describe('Pass values not in `entries` through unchanged.'),
    ignore_case: z.boolean().optional().describe('Match entries regardless of case.'),
  })
  .describe('A value map. Without `fallback` or `keep_unmapped`, an unmapped value is an error naming the field.')
  .meta({ id: 'ValueMap' });

export interface TransformExample {
  /** The value object, as YAML, reading the datapoint `x`. */
  value: string;
  input: string;
  output: string;
}

/** One compiled step: text in, text out; may throw a mapping error naming the field. */
export type Step = (value: string, scope: Scope) => string;

export interface StepContext {
  env: CompileEnv;
  /** Path of the value object, for load-time problems. */
  path: Path;
  /** How error messages name the value. */
  label: string;
}

export interface Transform<Shape extends z.ZodRawShape> {
  /** As the docs list it. */
  name: string;
  /** The value-object keys this step reads. */
  fields: Shape;
  /** before_default steps run on the source value only; an empty result then takes `default`. */
  phase: 'before_default' | 'after_default';
  /** number: the result is a formatted number; text: never treat it as one, whatever the source. */
  yields?: 'number' | 'text';
  /** For the docs: a value using the step, a datapoint's text and what the step makes of it (a test renders it). */
  example: TransformExample;
  /** The step for these arguments, or undefined when the value does not use it. */
  compile(args: z.output<z.ZodObject<Shape>>, context: StepContext): Step | undefined;
}

function transform<Shape extends z.ZodRawShape>(entry: Transform<Shape>): Transform<Shape> {
  return entry;
}

const WHITESPACE_EDGES = /^[\s\u00a0\u2007\u202f\ufeff]+|[\s\u00a0\u2007\u202f\ufeff]+$/g;
const WHITESPACE_RUN = /[\s\u00a0]+/g;
/** A run to collapse: whitespace other than a single space (most text has none, and is left as it is). */
const NEEDS_COLLAPSE = /[^\S ]|\s\s/;
/** Printable ASCII other than a space: no whitespace at that edge (checked before the regex, which most values never need). */
const isPlainEdge = (code: number): boolean => code > 0x20 && code < 0x7f;
function trimEdges(v: string): string {
  if (v === '' || (isPlainEdge(v.charCodeAt(0)) && isPlainEdge(v.charCodeAt(v.length - 1)))) return v;
  return v.replace(WHITESPACE_EDGES, '');
}
/** Without surrogates, every UTF-16 unit is one character. */
const SURROGATE = /[\uD800-\uDFFF]/;

export const TRANSFORMS = [
  transform({
    name: 'trim',
    example: { value: '{ field: x, trim: true }', input: '  ACME GmbH ', output: 'ACME GmbH' },
    phase: 'before_default',
    fields: { trim: z.boolean().optional().describe('Remove surrounding whitespace (incl. no-break spaces).') },
    compile: ({ trim }) => (trim ? trimEdges : undefined),
  }),
  transform({
    name: 'collapse_whitespace',
    example: { value: '{ field: x, collapse_whitespace: true }', input: 'Main St.\n   5', output: 'Main St. 5' },
    phase: 'before_default',
    fields: {
      collapse_whitespace: z
        .boolean()
        .optional()
        .describe('Turn runs of whitespace (incl. line breaks and tabs) into one space.'),
    },
    compile: ({ collapse_whitespace: collapse }) =>
      collapse ? (v) => trimEdges(NEEDS_COLLAPSE.test(v) ? v.replace(WHITESPACE_RUN, ' ') : v) : undefined,
  }),
  transform({
    name: 'strip_line_breaks',
    example: { value: '{ field: x, strip_line_breaks: true }', input: 'Main St.\n5', output: 'Main St. 5' },
    phase: 'before_default',
    fields: { strip_line_breaks: z.boolean().optional().describe('Replace line breaks with a space.') },
    compile: ({ strip_line_breaks: strip }) => (strip ? (v) => v.replace(/\r\n|\r|\n|\u2028|\u2029/g, ' ') : undefined),
  }),
  transform({
    name: 'replace',
    example: {
      value: '{ field: x, replace: [{ pattern: "[^0-9]", with: "" }] }',
      input: 'DE 123-456',
      output: '123456',
    },
    phase: 'after_default',
    fields: {
      replace: z
        .array(
          z.strictObject({
            pattern: z.string().describe('Regular expression (JavaScript syntax), applied globally.'),
            with: z.string().describe('Replacement; $1 refers to groups.'),
          }),
        )
        .optional()
        .describe('Regular-expression replacements, in order.'),
    },
    compile: ({ replace }, { env, path }) => {
      if (!replace) return undefined;
      const rules: Array<{ regex: RegExp; with: string }> = [];
      for (const [i, rule] of replace.entries()) {
        try {
          rules.push({ regex: new RegExp(rule.pattern, 'gu'), with: rule.with });
        } catch (error) {
          env.problem([...path, 'replace', i, 'pattern'], `invalid regular expression: ${(error as Error).message}`);
        }
      }
      return (v) => rules.reduce((text, rule) => text.replace(rule.regex, rule.with), v);
    },
  }),
  transform({
    name: 'map',
    example: { value: '{ field: x, map: { entries: { eur: EUR, usd: USD } } }', input: 'eur', output: 'EUR' },
    phase: 'after_default',
    yields: 'text',
    fields: {
      map: z
        .union([z.string().describe('Name of an entry in `value_maps`.'), valueMapSchema])
        .optional()
        .describe('Translate the value through a value map.'),
    },
    compile: ({ map: spec }, { env, path, label }) => {
      if (spec === undefined) return undefined;
      const map = typeof spec === 'string' ? env.valueMaps[spec] : spec;
      if (!map) {
        const defined = Object.keys(env.valueMaps);
        env.problem(
          [...path, 'map'],
          `unknown value map "${spec as string}"`,
          defined.length ? `defined maps: ${defined.join(', ')}` : 'define it under value_maps',
        );
        return undefined;
      }
      const entries = map.ignore_case
        ? new Map(Object.entries(map.entries).map(([k, v]) => [k.toLowerCase(), v]))
        : new Map(Object.entries(map.entries));
      const { fallback, keep_unmapped: keep, ignore_case: ignoreCase } = map;
      const mapName = typeof spec === 'string' ? `value map "${spec}"` : 'the value map';
      return (v, scope) => {
        const hit = entries.get(ignoreCase ? v.toLowerCase() : v);
        if (hit !== undefined) return hit;
        if (fallback !== undefined) return fallback;
        if (keep) return v;
        throw mappingError(
          'MAPPING_UNMAPPED_VALUE',
          `${scope.at}: ${label} is "${v}", which ${mapName} does not list (known: ${[...entries.keys()].slice(0, 10).join(', ')}). Correct the value in Rossum or add it to the mapping.`,
          scope.datapoint?.id,
        );
      };
    },
  }),
  transform({
    name: 'date',
    example: { value: '{ field: x, date: dd.MM.yyyy }', input: '2024-01-31', output: '31.01.2024' },
    phase: 'after_default',
    fields: {
      date: z
        .string()
        .optional()
        .describe('Format an ISO date/timestamp with a date-fns pattern, e.g. yyyyMMdd, dd.MM.yyyy (UTC).'),
    },
    compile: ({ date: pattern }, { env, path, label }) => {
      if (pattern === undefined) return undefined;
      const mistake = datePatternMistake(pattern);
      const problem = mistake ? undefined : datePatternProblem(pattern);
      if (mistake)
        env.problem([...path, 'date'], `invalid date pattern "${pattern}": ${mistake.message}`, mistake.hint);
      else if (problem)
        env.problem(
          [...path, 'date'],
          `invalid date pattern "${pattern}": ${problem}`,
          "e.g. yyyyMMdd, dd.MM.yyyy, yyyy-MM-dd'T'HH:mm:ss",
        );
      return (v, scope) => {
        const date = parseIsoDate(v);
        if (!date)
          throw mappingError(
            'MAPPING_INVALID_DATE',
            `${scope.at}: ${label} is "${v}", which is not a date. Correct it in Rossum so it has a normalized date.`,
            scope.datapoint?.id,
          );
        return formatUtc(date, pattern);
      };
    },
  }),
  transform({
    name: 'number',
    example: {
      value: '{ field: x, number: { decimals: 2, decimal_separator: "," } }',
      input: '1234.5',
      output: '1234,50',
    },
    phase: 'after_default',
    yields: 'number',
    fields: { number: numberFormatSchema.optional() },
    compile: ({ number: format }, { env, path, label }) => {
      if (format === undefined) return undefined;
      if (format.implied_decimals && format.decimals === undefined)
        env.problem([...path, 'number', 'implied_decimals'], 'implied_decimals needs a fixed number of `decimals`');
      for (const { key, problem } of numberFormatMistakes(format))
        env.problem([...path, 'number', key], problem.message, problem.hint);
      return (v, scope) => {
        const formatted = formatNumber(v, format);
        if (formatted === undefined)
          throw mappingError(
            'MAPPING_INVALID_NUMBER',
            `${scope.at}: ${label} is "${v}", which is not a number. Correct it in Rossum so it has a normalized amount.`,
            scope.datapoint?.id,
          );
        return formatted;
      };
    },
  }),
  transform({
    name: 'case',
    example: { value: '{ field: x, case: upper }', input: 'de', output: 'DE' },
    phase: 'after_default',
    yields: 'text',
    fields: { case: z.enum(['upper', 'lower']).optional().describe('Change letter case.') },
    compile: ({ case: letterCase }) =>
      letterCase === 'upper' ? (v) => v.toUpperCase() : letterCase === 'lower' ? (v) => v.toLowerCase() : undefined,
  }),
  transform({
    name: 'prefix/suffix',
    example: { value: '{ field: x, prefix: "PO-" }', input: '88123', output: 'PO-88123' },
    phase: 'after_default',
    fields: {
      prefix: z.string().optional().describe('Text put before a non-empty value.'),
      suffix: z.string().optional().describe('Text put after a non-empty value.'),
    },
    compile: ({ prefix = '', suffix = '' }) =>
      prefix === '' && suffix === '' ? undefined : (v) => (v === '' ? v : `${prefix}${v}${suffix}`),
  }),
  transform({
    name: 'truncate',
    example: { value: '{ field: x, truncate: 5 }', input: 'Steel bolts', output: 'Steel' },
    phase: 'after_default',
    fields: { truncate: z.number().int().min(0).optional().describe('Keep at most this many characters.') },
    compile: ({ truncate: max }) =>
      max === undefined
        ? undefined
        : (v) => {
            // Never more characters than UTF-16 units: most values need no split into code points.
            if (v.length <= max) return v;
            if (!SURROGATE.test(v)) return v.slice(0, max);
            const chars = Array.from(v);
            return chars.length > max ? chars.slice(0, max).join('') : v;
          },
  }),
  transform({
    name: 'pad',
    example: { value: '{ field: x, pad: { width: 6, char: "0", align: right } }', input: '42', output: '000042' },
    phase: 'after_default',
    fields: {
      pad: z
        .strictObject({
          width: z.number().int().min(1).describe('Minimum width in characters.'),
          char: z.string().length(1).optional().describe('Padding character. Default space.'),
          align: z
            .enum(['left', 'right'])
            .optional()
            .describe('left pads on the right (default), right pads on the left.'),
        })
        .optional()
        .describe('Pad to a minimum width.'),
    },
    compile: ({ pad }) => {
      if (!pad) return undefined;
      const { width, char = ' ', align = 'left' } = pad;
      return (v) => (align === 'right' ? v.padStart(width, char) : v.padEnd(width, char));
    },
  }),
] as const;

type ShapeOf<T> = T extends Transform<infer Shape> ? Shape : never;
type UnionToIntersection<U> = (U extends unknown ? (k: U) => void : never) extends (k: infer I) => void ? I : never;
type TransformShape = UnionToIntersection<ShapeOf<(typeof TRANSFORMS)[number]>>;

/** The keys of every transform, in step order, for the value-object schema. */
export const transformShape = Object.assign({}, ...TRANSFORMS.map((entry) => entry.fields)) as TransformShape;

/** The value-object fields the transforms read. */
export type TransformFields = z.output<z.ZodObject<TransformShape>>;

/** "trim, collapse_whitespace, ..., default, required check, replace, ...": the order the docs state. */
export function stepOrder(): string {
  const names = (phase: Transform<z.ZodRawShape>['phase']) =>
    TRANSFORMS.filter((entry) => entry.phase === phase).map((entry) => entry.name);
  return [...names('before_default'), 'default', 'required check', ...names('after_default')].join(', ');
}
