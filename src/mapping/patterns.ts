import type { NumberFormat } from './transforms.ts';

/**
 * Load-time lint of date patterns and number options: the mistakes that produce plausible but wrong
 * output (31.00.2024: minutes where the month was meant) are caught when the mapping is checked,
 * with the letters to use instead, in our words rather than date-fns's.
 */

export interface PatternProblem {
  message: string;
  hint: string;
}

/** Every letter date-fns formats (unicode technical standard #35 subset it supports). */
const DATE_LETTERS = new Set('GyYRuQqMLwIdDEeciabBhHKkmsSXxOzTtPp');
const ORDINAL_BASE = new Set('yYQqMLwIdDecihHKkm');
const HOURS = new Set('hHkK');
const DAY_PERIODS = new Set('abB');

interface Token {
  letter: string;
  text: string;
  /** 1-based position in the pattern. */
  position: number;
}

/** Letter runs of a date-fns pattern; quoted literals ('T', 'o''clock') are skipped. */
function letterTokens(pattern: string): Token[] | PatternProblem {
  const tokens: Token[] = [];
  for (let i = 0; i < pattern.length; ) {
    const ch = pattern[i] as string;
    if (ch === "'") {
      if (pattern[i + 1] === "'") {
        i += 2;
        continue;
      }
      let end = i + 1;
      for (; end < pattern.length; end++) {
        if (pattern[end] === "'" && pattern[end + 1] === "'") end++;
        else if (pattern[end] === "'") break;
      }
      if (end >= pattern.length)
        return {
          message: `the quote at position ${i + 1} is never closed`,
          hint: "literal text goes between single quotes: 'T'; write '' for a quote character",
        };
      i = end + 1;
      continue;
    }
    if (!/[A-Za-z]/.test(ch)) {
      i++;
      continue;
    }
    let end = i;
    while (pattern[end] === ch) end++;
    if (pattern[end] === 'o' && ORDINAL_BASE.has(ch)) end++;
    tokens.push({ letter: ch, text: pattern.slice(i, end), position: i + 1 });
    i = end;
  }
  return tokens;
}

/** The first classic mistake in a date pattern, or undefined when it formats what it seems to say. */
export function datePatternMistake(pattern: string): PatternProblem | undefined {
  const tokens = letterTokens(pattern);
  if (!Array.isArray(tokens)) return tokens;
  const letters = new Set(tokens.map((token) => token.letter));
  const hasHours = [...HOURS].some((letter) => letters.has(letter));
  for (const { letter, text, position } of tokens) {
    if (!DATE_LETTERS.has(letter)) {
      return {
        message: `"${text}" (position ${position}) is not a date pattern letter`,
        hint: "put literal text in single quotes, e.g. yyyy-MM-dd'T'HH:mm:ss; the month is MM, the day dd, the year yyyy",
      };
    }
    if (letter === 'Y')
      return {
        message: `"${text}" is the week-numbering year, which is off by one around New Year (31.12.2024 is in week year 2025)`,
        hint: `use ${'y'.repeat(text.length)} for the calendar year`,
      };
    if (letter === 'D')
      return {
        message: `"${text}" is the day of the year (1-366), not of the month`,
        hint: `use ${text.length >= 2 ? 'dd' : 'd'} for the day of the month`,
      };
    if (letter === 'm' && !hasHours)
      return {
        message: `"${text}" is minutes, and the pattern has no hours`,
        hint: `use ${text.length >= 2 ? 'MM' : 'M'} for the month (mm is minutes, as in HH:mm)`,
      };
    if ((letter === 'h' || letter === 'K') && ![...DAY_PERIODS].some((period) => letters.has(period))) {
      return {
        message: `"${text}" is the 12-hour clock (${letter === 'h' ? '01-12' : '00-11'}) and the pattern has no AM/PM marker, so 14:00 and 02:00 look the same`,
        hint: 'use HH for the 24-hour clock (00-23), or add a for AM/PM',
      };
    }
    if ((letter === 'T' || letter === 't') && tokens.length > 1)
      return {
        message: `"${text}" is a Unix timestamp (${letter === 'T' ? 'milliseconds' : 'seconds'}), not a literal letter`,
        hint: `quote literal text: '${text}'`,
      };
    if (letter === 'u' || letter === 'R')
      return {
        message: `"${text}" is the ${letter === 'R' ? 'ISO week-numbering' : 'extended'} year`,
        hint: `use ${'y'.repeat(Math.max(text.length, 2))} for the calendar year`,
      };
  }
  return undefined;
}

/** Separators that would make a formatted number unreadable or ambiguous. */
export function numberFormatMistakes(
  format: NumberFormat,
): Array<{ key: keyof NumberFormat; problem: PatternProblem }> {
  const found: Array<{ key: keyof NumberFormat; problem: PatternProblem }> = [];
  const { decimal_separator: decimal, group_separator: group } = format;
  if (decimal !== undefined && group !== undefined && decimal === group) {
    found.push({
      key: 'group_separator',
      problem: {
        message: `the group separator is the decimal separator ("${decimal}"): 1${decimal}234 could be either`,
        hint: 'e.g. decimal_separator: ",", group_separator: "." (German) or "." and "," (English)',
      },
    });
  }
  for (const key of ['decimal_separator', 'group_separator'] as const) {
    const value = format[key];
    if (value !== undefined && /[\d+\-()]/.test(value))
      found.push({
        key,
        problem: {
          message: `the ${key.replace('_', ' ')} "${value}" contains a digit, sign or parenthesis`,
          hint: 'use "," "." " " or "\'"',
        },
      });
  }
  if (decimal === '')
    found.push({
      key: 'decimal_separator',
      problem: {
        message: 'an empty decimal separator runs the decimals into the whole number',
        hint: 'for amounts in cents use implied_decimals: true with decimals: 2',
      },
    });
  if (format.implied_decimals && decimal !== undefined)
    found.push({
      key: 'decimal_separator',
      problem: {
        message: 'with implied_decimals no decimal separator is written',
        hint: 'remove decimal_separator, or implied_decimals',
      },
    });
  if (format.implied_decimals && group !== undefined)
    found.push({
      key: 'group_separator',
      problem: {
        message: 'with implied_decimals the number is written as plain digits; a group separator would break it',
        hint: 'remove group_separator',
      },
    });
  return found;
}
