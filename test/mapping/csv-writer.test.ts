import { stringify } from 'csv-stringify/sync';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { writeCsv, type AutoCell } from '../../src/mapping/csv-writer.ts';

/** Characters that decide quoting and escaping, mixed with plain text. */
const PIECES = ['a', 'Zürich', ' ', ',', ';', '::', ':', '"', "'", '\\', '\n', '\r', '\r\n', '\t', '🚀', '$&', '|'];
const text = fc.array(fc.constantFrom(...PIECES), { maxLength: 6 }).map((parts) => parts.join(''));
const cell = fc.oneof(
  text,
  text.map((auto): AutoCell => ({ auto })),
);
const settings = fc.record({
  delimiter: fc.constantFrom(',', ';', '\t', '|', '::', ':;'),
  quote: fc.constantFrom('"', "'", ''),
  escape: fc.option(fc.constantFrom('"', '\\', "'", '$'), { nil: undefined }),
  recordDelimiter: fc.constantFrom('\n', '\r\n', '\r'),
});

/** How the CSV format called csv-stringify before it wrote records itself. */
function reference(
  records: Array<Array<string | AutoCell>>,
  s: { delimiter: string; quote: string; escape: string; recordDelimiter: string },
): string {
  return stringify(records, {
    delimiter: s.delimiter,
    quote: s.quote,
    escape: s.escape,
    quoted: false,
    quote_record_delimiter: true,
    record_delimiter: s.recordDelimiter,
    eof: true,
    quoted_string: true,
    cast: { object: (value) => (value as unknown as AutoCell).auto },
  });
}

describe('CSV writer', () => {
  it('writes every record byte for byte as csv-stringify did', () => {
    fc.assert(
      fc.property(
        settings,
        fc.array(fc.array(cell, { minLength: 1, maxLength: 5 }), { minLength: 1, maxLength: 4 }),
        (s, records) => {
          const resolved = { ...s, escape: s.escape ?? (s.quote || '"') };
          expect(writeCsv(records, resolved)).toBe(reference(records, resolved));
        },
      ),
      { numRuns: 500 },
    );
  });

  it('quotes plain strings, and AutoCells only when they need it', () => {
    const s = { delimiter: ';', quote: '"', escape: '"', recordDelimiter: '\r\n' };
    expect(writeCsv([['a', { auto: 'b' }, { auto: 'c;d' }, { auto: 'say "hi"' }, '', { auto: '' }]], s)).toBe(
      '"a";b;"c;d";"say ""hi""";"";\r\n',
    );
  });
});
