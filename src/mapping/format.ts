import { Decimal as DecimalJs } from 'decimal.js';
import { format as formatDate } from 'date-fns';
import type { NumberFormat, Rounding } from './schema.ts';

/** Enough precision for any amount an invoice carries; arithmetic never goes through binary floats. */
export const Decimal = DecimalJs.clone({ precision: 60, toExpNeg: -40, toExpPos: 60 });
export type Decimal = DecimalJs;

const PLAIN_NUMBER = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$/;

/** Parses a normalized decimal string ("139.00", "-2.5"); undefined when it is not one. */
export function parseDecimal(text: string): Decimal | undefined {
  const trimmed = text.trim();
  return PLAIN_NUMBER.test(trimmed) ? new Decimal(trimmed) : undefined;
}

/** coefficient × 10^-scale: a decimal held exactly in a BigInt. */
export interface ExactDecimal {
  coefficient: bigint;
  scale: number;
}

/** Parses what parseDecimal parses, exactly. */
export function parseExact(text: string): ExactDecimal | undefined {
  const d = toDigits(text);
  if (!d) return undefined;
  const digits = `${d.int}${d.frac}` || '0';
  return { coefficient: BigInt(d.negative ? `-${digits}` : digits), scale: d.frac.length };
}

/** As `plain` writes the same number: no exponent, no trailing zeros after the point, never "-0". */
export function plainExact(value: ExactDecimal): string {
  const negative = value.coefficient < 0n;
  let digits = (negative ? -value.coefficient : value.coefficient).toString();
  if (value.scale > 0) {
    digits = digits.padStart(value.scale + 1, '0');
    const fraction = digits.slice(digits.length - value.scale).replace(TRAILING_ZEROS, '');
    digits = digits.slice(0, digits.length - value.scale) + (fraction === '' ? '' : `.${fraction}`);
  }
  return negative && value.coefficient !== 0n ? `-${digits}` : digits;
}

/** A decimal as a plain string, never in exponent notation. */
export function plain(value: Decimal): string {
  return value.toFixed();
}

/**
 * A decimal as sign + digit strings. Formatting works on these strings directly: exact like decimal.js,
 * without allocating a big-number object per value (the hot path of every render).
 */
interface Digits {
  negative: boolean;
  int: string;
  frac: string;
}

const DIGITS = /^([+-]?)(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$/;
/** Hoisted: a regular expression literal in a function is a new object on every call. */
const NON_ZERO = /[1-9]/;
const TRAILING_ZEROS = /0+$/;
const LEADING_ZEROS = /^0+(?=\d)/;
const THOUSANDS = /\B(?=(\d{3})+(?!\d))/g;

function toDigits(text: string): Digits | undefined {
  const m = DIGITS.exec(text.trim());
  if (!m || (m[2] === '' && (m[3] ?? '') === '')) return undefined;
  return shift({ negative: m[1] === '-', int: m[2] ?? '', frac: m[3] ?? '' }, Number(m[4] ?? 0));
}

/** Multiplies by 10^places by moving the decimal point. */
function shift(d: Digits, places: number): Digits {
  if (places === 0) return d;
  const all = d.int + d.frac;
  let point = d.int.length + places;
  let padded = all;
  if (point < 0) {
    padded = '0'.repeat(-point) + all;
    point = 0;
  } else if (point > all.length) padded = all + '0'.repeat(point - all.length);
  return { negative: d.negative, int: padded.slice(0, point), frac: padded.slice(point) };
}

function incrementDigits(digits: string): string {
  const chars = digits.split('');
  for (let i = chars.length - 1; i >= 0; i--) {
    if (chars[i] === '9') chars[i] = '0';
    else {
      chars[i] = String.fromCharCode((chars[i] as string).charCodeAt(0) + 1);
      return chars.join('');
    }
  }
  return `1${chars.join('')}`;
}

function roundDigits(d: Digits, decimals: number, mode: Rounding): Digits {
  if (d.frac.length <= decimals) return { ...d, frac: d.frac.padEnd(decimals, '0') };
  const kept = d.frac.slice(0, decimals);
  const first = d.frac.charCodeAt(decimals) - 48;
  const restNonZero = NON_ZERO.test(d.frac.slice(decimals));
  const tailNonZero = NON_ZERO.test(d.frac.slice(decimals + 1));
  const lastKept = (d.int + kept).charCodeAt((d.int + kept).length - 1) - 48;
  let up: boolean;
  switch (mode) {
    case 'down':
      up = false;
      break;
    case 'up':
      up = restNonZero;
      break;
    case 'ceiling':
      up = restNonZero && !d.negative;
      break;
    case 'floor':
      up = restNonZero && d.negative;
      break;
    case 'half-up':
      up = first >= 5;
      break;
    case 'half-down':
      up = first > 5 || (first === 5 && tailNonZero);
      break;
    case 'half-even':
      up = first > 5 || (first === 5 && (tailNonZero || lastKept % 2 === 1));
      break;
  }
  if (!up) return { negative: d.negative, int: d.int, frac: kept };
  const bumped = incrementDigits((d.int || '0') + kept);
  const intLength = bumped.length - decimals;
  return { negative: d.negative, int: bumped.slice(0, intLength), frac: bumped.slice(intLength) };
}

/** Formats a normalized decimal string; undefined when it is not a number. */
export function formatNumber(text: string, spec: NumberFormat): string | undefined {
  // toDigits accepts exactly what PLAIN_NUMBER does: one pass both checks and splits.
  const parsed = toDigits(text);
  if (!parsed) return undefined;
  let d = parsed;
  if (spec.scale) d = shift(d, spec.scale);
  if (spec.negate) d = { ...d, negative: !d.negative };
  if (spec.decimals !== undefined) d = roundDigits(d, spec.decimals, spec.rounding ?? 'half-up');
  else d = { ...d, frac: d.frac.replace(TRAILING_ZEROS, '') };
  const intPart = d.int.replace(LEADING_ZEROS, '') || '0';
  const fracPart = d.frac;
  const negative = d.negative && (NON_ZERO.test(intPart) || NON_ZERO.test(fracPart));
  const grouped = spec.group_separator ? intPart.replace(THOUSANDS, spec.group_separator) : intPart;
  let body: string;
  if (spec.implied_decimals) body = `${intPart}${fracPart}`.replace(LEADING_ZEROS, '');
  else body = fracPart === '' ? grouped : `${grouped}${spec.decimal_separator ?? '.'}${fracPart}`;
  switch (spec.sign ?? 'leading') {
    case 'leading':
      return negative ? `-${body}` : body;
    case 'trailing':
      return negative ? `${body}-` : body;
    case 'parentheses':
      return negative ? `(${body})` : body;
    case 'always':
      return `${negative ? '-' : '+'}${body}`;
    case 'none':
      return body;
  }
}

const ISO = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?(Z|[+-]\d{2}:?\d{2})?)?$/;

/** Parses an ISO date or timestamp into UTC; undefined when it is not one. */
export function parseIsoDate(text: string): Date | undefined {
  const m = ISO.exec(text.trim());
  if (!m) return undefined;
  const [, y, mo, d, h = '0', mi = '0', s = '0', frac = '', zone] = m;
  let ms = Date.UTC(
    Number(y),
    Number(mo) - 1,
    Number(d),
    Number(h),
    Number(mi),
    Number(s),
    Number(`${frac}000`.slice(0, 3)),
  );
  if (zone && zone !== 'Z') {
    const sign = zone.startsWith('-') ? -1 : 1;
    const digits = zone.slice(1).replace(':', '');
    ms -= sign * (Number(digits.slice(0, 2)) * 60 + Number(digits.slice(2))) * 60_000;
  }
  const date = new Date(ms);
  // Rejects 2024-02-31 and friends, which Date.UTC would roll over.
  if (Number.isNaN(ms) || (zone === undefined && date.getUTCDate() !== Number(d))) return undefined;
  return date;
}

/** date-fns formats in local time; hand it a clock whose local fields are the UTC ones. */
export function formatUtc(date: Date, pattern: string): string {
  const local = new Date(
    date.getUTCFullYear(),
    date.getUTCMonth(),
    date.getUTCDate(),
    date.getUTCHours(),
    date.getUTCMinutes(),
    date.getUTCSeconds(),
    date.getUTCMilliseconds(),
  );
  if (date.getUTCFullYear() < 100) local.setFullYear(date.getUTCFullYear());
  return formatDate(local, pattern);
}

/** Why date-fns cannot format with a pattern, in our words; undefined when it can. */
export function datePatternProblem(pattern: string): string | undefined {
  try {
    formatUtc(new Date(Date.UTC(2024, 0, 31, 10, 15, 30)), pattern);
    return undefined;
  } catch (error) {
    const text = (error as Error).message;
    // date-fns names the offending token in backticks; its messages also carry a sample date.
    const token = /`([^`]+)`/.exec(text)?.[1];
    return token ? `"${token}" cannot be used in a date pattern` : 'date-fns cannot format with this pattern';
  }
}
