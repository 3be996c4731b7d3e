import { Decimal as DecimalJs } from 'decimal.js';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DECIMAL_ARITHMETIC, EXACT_ARITHMETIC, TOO_LONG_FOR_EXACT, type Arithmetic } from '../../src/mapping/calc.ts';
import { annotation, columnsMapping, text } from './helpers.ts';

/**
 * A calc without division runs on exact BigInt arithmetic, one with division (or with numbers too long) on
 * decimal.js: both must give the same text for every input, so which one ran can never be seen in a file.
 */

const Decimal = DecimalJs.clone({ precision: 60, toExpNeg: -40, toExpPos: 60 });

/** What a datapoint's normalized value can look like: signs, exponents, leading and trailing zeros, long digit runs. */
const numberText = fc
  .tuple(
    fc.constantFrom('', '-', '+'),
    fc.stringMatching(/^\d{0,30}$/),
    fc.option(fc.stringMatching(/^\d{0,30}$/), { nil: undefined }),
    fc.option(fc.integer({ min: -12, max: 12 }), { nil: undefined }),
  )
  .map(
    ([sign, int, frac, exp]) =>
      `${sign}${int}${frac === undefined ? '' : `.${frac}`}${exp === undefined ? '' : `e${exp}`}`,
  )
  .filter((candidate) => DECIMAL_ARITHMETIC.parse(candidate) !== undefined);

type Op = 'plus' | 'minus' | 'times' | 'negate';

function run<N>(arithmetic: Arithmetic<N>, first: string, steps: Array<[Op, string]>): string {
  let value = arithmetic.parse(first) as N;
  for (const [op, operand] of steps)
    value = op === 'negate' ? arithmetic.negate(value) : arithmetic[op](value, arithmetic.parse(operand) as N);
  return arithmetic.plain(value);
}

describe('calc arithmetic', () => {
  it('exact BigInt results equal decimal.js results for + - * and negation (or say they are too long)', () => {
    const step = fc.tuple(fc.constantFrom<Op>('plus', 'minus', 'times', 'negate'), numberText);
    fc.assert(
      fc.property(numberText, fc.array(step, { maxLength: 4 }), (first, steps) => {
        const expected = run(DECIMAL_ARITHMETIC, first, steps);
        let exact: string;
        try {
          exact = run(EXACT_ARITHMETIC, first, steps);
        } catch (error) {
          expect(error).toBe(TOO_LONG_FOR_EXACT);
          return;
        }
        expect(exact).toBe(expected);
      }),
      { numRuns: 5000 },
    );
  });

  it('through a mapping: the exact path, the fallback for long numbers and division all write what decimal.js computes', () => {
    const mapping = columnsMapping(`
    - { name: product, value: { calc: "a * b - a" } }
    - { name: quotient, value: { calc: "(a + b) / 3" } }`);
    const cases: Array<[string, string]> = [
      ['12.50', '3'],
      ['-0.5', '0.5'],
      ['1e3', '2.25'],
      ['123456789012345678901234567890.123', '98765432109876543210.98765'],
    ];
    for (const [a, b] of cases) {
      const out = text(
        mapping.render(annotation({ a: { value: a, normalized: a }, b: { value: b, normalized: b } })).bytes,
      );
      const x = new Decimal(a);
      const y = new Decimal(b);
      expect(out).toBe(`${x.times(y).minus(x).toFixed()}|${x.plus(y).dividedBy(3).toFixed()}`);
    }
  });

  it('a sum over rows: exact, and decimal.js when the total grows long, with the same text', () => {
    const mapping = columnsMapping('    - { name: total, value: { sum: line_items.amount } }');
    const amounts = [
      ['12.50', '-0.5', '1e2', '0.000'],
      ['99999999999999999999999999.99', '99999999999999999999999999.99', '0.0000000000000000000000001'],
    ];
    for (const column of amounts) {
      const rows = column.map((amount) => ({ amount }));
      const out = text(mapping.render(annotation({}, rows)).bytes);
      const expected = column.reduce((sum, amount) => sum.plus(new Decimal(amount)), new Decimal(0)).toFixed();
      expect(out).toBe(expected);
    }
  });
});
