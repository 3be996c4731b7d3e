import { parse as parseCsv } from 'csv-parse/sync';
import fc from 'fast-check';
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import iconv from 'iconv-lite';
import { describe, expect, it } from 'vitest';
import { isBridgeError } from '../../src/errors.ts';
import { OutputEncoding } from '../../src/mapping/encoding.ts';
import { annotation, columnsMapping, mappingFrom } from './helpers.ts';

/** The tricky fixture's characters plus what XML forbids, lone surrogates and CSV/fixed-width troublemakers. */
const TRICKY = [
  '&',
  '<',
  '>',
  '"',
  "'",
  ';',
  ',',
  '\n',
  '\r',
  '\r\n',
  '\t',
  '\u00a0',
  '🚀',
  'Š',
  'ť',
  'ü',
  '²',
  '=',
  '+',
  '-',
  '@',
  ']]>',
  '</Invoice>',
  '\u0000',
  '\u0001',
  '\u000b',
  '\u000c',
  '\u001f',
  '\ufffe',
  '\uffff',
  '\ud800',
  '\udc00',
  ' ',
  'a',
  'Z',
  '0',
  '€',
];
const trickyString = fc
  .array(fc.oneof(fc.constantFrom(...TRICKY), fc.string({ unit: 'binary', maxLength: 3 })), { maxLength: 12 })
  .map((parts) => parts.join(''));

const FORBIDDEN =
  /[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;
const runs = { numRuns: 300 };

describe('property: any text', () => {
  const xml = mappingFrom(`
format: xml
file: { name: "{a}.xml" }
xml:
  empty_elements: empty
  root:
    element: R
    attributes: { a: { field: a } }
    children:
      - { element: A, value: { field: a } }
      - element: L
        repeat: line_items
        attributes: { b: { row: b } }
        children: [{ element: B, value: { row: b } }]
`);
  const parser = new XMLParser({
    ignoreAttributes: false,
    trimValues: false,
    parseTagValue: false,
    parseAttributeValue: false,
    htmlEntities: true,
    isArray: (name) => name === 'L',
  });

  it('gives well-formed XML that parses back to the same values (forbidden characters dropped)', () => {
    fc.assert(
      fc.property(trickyString, fc.array(trickyString, { maxLength: 4 }), (a, bs) => {
        const file = xml.render(
          annotation(
            { a },
            bs.map((b) => ({ b })),
          ),
        );
        const out = file.bytes.toString('utf8');
        expect(XMLValidator.validate(out)).toBe(true);
        const doc = parser.parse(out);
        const clean = (s: string) => s.replace(FORBIDDEN, '');
        expect(doc.R['@_a'] ?? '').toBe(clean(a));
        expect(doc.R.A).toBe(clean(a));
        const lines = (doc.R.L ?? []) as Array<{ '@_b'?: string; B: string }>;
        expect(lines.map((l) => l.B)).toEqual(bs.map(clean));
        expect(lines.map((l) => l['@_b'] ?? '')).toEqual(bs.map(clean));
      }),
      runs,
    );
  });

  const csvWith = (escapeFormulas: boolean) =>
    mappingFrom(`
format: csv
line_ending: crlf
file: { name: out.csv }
csv:
  delimiter: ";"
  escape_formulas: ${escapeFormulas}
  rows: line_items
  columns:
    - { name: a, value: { field: a } }
    - { name: b, value: { row: b } }
`);
  const csv = csvWith(false);
  it('gives CSV that csv-parse reads back to the same values', () => {
    fc.assert(
      fc.property(trickyString, fc.array(trickyString, { minLength: 1, maxLength: 4 }), (a, bs) => {
        const fits = (s: string) => s.replace(/[\ud800-\udfff]/g, '');
        const out = csv
          .render(
            annotation(
              { a: fits(a) },
              bs.map((b) => ({ b: fits(b) })),
            ),
          )
          .bytes.toString('utf8');
        const records = parseCsv(out, {
          delimiter: ';',
          record_delimiter: '\r\n',
          relax_column_count: false,
        }) as string[][];
        expect(records).toEqual([['a', 'b'], ...bs.map((b) => [fits(a), fits(b)])]);
      }),
      runs,
    );
  });

  const escaped = csvWith(true);
  it('with formula escaping (the default), no cell a spreadsheet reads starts a formula, and every value comes back behind at most one quote', () => {
    const formulaStart = /^[=+\-@\t\r\uFF1D\uFF0B\uFF0D\uFF20]/;
    const plainNumber = /^[+-]?\d[\d.,' ]*$/;
    const expected = (s: string) => (formulaStart.test(s) && !plainNumber.test(s) ? `'${s}` : s);
    fc.assert(
      fc.property(trickyString, fc.array(trickyString, { minLength: 1, maxLength: 4 }), (a, bs) => {
        const fits = (s: string) => s.replace(/[\ud800-\udfff]/g, '');
        const out = escaped
          .render(
            annotation(
              { a: fits(a) },
              bs.map((b) => ({ b: fits(b) })),
            ),
          )
          .bytes.toString('utf8');
        const records = parseCsv(out, {
          delimiter: ';',
          record_delimiter: '\r\n',
          relax_column_count: false,
        }) as string[][];
        expect(records).toEqual([['a', 'b'], ...bs.map((b) => [expected(fits(a)), expected(fits(b))])]);
        for (const cell of records.flat()) expect(formulaStart.test(cell) && !plainNumber.test(cell)).toBe(false);
      }),
      runs,
    );
  });

  for (const encoding of ['utf-8', 'windows-1252', 'cp850']) {
    const fixed = mappingFrom(`
format: fixed
encoding: ${encoding}
unencodable: replace
line_ending: crlf
file: { name: out.txt }
fixed:
  records:
    - name: H
      length: 40
      fields:
        - { name: a, width: 7, truncate: true, value: { field: a, strip_line_breaks: true } }
        - { name: n, start: 10, width: 9, pad: "0", truncate: true, value: { field: n, number: { decimals: 2, implied_decimals: true } } }
    - name: L
      rows: line_items
      length: 25
      fields:
        - { name: b, width: 12, truncate: true, align: right, value: { row: b, strip_line_breaks: true } }
        - { name: c, width: 13, truncate: true, value: { template: "{row.b}|{row.b}", strip_line_breaks: true } }
`);
    it(`gives fixed-width records of exact byte length (${encoding})`, () => {
      fc.assert(
        fc.property(
          trickyString,
          fc.array(trickyString, { maxLength: 4 }),
          fc.integer({ min: -99999, max: 99999 }),
          (a, bs, cents) => {
            const amount = (cents / 100).toFixed(2);
            const bytes = fixed.render(
              annotation(
                { a, n: { value: amount, normalized: amount } },
                bs.map((b) => ({ b })),
              ),
            ).bytes;
            const records = bytes.toString('latin1').split('\r\n');
            expect(records.pop()).toBe('');
            expect(records.map((r) => r.length)).toEqual([40, ...bs.map(() => 25)]);
            if (encoding === 'utf-8') expect(iconv.decode(bytes, 'utf-8')).not.toContain('\ufffd\ufffd\ufffd\ufffd');
          },
        ),
        runs,
      );
    });
  }

  it('rendering never throws anything but a permanent MAPPING_* BridgeError', () => {
    const mapping = mappingFrom(`
format: xml
encoding: windows-1252
file: { name: "{d}" }
value_maps: { m: { entries: { a: A } } }
xml:
  invalid_chars: error
  root:
    element: R
    children:
      - { element: D, value: { field: d, date: yyyyMMdd } }
      - { element: N, value: { field: n, number: { decimals: 2, group_separator: "." } } }
      - { element: C, value: { calc: "n * 2 / n" } }
      - { element: M, value: { field: m, map: m } }
      - { element: Q, value: { field: q, required: true } }
      - { element: S, value: { sum: line_items.x } }
`);
    const maybe = (arb: fc.Arbitrary<string>) => fc.option(arb, { nil: undefined });
    fc.assert(
      fc.property(
        maybe(trickyString),
        maybe(fc.oneof(trickyString, fc.double().map(String))),
        maybe(fc.constantFrom('a', 'b', '')),
        maybe(trickyString),
        fc.array(fc.oneof(trickyString, fc.constant('1.5')), { maxLength: 3 }),
        (d, n, m, q, xs) => {
          const header: Record<string, string> = {};
          if (d !== undefined) header.d = d;
          if (n !== undefined) header.n = n;
          if (m !== undefined) header.m = m;
          if (q !== undefined) header.q = q;
          try {
            mapping.render(
              annotation(
                header,
                xs.map((x) => ({ x })),
              ),
            );
          } catch (error) {
            expect(isBridgeError(error)).toBe(true);
            if (isBridgeError(error)) {
              expect(error.permanent).toBe(true);
              expect(error.code).toMatch(/^MAPPING_/);
              expect(error.code).not.toBe('MAPPING_RENDER_FAILED');
            }
          }
        },
      ),
      { numRuns: 500 },
    );
  });
});

describe('property: number formatting on digit strings', () => {
  it('rounds exactly like decimal.js in every mode, with scale and sign', async () => {
    const { Decimal } = await import('decimal.js');
    const { formatNumber } = await import('../../src/mapping/format.ts');
    const { ROUNDING } = await import('../../src/mapping/schema.ts');
    const modes = {
      'half-up': Decimal.ROUND_HALF_UP,
      'half-even': Decimal.ROUND_HALF_EVEN,
      'half-down': Decimal.ROUND_HALF_DOWN,
      up: Decimal.ROUND_UP,
      down: Decimal.ROUND_DOWN,
      ceiling: Decimal.ROUND_CEIL,
      floor: Decimal.ROUND_FLOOR,
    } as const;
    const decimalString = fc
      .tuple(fc.boolean(), fc.stringMatching(/^\d{1,12}$/), fc.stringMatching(/^\d{0,8}$/))
      .map(([neg, i, f]) => `${neg ? '-' : ''}${i}${f ? `.${f}` : ''}`);
    fc.assert(
      fc.property(
        decimalString,
        fc.integer({ min: 0, max: 6 }),
        fc.constantFrom(...ROUNDING),
        fc.integer({ min: -3, max: 3 }),
        (input, decimals, rounding, scale) => {
          const expected = new Decimal(input)
            .times(new Decimal(10).pow(scale))
            .toDecimalPlaces(decimals, modes[rounding]);
          const text = expected.abs().toFixed(decimals);
          const sign = expected.isNegative() && !expected.isZero() ? '-' : '';
          expect(formatNumber(input, { decimals, rounding, scale })).toBe(sign + text);
        },
      ),
      { numRuns: 2000 },
    );
  });
});

describe('property: output bytes', () => {
  it('are the bytes iconv-lite writes for the same text, in every encoding with a fast path (with and without a BOM)', () => {
    const text = fc.oneof(
      fc.string({ unit: 'grapheme-ascii', maxLength: 60 }),
      fc.string({ unit: fc.constantFrom(...TRICKY, 'a', 'Z', '€', 'é', '\ud800', '\udc00'), maxLength: 40 }),
      fc.string({ unit: 'binary', maxLength: 40 }),
    );
    for (const name of ['utf-8', 'iso-8859-15', 'windows-1252', 'iso-8859-1', 'utf-16le']) {
      const encoding = new OutputEncoding(name);
      fc.assert(
        fc.property(text, fc.boolean(), (value, bom) => {
          if (!encoding.fits(value) || (bom && !encoding.isUtf)) return;
          expect(encoding.encode(value, bom).toString('hex')).toBe(
            iconv.encode(value, name, { addBOM: bom }).toString('hex'),
          );
        }),
        { numRuns: 400 },
      );
    }
  });
});

describe('property: what counts as a number', () => {
  it('formatting accepts exactly the strings decimal parsing accepts', async () => {
    const { formatNumber, parseDecimal } = await import('../../src/mapping/format.ts');
    const candidate = fc.string({
      unit: fc.constantFrom('0', '1', '9', '.', '-', '+', 'e', 'E', ' ', '\u00a0', ',', 'x', '\u0661'),
      maxLength: 8,
    });
    fc.assert(
      fc.property(candidate, (text) => {
        expect(formatNumber(text, {}) === undefined).toBe(parseDecimal(text) === undefined);
      }),
      { numRuns: 3000 },
    );
  });
});

describe('property: trimming', () => {
  it('removes exactly the surrounding whitespace the trim pattern names, no-break and Unicode spaces included', () => {
    const mapping = columnsMapping(`
    - { name: t, value: { field: a, trim: true } }
    - { name: c, value: { field: a, collapse_whitespace: true } }`);
    const text = fc.string({
      unit: fc.constantFrom(
        ' ',
        '\t',
        '\u00a0',
        '\u2007',
        '\u202f',
        '\ufeff',
        '\u3000',
        '\u2028',
        '\u1680',
        'a',
        'é',
        '-',
        '~',
        '!',
      ),
      maxLength: 8,
    });
    fc.assert(
      fc.property(text, (value) => {
        const trimmed = value.replace(/^[\s\u00a0\u2007\u202f\ufeff]+|[\s\u00a0\u2007\u202f\ufeff]+$/g, '');
        const collapsed = value
          .replace(/[\s\u00a0]+/g, ' ')
          .replace(/^[\s\u00a0\u2007\u202f\ufeff]+|[\s\u00a0\u2007\u202f\ufeff]+$/g, '');
        const out = mapping.render(annotation({ a: value })).bytes.toString('utf8');
        expect(out).toBe(`${trimmed}|${collapsed}`);
      }),
      { numRuns: 1500 },
    );
  });
});
