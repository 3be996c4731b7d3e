import { parse } from 'csv-parse/sync';
import { stringify } from 'csv-stringify/sync';
import fc from 'fast-check';
import iconv from 'iconv-lite';
import { describe, expect, it } from 'vitest';
import { csvCell } from '../../src/mapping/csv.ts';
import { annotation, fixture, mappingFrom } from './helpers.ts';

const latin9 = `format: csv
encoding: iso-8859-15
line_ending: crlf
file: { name: "BELEGE_{document_id}.csv" }
csv:
  delimiter: ";"
  quoting: text
  header_quote: never
  rows: line_items
  columns:
    - { name: Belegnr, value: { field: document_id } }
    - { name: Datum, quote: never, value: { field: date_issue, date: dd.MM.yyyy } }
    - { name: Lieferant, value: { field: sender_name } }
    - { name: Artikel, value: { row: item_code } }
    - { name: Beschreibung, value: { row: item_description } }
    - { name: Menge, value: { row: item_quantity, number: { decimal_separator: "," } } }
    - { name: Einheit, empty: quoted, value: { row: item_uom } }
    - { name: Betrag, value: { row: item_amount_total, number: { decimals: 2, decimal_separator: "," } } }
    - { name: Währung, value: { field: currency, case: upper } }
`;

describe('CSV quoting per column', () => {
  it('writes the Latin-9 semicolon CSV exactly: unquoted header, quoted text, "" for empty text, decimal comma, CRLF', () => {
    const file = mappingFrom(latin9).render(fixture('export-invoice'));
    const expected = iconv.encode(
      [
        'Belegnr;Datum;Lieferant;Artikel;Beschreibung;Menge;Einheit;Betrag;Währung',
        '"INV-2024-00417";31.01.2024;"Müller & Söhne GmbH";"A-100";"Steel bolts M8, zinc plated";200;"pcs";70,00;"EUR"',
        '"INV-2024-00417";31.01.2024;"Müller & Söhne GmbH";"B-220";"Hex nuts M8";200;"pcs";24,00;"EUR"',
        '"INV-2024-00417";31.01.2024;"Müller & Söhne GmbH";"SRV-1";"Delivery & handling";1;"";45,00;"EUR"',
        '',
      ].join('\r\n'),
      'iso-8859-15',
    );
    expect(file.bytes.equals(expected), `${file.bytes.toString('latin1')}`).toBe(true);
  });

  it('auto quotes only what needs it; always quotes every non-empty value; the header follows header_quote', () => {
    const mapping = mappingFrom(`format: csv
file: { name: x.csv }
csv:
  header_quote: always
  columns:
    - { name: a, quote: auto, value: { field: a } }
    - { name: b, quote: always, value: { field: b } }
    - { name: c, quote: always, value: { field: c } }
    - { name: d, value: { field: d } }
`);
    const out = mapping.render(annotation({ a: 'x,y', b: 'plain', c: '', d: 'say "hi"' })).bytes.toString('utf8');
    expect(out).toBe('"a","b","c","d"\n"x,y","plain",,"say ""hi"""\n');
  });

  it('a never-quoted column refuses a value that would need quotes, naming the column', () => {
    const mapping = mappingFrom(`format: csv
file: { name: x.csv }
csv:
  delimiter: ";"
  columns:
    - { name: Name, quote: never, value: { field: name } }
`);
    expect(mapping.render(annotation({ name: 'ACME GmbH' })).bytes.toString('utf8')).toBe('Name\nACME GmbH\n');
    expect(() => mapping.render(annotation({ name: 'ACME; Berlin' }))).toThrow(
      /column "Name" of record 1: the value contains the delimiter.*never quoted/,
    );
  });

  it('empty: quoted on a formatted number is a check error at its key', () => {
    expect(() =>
      mappingFrom(`format: csv
file: { name: x.csv }
csv:
  columns:
    - { name: n, empty: quoted, value: { field: n, number: { decimals: 2 } } }
`),
    ).toThrow(/:5:25: csv\.columns\[0\]\.empty: column "n" is a formatted number/);
  });
});

describe('the cell writer', () => {
  it('writes every cell exactly as csv-stringify does with the same settings (quoted, auto, empty; any quote and escape), and csv-parse reads it back', () => {
    const settings = fc.record({
      delimiter: fc.constantFrom(',', ';', '\t', '|', '::'),
      quote: fc.constantFrom('"', "'"),
      escape: fc.constantFrom(undefined, '\\', '"'),
    });
    const value = fc.string({
      unit: fc.constantFrom('a', ' ', '"', "'", '\\', ',', ';', '\t', '|', ':', '\n', '\r', 'é'),
      maxLength: 12,
    });
    const cells = fc.array(fc.record({ value, always: fc.boolean(), quoteEmpty: fc.boolean() }), {
      minLength: 1,
      maxLength: 5,
    });
    fc.assert(
      fc.property(settings, cells, (config, row) => {
        const ours = row.map(({ value, always, quoteEmpty }) =>
          csvCell(value, always ? 'always' : 'auto', quoteEmpty, config, 'cell', undefined),
        );
        // The old way: a plain string is always quoted (quoted_string, "" when empty), an object only when it must be.
        const theirs = stringify(
          [
            row.map(({ value, always, quoteEmpty }) =>
              value === '' ? (quoteEmpty ? '' : { auto: '' }) : always ? value : { auto: value },
            ),
          ],
          {
            delimiter: config.delimiter,
            quote: config.quote,
            escape: config.escape ?? config.quote,
            quoted: false,
            quote_record_delimiter: true,
            record_delimiter: '\n',
            eof: false,
            quoted_string: true,
            cast: { object: (cell) => (cell as unknown as { auto: string }).auto },
          },
        );
        expect(ours.join(config.delimiter)).toBe(theirs);
        const [parsed] = parse(`${ours.join(config.delimiter)}\n`, {
          delimiter: config.delimiter,
          quote: config.quote,
          escape: config.escape ?? config.quote,
          relax_column_count: true,
        }) as string[][];
        expect(parsed).toEqual(row.map(({ value }) => value));
      }),
      { numRuns: 2000 },
    );
  });
});
