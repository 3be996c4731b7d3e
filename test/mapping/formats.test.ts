import { parse as parseCsv } from 'csv-parse/sync';
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import iconv from 'iconv-lite';
import { describe, expect, it } from 'vitest';
import { BridgeError } from '../../src/errors.ts';
import { annotation, fixture, mappingFrom, text } from './helpers.ts';

function fails(run: () => unknown): BridgeError {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(BridgeError);
    return error as BridgeError;
  }
  throw new Error('expected a failure');
}

describe('XML', () => {
  const mapping = (xml: string, top = '') =>
    mappingFrom(`
format: xml
file: { name: out.xml }
${top}
xml:
${xml}
`);

  it('writes nested elements, attributes, namespaces with prefixes, and repeated elements for line items', () => {
    const out = text(
      mapping(`
  namespaces: { "": "urn:default", inv: "urn:inv" }
  root:
    element: inv:Invoice
    attributes: { "inv:id": "{meta.annotation_id}" }
    children:
      - element: inv:Number
        value: "{document_id}"
      - element: Line
        repeat: line_items
        attributes: { no: { line_number: true } }
        children: [{ element: Code, value: { row: item_code } }]
      - element: inv:Number
        value: { const: again }
`).render(fixture('export-invoice')).bytes,
    );
    expect(out).toBe(`<?xml version="1.0" encoding="UTF-8"?>
<inv:Invoice xmlns="urn:default" xmlns:inv="urn:inv" inv:id="314521">
  <inv:Number>INV-2024-00417</inv:Number>
  <Line no="1">
    <Code>A-100</Code>
  </Line>
  <Line no="2">
    <Code>B-220</Code>
  </Line>
  <Line no="3">
    <Code>SRV-1</Code>
  </Line>
  <inv:Number>again</inv:Number>
</inv:Invoice>
`);
    expect(XMLValidator.validate(out)).toBe(true);
  });

  it('the declaration names the encoding of the bytes', () => {
    const file = mapping(`  root: { element: A, value: { field: sender_name } }`, 'encoding: windows-1252').render(
      fixture('export-invoice'),
    );
    expect(file.bytes.toString('latin1')).toContain('<?xml version="1.0" encoding="windows-1252"?>');
    expect(iconv.decode(file.bytes, 'windows-1252')).toContain('<A>Müller &amp; Söhne GmbH</A>');
    expect(file.bytes.includes(Buffer.from([0xfc]))).toBe(true);
  });

  it('empty elements are omitted, written as <a></a> or <a/> per mapping and per element', () => {
    const xml = (policy: string) =>
      text(
        mapping(
          `
  pretty: false
  empty_elements: ${policy}
  declaration: false
  root: { element: R, children: [{ element: E, value: { field: order_id } }, { element: K, empty: self_closing, value: { field: order_id } }] }
`,
          'final_newline: false',
        ).render(fixture('export-no-line-items')).bytes,
      );
    expect(xml('omit')).toBe('<R><K/></R>');
    expect(xml('empty')).toBe('<R><E></E><K/></R>');
    expect(xml('self_closing')).toBe('<R><E/><K/></R>');
  });

  it('values are escaped so they parse back unchanged, also in attributes and with ]]>, CR and tabs', () => {
    const tricky = ']]> & < > \' " \r\n\t end';
    const view = annotation({ t: tricky });
    const out = text(
      mapping(
        `  root: { element: R, attributes: { a: { field: t } }, children: [{ element: T, value: { field: t } }] }`,
      ).render(view).bytes,
    );
    const parsed = new XMLParser({
      ignoreAttributes: false,
      trimValues: false,
      parseTagValue: false,
      parseAttributeValue: false,
      processEntities: true,
      htmlEntities: true,
    }).parse(out);
    expect(parsed.R['@_a']).toBe(tricky);
    expect(parsed.R.T).toBe(tricky);
  });

  it('characters XML 1.0 forbids are dropped or replaced, and reported', () => {
    const view = annotation({ t: 'a\u0001b\u000bc' });
    const drop = mapping(`  root: { element: T, value: { field: t } }`).render(view);
    expect(text(drop.bytes)).toContain('<T>abc</T>');
    expect(drop.warnings?.[0]).toContain('removed control character U+0001, vertical tab (U+000B)');
    const replace = mapping(
      `  invalid_chars: replace\n  invalid_char_replacement: "?"\n  root: { element: T, value: { field: t } }`,
    ).render(view);
    expect(text(replace.bytes)).toContain('<T>a?b?c</T>');
    const error = fails(() =>
      mapping(`  invalid_chars: error\n  root: { element: T, value: { field: t } }`).render(view),
    );
    expect(error.code).toBe('MAPPING_INVALID_XML_CHAR');
    expect(error.location.datapointId).toBe(view.field('t')?.id);
  });

  it('an undeclared namespace prefix or an invalid name is refused when the mapping loads', () => {
    expect(() => mapping(`  root: { element: x:A }`)).toThrow(/namespace prefix "x" is not declared/);
    expect(() => mapping(`  root: { element: "1A" }`)).toThrow(/not a valid XML element name/);
  });
});

describe('CSV', () => {
  const csv = (settings: string, top = '') =>
    mappingFrom(`
format: csv
file: { name: out.csv }
${top}
csv:
${settings}
`);
  const columns = `
  rows: line_items
  columns:
    - { name: code, value: { row: item_code } }
    - { name: text, value: { row: item_description } }
    - { name: amount, value: { row: item_amount_total, number: { decimals: 2, decimal_separator: "," } } }`;

  it('quotes delimiters, quotes and line breaks; with CRLF records, a field with LF is still quoted', () => {
    const file = csv(`  delimiter: ";"${columns}`, 'line_ending: crlf').render(fixture('export-tricky-characters'));
    const out = text(file.bytes);
    expect(out).toContain('"C;1";"Line with ""quotes"", commas; semicolons\nand a newline";8,33\r\n');
    const records = parseCsv(out, { delimiter: ';', record_delimiter: '\r\n' }) as string[][];
    expect(records[2]).toEqual(['C;1', 'Line with "quotes", commas; semicolons\nand a newline', '8,33']);
  });

  it('strips line breaks where the ERP forbids them, or refuses them', () => {
    expect(text(csv(`  line_breaks: strip${columns}`).render(fixture('export-tricky-characters')).bytes)).toContain(
      'semicolons and a newline',
    );
    const error = fails(() => csv(`  line_breaks: error${columns}`).render(fixture('export-tricky-characters')));
    expect(error.code).toBe('MAPPING_LINE_BREAK');
    expect(error.location.datapointId).toBe(314522010);
  });

  it('header row on or off; quoting all or text-only', () => {
    expect(text(csv(`  header: false${columns}`).render(fixture('export-invoice')).bytes).split('\n')[0]).toBe(
      'A-100,"Steel bolts M8, zinc plated","70,00"',
    );
    expect(text(csv(`  quoting: all${columns}`).render(fixture('export-invoice')).bytes).split('\n')[1]).toBe(
      '"A-100","Steel bolts M8, zinc plated","70,00"',
    );
    expect(
      text(csv(`  delimiter: ";"\n  quoting: text${columns}`).render(fixture('export-invoice')).bytes).split('\n')[1],
    ).toBe('"A-100";"Steel bolts M8, zinc plated";70,00');
  });

  it('formula escaping is on by default, can be turned off, and never touches numbers like -5,00', () => {
    const view = annotation({}, [
      { c: '=SUM(A1)', n: '-5', t: '-5,00' },
      { c: '@cmd', n: '3', t: '+x' },
    ]);
    const cols = `
  rows: line_items
  columns:
    - { name: c, value: { row: c } }
    - { name: n, value: { row: n, number: { decimals: 2, decimal_separator: "," } } }
    - { name: t, value: { row: t } }`;
    expect(text(csv(`  delimiter: ";"\n  escape_formulas: true${cols}`).render(view).bytes)).toBe(
      "c;n;t\n'=SUM(A1);-5,00;-5,00\n'@cmd;3,00;'+x\n",
    );
    expect(text(csv(`  delimiter: ";"\n  escape_formulas: false${cols}`).render(view).bytes)).toBe(
      'c;n;t\n=SUM(A1);-5,00;-5,00\n@cmd;3,00;+x\n',
    );
    expect(text(csv(`  delimiter: ";"${cols}`).render(view).bytes)).toBe(
      "c;n;t\n'=SUM(A1);-5,00;-5,00\n'@cmd;3,00;'+x\n",
    );
  });

  it('a UTF-8 BOM is real bytes, and a BOM for windows-1252 is refused instead of turning into "?"', () => {
    const bytes = csv(`  columns: [{ name: a, value: { const: x } }]`, 'bom: true').render(
      fixture('export-invoice'),
    ).bytes;
    expect([...bytes.subarray(0, 3)]).toEqual([0xef, 0xbb, 0xbf]);
    expect(() => csv(`  columns: [{ name: a, value: { const: x } }]`, 'bom: true\nencoding: windows-1252')).toThrow(
      /windows-1252 has no byte order mark/,
    );
    const utf16 = csv(`  columns: [{ name: a, value: { const: x } }]`, 'bom: true\nencoding: utf-16le').render(
      fixture('export-invoice'),
    ).bytes;
    expect([...utf16.subarray(0, 2)]).toEqual([0xff, 0xfe]);
  });

  it('no rows: header only, one document record, or an error', () => {
    const view = fixture('export-no-line-items');
    expect(text(csv(`${columns}`).render(view).bytes)).toBe('code,text,amount\n');
    expect(text(csv(`  no_rows: document_row${columns}`).render(view).bytes)).toBe('code,text,amount\n,,\n');
    expect(fails(() => csv(`  no_rows: error${columns}`).render(view)).code).toBe('MAPPING_NO_ROWS');
  });
});

describe('fixed width', () => {
  const fixed = (records: string, top = '') =>
    mappingFrom(`
format: fixed
file: { name: out.txt }
${top}
fixed:
  records:
${records}
`);

  it('writes H/L/T records with start positions, alignment, padding, implied decimals, trailer count and total', () => {
    const out = text(
      fixed(`
    - name: H
      length: 20
      fields:
        - { name: t, width: 1, value: { const: H } }
        - { name: no, start: 3, width: 8, value: { field: document_id }, truncate: true }
    - name: L
      rows: line_items
      fields:
        - { name: t, width: 1, value: { const: L } }
        - { name: n, width: 3, pad: "0", value: { line_number: true } }
        - { name: amt, width: 8, pad: "0", value: { row: item_amount_total, number: { decimals: 2, implied_decimals: true } } }
    - name: T
      fields:
        - { name: t, width: 1, value: { const: T } }
        - { name: count, width: 4, pad: "0", value: { meta: record_count } }
        - { name: sum, width: 10, value: { sum: line_items.item_amount_total, number: { decimals: 2, implied_decimals: true } } }
`).render(fixture('export-invoice')).bytes,
    );
    expect(out).toBe('H INV-2024          \nL00100007000\nL00200002400\nL00300004500\nT0005     13900\n');
  });

  it('widths count bytes of the output encoding', () => {
    const records = `
    - name: R
      fields:
        - { name: a, width: 6, value: { field: s } }
        - { name: b, width: 1, value: { const: "|" } }`;
    const view = annotation({ s: 'Müll' });
    expect(fixed(records, 'encoding: utf-8').render(view).bytes.toString('utf8')).toBe('Müll |\n');
    expect(fixed(records, 'encoding: windows-1252').render(view).bytes.length).toBe(8);
    expect(iconv.decode(fixed(records, 'encoding: windows-1252').render(view).bytes, 'windows-1252')).toBe('Müll  |\n');
  });

  it('an overlong value is an error naming the field, unless the field truncates (at a character boundary)', () => {
    const view = annotation({ s: 'ÄÄÄ' });
    const error = fails(() =>
      fixed(`    - { name: R, fields: [{ name: city, width: 5, value: { field: s } }] }`).render(view),
    );
    expect(error.code).toBe('MAPPING_VALUE_TOO_LONG');
    expect(error.message).toContain('field "city"');
    expect(error.message).toContain('6 bytes in utf-8');
    expect(error.location.datapointId).toBe(view.field('s')?.id);
    expect(
      fixed(`    - { name: R, fields: [{ name: city, width: 5, truncate: true, value: { field: s } }] }`)
        .render(view)
        .bytes.toString('utf8'),
    ).toBe('ÄÄ \n');
  });

  it('a zero-padded negative keeps its sign in front', () => {
    const view = annotation({ n: { value: '-1,5', normalized: '-1.5' } });
    expect(
      text(
        fixed(
          `    - { name: R, fields: [{ name: n, width: 8, pad: "0", value: { field: n, number: { decimals: 2, implied_decimals: true } } }] }`,
        ).render(view).bytes,
      ),
    ).toBe('-0000150\n');
  });

  it('overlapping fields and records longer than their length are refused when the mapping loads', () => {
    expect(() =>
      fixed(
        `    - { name: R, fields: [{ name: a, width: 5, value: "x" }, { name: b, start: 3, width: 2, value: "y" }] }`,
      ),
    ).toThrow(/field "b" starts at 3 but "a" already uses bytes up to 5/);
    expect(() => fixed(`    - { name: R, length: 4, fields: [{ name: a, width: 5, value: "x" }] }`)).toThrow(
      /is 4 bytes long but its fields need 5/,
    );
  });

  it('line breaks inside a value are refused: they would split the record', () => {
    expect(
      fails(() =>
        fixed(`    - { name: R, fields: [{ name: a, width: 40, value: { field: sender_address } }] }`).render(
          fixture('export-invoice'),
        ),
      ).code,
    ).toBe('MAPPING_LINE_BREAK');
  });

  it('line endings per mapping', () => {
    const records = `    - { name: R, fields: [{ name: a, width: 1, value: "x" }] }\n    - { name: S, fields: [{ name: a, width: 1, value: "y" }] }`;
    expect(text(fixed(records, 'line_ending: crlf').render(fixture('export-invoice')).bytes)).toBe('x\r\ny\r\n');
    expect(text(fixed(records, 'line_ending: cr\nfinal_newline: false').render(fixture('export-invoice')).bytes)).toBe(
      'x\ry',
    );
  });
});

describe('encodings', () => {
  const one = (top: string, view = fixture('export-tricky-characters')) =>
    mappingFrom(`
format: csv
file: { name: out.csv }
${top}
csv: { header: false, columns: [{ name: n, value: { field: sender_name } }] }
`).render(view);

  it('a character the encoding cannot hold is an error naming the field and the character', () => {
    const error = fails(() => one('encoding: windows-1252'));
    expect(error.code).toBe('MAPPING_UNENCODABLE');
    expect(error.message).toContain('"ť" (U+0165) cannot be written in windows-1252');
    expect(error.message).toContain('sender_name');
    expect(error.location.datapointId).toBe(314522041);
  });

  it('replacement and transliteration when the mapping asks, with a warning', () => {
    const replaced = one('encoding: windows-1252\nunencodable: replace\nreplacement: "_"');
    expect(iconv.decode(replaced.bytes, 'windows-1252')).toContain('Š_astný');
    const transliterated = one('encoding: iso-8859-1\nunencodable: transliterate');
    expect(iconv.decode(transliterated.bytes, 'iso-8859-1')).toContain(
      '"Stastný ""Quote"" & <Tag> ; \'Semi\', Ltd. ?"',
    );
    expect(transliterated.warnings?.join()).toContain('"🚀" (U+1F680) → "?"');
  });

  it('cp850 and iso-8859-15 work; an unknown encoding is refused at load', () => {
    expect(iconv.decode(one('encoding: cp850', fixture('export-invoice')).bytes, 'cp850')).toBe(
      'Müller & Söhne GmbH\n',
    );
    expect(one('encoding: iso-8859-15', fixture('export-invoice')).bytes.includes(0xfc)).toBe(true);
    expect(() => one('encoding: ebcdic-nonsense')).toThrow(/unknown encoding "ebcdic-nonsense"/);
  });
});
