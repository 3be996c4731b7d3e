import { type Decimal, parseDecimal, parseExact, plain, plainExact, type ExactDecimal } from './format.ts';

/**
 * The one expression escape hatch: decimal arithmetic (+ - * / and parentheses) over references.
 * Parsed once when the mapping loads, then compiled to closures over one of the arithmetics below.
 */
export type CalcNode =
  | { kind: 'number'; text: string }
  | { kind: 'ref'; name: string }
  | { kind: 'neg'; operand: CalcNode }
  | { kind: 'binary'; op: '+' | '-' | '*' | '/'; left: CalcNode; right: CalcNode };

const TOKEN = /\s*(?:(\d+(?:\.\d+)?|\.\d+)|([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)?)|([-+*/()]))/y;

export function parseCalc(source: string): CalcNode {
  const tokens: Array<{ type: 'num' | 'ref' | 'op'; text: string; at: number }> = [];
  TOKEN.lastIndex = 0;
  let position = 0;
  while (position < source.length) {
    if (/^\s*$/.test(source.slice(position))) break;
    TOKEN.lastIndex = position;
    const m = TOKEN.exec(source);
    if (!m)
      throw new Error(
        `cannot read "${source.slice(position).trim()}" at character ${position + 1}; use numbers, field names, + - * / and parentheses`,
      );
    const at = position;
    position = TOKEN.lastIndex;
    if (m[1] !== undefined) tokens.push({ type: 'num', text: m[1], at });
    else if (m[2] !== undefined) tokens.push({ type: 'ref', text: m[2], at });
    else tokens.push({ type: 'op', text: m[3] as string, at });
  }
  let index = 0;
  const peek = () => tokens[index];
  const expression = (): CalcNode => {
    let left = term();
    for (let t = peek(); t && t.type === 'op' && (t.text === '+' || t.text === '-'); t = peek()) {
      index++;
      left = { kind: 'binary', op: t.text, left, right: term() };
    }
    return left;
  };
  const term = (): CalcNode => {
    let left = factor();
    for (let t = peek(); t && t.type === 'op' && (t.text === '*' || t.text === '/'); t = peek()) {
      index++;
      left = { kind: 'binary', op: t.text, left, right: factor() };
    }
    return left;
  };
  const factor = (): CalcNode => {
    const t = tokens[index++];
    if (!t) throw new Error('the expression ends too early');
    if (t.type === 'num') return { kind: 'number', text: t.text };
    if (t.type === 'ref') return { kind: 'ref', name: t.text };
    if (t.text === '-') return { kind: 'neg', operand: factor() };
    if (t.text === '+') return factor();
    if (t.text === '(') {
      const inner = expression();
      const close = tokens[index++];
      if (close?.text !== ')') throw new Error(`missing ")" for the "(" at character ${t.at + 1}`);
      return inner;
    }
    throw new Error(`unexpected "${t.text}" at character ${t.at + 1}`);
  };
  const tree = expression();
  const rest = peek();
  if (rest) throw new Error(`unexpected "${rest.text}" at character ${rest.at + 1}`);
  return tree;
}

export function usesDivision(node: CalcNode): boolean {
  if (node.kind === 'binary') return node.op === '/' || usesDivision(node.left) || usesDivision(node.right);
  return node.kind === 'neg' && usesDivision(node.operand);
}

/** What a calc computes with; `divide` gives undefined for a division by zero. */
export interface Arithmetic<N> {
  parse(text: string): N | undefined;
  plus(a: N, b: N): N;
  minus(a: N, b: N): N;
  times(a: N, b: N): N;
  negate(a: N): N;
  divide(a: N, b: N): N | undefined;
  plain(value: N): string;
}

export const DECIMAL_ARITHMETIC: Arithmetic<Decimal> = {
  parse: parseDecimal,
  plus: (a, b) => a.plus(b),
  minus: (a, b) => a.minus(b),
  times: (a, b) => a.times(b),
  negate: (a) => a.negated(),
  divide: (a, b) => (b.isZero() ? undefined : a.dividedBy(b)),
  plain,
};

/** Thrown (and caught by the calc) when an exact result grows past what decimal.js would keep unrounded. */
export const TOO_LONG_FOR_EXACT = new Error('too many digits for the exact arithmetic');
/** `exact`, or `decimal` when the exact result grows too long: the same value either way, the exact one cheaper. */
export function exactFirst<Input>(
  exact: (input: Input) => string,
  decimal: (input: Input) => string,
): (input: Input) => string {
  return (input) => {
    try {
      return exact(input);
    } catch (error) {
      if (error !== TOO_LONG_FOR_EXACT) throw error;
      return decimal(input);
    }
  };
}

/** decimal.js keeps 60 significant digits; below 50 digits in all, exact and decimal.js results are the same. */
const EXACT_DIGITS = 50;
const checked = (value: ExactDecimal): ExactDecimal => {
  const magnitude = value.coefficient < 0n ? -value.coefficient : value.coefficient;
  if (magnitude.toString().length > EXACT_DIGITS) throw TOO_LONG_FOR_EXACT;
  return value;
};
const aligned = (a: ExactDecimal, b: ExactDecimal): [bigint, bigint, number] => {
  const scale = Math.max(a.scale, b.scale);
  return [a.coefficient * 10n ** BigInt(scale - a.scale), b.coefficient * 10n ** BigInt(scale - b.scale), scale];
};

/**
 * Sums, differences and products (amount × quantity, the common calc) in a BigInt: exact, and several times
 * cheaper than decimal.js per row. A calc with a division uses decimal.js, as does one whose numbers grow long.
 */
export const EXACT_ARITHMETIC: Arithmetic<ExactDecimal> = {
  parse: (text) => {
    const value = parseExact(text);
    return value && checked(value);
  },
  plus: (a, b) => {
    const [x, y, scale] = aligned(a, b);
    return checked({ coefficient: x + y, scale });
  },
  minus: (a, b) => {
    const [x, y, scale] = aligned(a, b);
    return checked({ coefficient: x - y, scale });
  },
  times: (a, b) => checked({ coefficient: a.coefficient * b.coefficient, scale: a.scale + b.scale }),
  negate: (a) => ({ coefficient: -a.coefficient, scale: a.scale }),
  divide: () => {
    throw new Error('the exact arithmetic has no division');
  },
  plain: plainExact,
};
