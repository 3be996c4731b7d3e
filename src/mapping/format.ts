import { Decimal as DecimalJs } from 'decimal.js';
import { format as formatDate } from 'date-fns';
import type { NumberFormat, Rounding } from './schema.ts';

/** Enough precision for any amount an invoice carries; arithmetic never goes through binary floats. */
export const Decimal = DecimalJs.clone({ precision: 60, toExpNeg: -40, toExpPos: 60 });
export type Decimal = DecimalJs;

const ROUNDING_MODES: Record<Rounding, DecimalJs.Rounding> = {
  'half-up': DecimalJs.ROUND_HALF_UP,
  'half-even': DecimalJs.ROUND_HALF_EVEN,
  'half-down': DecimalJs.ROUND_HALF_DOWN,
  up: DecimalJs.ROUND_UP,
  down: DecimalJs.ROUND_DOWN,
  ceiling: DecimalJs.ROUND_CEIL,
  floor: DecimalJs.ROUND_FLOOR,
};

const PLAIN_NUMBER = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$/;

/** Parses a normalized decimal string ("139.00", "-2.5"); undefined when it is not one. */
export function parseDecimal(text: string): Decimal | undefined {
  const trimmed = text.trim();
  return PLAIN_NUMBER.test(trimmed) ? new Decimal(trimmed) : undefined;
}

/** A decimal as a plain string, never in exponent notation. */
export function plain(value: Decimal): string {
  return value.toFixed();
}

export function formatNumber(value: Decimal, spec: NumberFormat): string {
  let n = value;
  if (spec.scale) n = n.times(new Decimal(10).pow(spec.scale));
  if (spec.negate) n = n.negated();
  if (spec.decimals !== undefined) n = n.toDecimalPlaces(spec.decimals, ROUNDING_MODES[spec.rounding ?? 'half-up']);
  const negative = n.isNegative() && !n.isZero();
  const digits = spec.decimals !== undefined ? n.abs().toFixed(spec.decimals) : n.abs().toFixed();
  const [intPart = '0', fracPart = ''] = digits.split('.');
  const grouped = spec.group_separator ? intPart.replace(/\B(?=(\d{3})+(?!\d))/g, spec.group_separator) : intPart;
  let body: string;
  if (spec.implied_decimals) body = `${intPart}${fracPart}`;
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
  let ms = Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s), Number((frac + '000').slice(0, 3)));
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
  const local = new Date(date.getUTCFullYear(), date.getUTCMonth(), date.getUTCDate(), date.getUTCHours(), date.getUTCMinutes(), date.getUTCSeconds(), date.getUTCMilliseconds());
  if (date.getUTCFullYear() < 100) local.setFullYear(date.getUTCFullYear());
  return formatDate(local, pattern);
}

/** Why a date pattern is unusable, or undefined when it works. */
export function datePatternProblem(pattern: string): string | undefined {
  try {
    formatUtc(new Date(Date.UTC(2024, 0, 31, 10, 15, 30)), pattern);
    return undefined;
  } catch (error) {
    return (error as Error).message;
  }
}
