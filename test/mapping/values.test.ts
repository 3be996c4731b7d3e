import { describe, expect, it } from 'vitest';
import { BridgeError } from '../../src/errors.ts';
import { annotation, fixture, mappingFrom, text } from './helpers.ts';

/** One CSV column without header: the smallest way to see what a value produces. */
function value(spec: string, view = fixture('export-invoice'), extra = '', context = {}): string {
  const mapping = mappingFrom(`
format: csv
final_newline: false
file: { name: out.csv }
${extra}
csv:
  header: false
  quote: ""
  delimiter: "|"
  columns:
    - name: v
      value: ${spec}
`);
  return text(mapping.render(view, context).bytes);
}

function failure(spec: string, view = fixture('export-invoice'), extra = ''): BridgeError {
  try {
    value(spec, view, extra);
  } catch (error) {
    expect(error).toBeInstanceOf(BridgeError);
    return error as BridgeError;
  }
  throw new Error('expected the render to fail');
}

describe('sources', () => {
  it('reads a header field by schema_id, normalized when Rossum has a normalized value', () => {
    expect(value('{ field: document_id }')).toBe('INV-2024-00417');
    expect(value('{ field: date_issue }')).toBe('2024-01-31');
    expect(value('{ field: date_issue, use: value }')).toBe('31.01.2024');
  });
  it('reads payload metadata', () => {
    expect(value('{ meta: annotation_id }')).toBe('314521');
    expect(value('{ meta: document_file_name }')).toBe('INV-2024-00417.pdf');
    expect(value('{ meta: queue_id }')).toBe('8236');
    expect(value('{ meta: now }', undefined, '', { now: new Date('2024-05-06T07:08:09Z') })).toBe(
      '2024-05-06T07:08:09.000Z',
    );
  });
  it('reads constants, env and route values', () => {
    expect(value('{ const: 42 }')).toBe('42');
    expect(value('{ env: ERP_CLIENT }', undefined, '', { env: { ERP_CLIENT: '100' } })).toBe('100');
    expect(value('{ route: company }', undefined, '', { route: { company: 'ACME' } })).toBe('ACME');
  });
  it('templates combine sources; braces are escaped by doubling', () => {
    expect(value('"{document_id}/{meta.annotation_id} {{x}}"')).toBe('INV-2024-00417/314521 {x}');
  });
  it('aggregates count rows and sum decimals exactly', () => {
    expect(value('{ count: line_items }')).toBe('3');
    expect(value('{ sum: line_items.item_amount_total }')).toBe('139');
    expect(value('{ sum: line_items.item_amount_total, number: { decimals: 2 } }')).toBe('139.00');
    expect(value('{ sum: { rows: line_items, of: item_amount_total, where: { row: item_uom, equals: pcs } } }')).toBe(
      '94',
    );
    const view = annotation({}, [{ amount: '0.1' }, { amount: '0.2' }]);
    expect(value('{ sum: line_items.amount }', view)).toBe('0.3');
  });
  it('calc does decimal-exact arithmetic over references', () => {
    const view = annotation({ a: '0.1', b: '0.2' });
    expect(value('{ calc: "a + b" }', view)).toBe('0.3');
    expect(value('{ calc: "(a + b) * 3 / -2" }', view)).toBe('-0.45');
  });
  it('vars are computed once and can be reused', () => {
    expect(
      value('{ var: total }', undefined, 'vars: { total: { field: amount_total, number: { decimals: 1 } } }'),
    ).toBe('165.4');
  });
});

describe('numbers', () => {
  const n = (input: string, format: string): string =>
    value(`{ field: x, number: ${format} }`, annotation({ x: { value: input, normalized: input } }));
  it('rounds half-up by default and half-even on request, on the decimal string (no float drift)', () => {
    expect(n('1.15', '{ decimals: 1 }')).toBe('1.2');
    expect(n('1.005', '{ decimals: 2 }')).toBe('1.01');
    expect(n('2.5', '{ decimals: 0 }')).toBe('3');
    expect(n('2.5', '{ decimals: 0, rounding: half-even }')).toBe('2');
    expect(n('3.5', '{ decimals: 0, rounding: half-even }')).toBe('4');
    expect(n('-2.5', '{ decimals: 0 }')).toBe('-3');
  });
  it('uses decimal and grouping separators', () => {
    expect(n('1234567.891', '{ decimals: 2, decimal_separator: ",", group_separator: "." }')).toBe('1.234.567,89');
  });
  it('places the sign', () => {
    expect(n('-5', '{ decimals: 2, sign: trailing }')).toBe('5.00-');
    expect(n('-5', '{ decimals: 2, sign: parentheses }')).toBe('(5.00)');
    expect(n('5', '{ decimals: 2, sign: always }')).toBe('+5.00');
    expect(n('-5', '{ decimals: 2, sign: none }')).toBe('5.00');
    expect(n('-0.001', '{ decimals: 2 }')).toBe('0.00');
  });
  it('writes implied decimals, scales and negates', () => {
    expect(n('12.345', '{ decimals: 2, implied_decimals: true }')).toBe('1235');
    expect(n('0.19', '{ scale: 2 }')).toBe('19');
    expect(n('10', '{ negate: true, decimals: 1 }')).toBe('-10.0');
  });
  it('a value that is not a number is an error pointing at the datapoint', () => {
    const view = annotation({ x: { value: '12,5 EUR', normalized: null } });
    const error = failure('{ field: x, number: { decimals: 2 } }', view);
    expect(error.code).toBe('MAPPING_INVALID_NUMBER');
    expect(error.message).toContain('"12,5 EUR", which is not a number');
    expect(error.location.datapointId).toBe(view.field('x')?.id);
  });
});

describe('dates', () => {
  it('formats ISO dates and timestamps with patterns (UTC)', () => {
    expect(value('{ field: date_issue, date: yyyyMMdd }')).toBe('20240131');
    expect(value('{ field: date_issue, date: dd.MM.yyyy }')).toBe('31.01.2024');
    expect(value('{ meta: confirmed_at, date: "yyyy-MM-dd HH:mm:ss" }')).toBe('2024-02-02 10:15:29');
    const view = annotation({ t: { value: 'x', normalized: '2024-03-31T23:30:00-02:00' } });
    expect(value('{ field: t, date: yyyyMMddHHmm }', view)).toBe('202404010130');
  });
  it('a value that is not a date is an error naming it', () => {
    const error = failure('{ field: d, date: yyyyMMdd }', annotation({ d: { value: '31/02/2024', normalized: null } }));
    expect(error.code).toBe('MAPPING_INVALID_DATE');
    expect(error.message).toContain('"31/02/2024", which is not a date');
  });
  it('an impossible calendar date is refused', () => {
    expect(
      failure('{ field: d, date: yyyyMMdd }', annotation({ d: { value: 'x', normalized: '2024-02-31' } })).code,
    ).toBe('MAPPING_INVALID_DATE');
  });
});

describe('text', () => {
  const view = annotation({ s: '  Hello\n  World\u00a0 ', c: 'eur', e: '' });
  it('trims, collapses whitespace, strips line breaks, changes case', () => {
    expect(value('{ field: s, trim: true, strip_line_breaks: true }', view)).toBe('Hello   World');
    expect(value('{ field: s, collapse_whitespace: true, case: upper }', view)).toBe('HELLO WORLD');
    expect(value('{ field: s, collapse_whitespace: true, case: lower }', view)).toBe('hello world');
  });
  it('pads, truncates, prefixes', () => {
    expect(value('{ field: c, pad: { width: 5, char: "*", align: right } }', view)).toBe('**eur');
    expect(value('{ field: s, collapse_whitespace: true, truncate: 3 }', view)).toBe('Hel');
    expect(value('{ field: c, prefix: "[", suffix: "]" }', view)).toBe('[eur]');
    expect(value('{ field: e, prefix: "[", suffix: "]" }', view)).toBe('');
  });
  it('defaults fill missing and empty values', () => {
    expect(value('{ field: e, default: n/a }', view)).toBe('n/a');
    expect(value('{ field: nope, default: 0 }', view)).toBe('0');
  });
  it('replaces with regular expressions', () => {
    expect(value('{ field: iban, replace: [{ pattern: "\\\\s+", with: "" }] }')).toBe('DE89370400440532013000');
  });
  it('maps values with a fallback, inline or named', () => {
    expect(value('{ field: c, map: { entries: { eur: EUR } } }', view)).toBe('EUR');
    expect(value('{ field: c, map: { entries: { usd: USD }, fallback: XXX } }', view)).toBe('XXX');
    expect(value('{ field: c, map: { entries: { EUR: Euro }, ignore_case: true } }', view)).toBe('Euro');
    expect(value('{ field: c, map: { entries: {}, keep_unmapped: true } }', view)).toBe('eur');
    expect(value('{ field: c, map: cur }', view, 'value_maps: { cur: { entries: { eur: "978" } } }')).toBe('978');
  });
  it('an unmapped value without fallback is an error naming the value and the datapoint', () => {
    const error = failure('{ field: c, map: { entries: { usd: USD } } }', view);
    expect(error.code).toBe('MAPPING_UNMAPPED_VALUE');
    expect(error.message).toContain('"eur"');
    expect(error.location.datapointId).toBe(view.field('c')?.id);
  });
  it('conditionals emit a value only when a field is present or matches', () => {
    expect(value('{ field: c, when: { field: e, present: true } }', view)).toBe('');
    expect(value('{ field: c, when: { field: c, matches: "^e" } }', view)).toBe('eur');
    expect(
      value(
        '{ cases: [{ when: { field: c, in: [usd] }, value: { const: A } }, { when: { field: c, equals: eur }, value: { const: B } }, { value: { const: C } }] }',
        view,
      ),
    ).toBe('B');
    expect(
      value(
        '{ const: yes, when: { all: [{ field: amount_total, gt: 100 }, { not: { field: currency, equals: usd } }] } }',
      ),
    ).toBe('yes');
    expect(
      value('{ const: yes, when: { any: [{ field: amount_total, lte: 100 }, { field: currency, not_equals: eur }] } }'),
    ).toBe('');
  });
});

describe('required fields', () => {
  it('an empty required field is an error pointing at its datapoint id', () => {
    const view = fixture('export-no-line-items');
    const error = failure('{ field: date_due, required: true, label: Due date }', view);
    expect(error.code).toBe('MAPPING_REQUIRED_FIELD');
    expect(error.permanent).toBe(true);
    expect(error.location.datapointId).toBe(314523004);
    expect(error.message).toContain('Due date is required');
  });
  it('a required field missing from the annotation names the schema_id', () => {
    const error = failure('{ field: po_number, required: true }');
    expect(error.location.datapointId).toBeUndefined();
    expect(error.message).toContain('no datapoint with schema_id "po_number"');
  });
  it('a required row field points at the row datapoint', () => {
    const view = annotation({}, [{ code: 'A' }, { code: '' }]);
    const mapping = mappingFrom(`
format: csv
file: { name: out.csv }
csv: { rows: line_items, columns: [{ name: c, value: { row: code, required: true } }] }
`);
    try {
      mapping.render(view);
      throw new Error('expected failure');
    } catch (error) {
      const e = error as BridgeError;
      expect(e.location.datapointId).toBe(view.rows('line_items')[1]?.field('code')?.id);
      expect(e.message).toContain('line_items row 2');
    }
  });
});

describe('line items', () => {
  const view = annotation({}, [
    { code: 'A', qty: '2', price: '1.25', kind: 'goods' },
    { code: 'B', qty: '1', price: '10', kind: 'text' },
    { code: 'C', qty: '3', price: '0.1', kind: 'goods' },
  ]);
  it('iterates rows with 1-based line numbers, filters rows, computes per-row values; aggregates match the rows written', () => {
    const mapping = mappingFrom(`
format: csv
file: { name: out.csv }
tables:
  goods:
    from: line_items
    where: { row: kind, equals: goods }
    vars: { net: { calc: "row.qty * row.price", number: { decimals: 2 } } }
csv:
  rows: goods
  columns:
    - { name: line, value: { line_number: true } }
    - { name: code, value: { row: code } }
    - { name: net, value: { var: net } }
    - { name: lines, value: { count: goods } }
    - { name: total, value: { sum: { rows: goods, of: { var: net } } } }
`);
    expect(text(mapping.render(view).bytes)).toBe('line,code,net,lines,total\n1,A,2.50,2,2.8\n2,C,0.30,2,2.8\n');
  });
});

describe('mapping errors never escape as anything else', () => {
  it('a var that refers to itself is a mapping error, not a stack overflow', () => {
    const error = failure('{ var: a }', undefined, 'vars: { a: { var: b }, b: { var: a } }');
    expect(error.code).toBe('MAPPING_INVALID');
  });
  it('a row var that refers to itself through another is a mapping error naming it; a calc over a bad row value names the row', () => {
    const rows = annotation({}, [
      { code: 'A', qty: '2', price: '1.25', kind: 'goods' },
      { code: 'B', qty: 'two', price: '10', kind: 'goods' },
    ]);
    const rowMapping = (vars: string) =>
      mappingFrom(`
format: csv
file: { name: out.csv }
tables:
  items:
    from: line_items
    vars: ${vars}
csv:
  rows: items
  columns:
    - { name: net, value: { var: net } }
`);
    expect(() => rowMapping('{ net: { var: gross }, gross: { calc: "var.net * 2" } }').render(rows)).toThrow(
      /The value "(net|gross)" refers to itself/,
    );
    expect(() => rowMapping('{ net: { calc: "row.qty * row.price" } }').render(rows)).toThrow(
      'needs row.qty (line_items row 2) to be a number, but it is "two"',
    );
    expect(
      text(
        rowMapping('{ net: { calc: "row.price * 2 - row.price" } }').render(annotation({}, [{ price: '1.25' }])).bytes,
      ),
    ).toBe('net\n1.25\n');
  });
  it('division by zero is a mapping error', () => {
    expect(failure('{ calc: "amount_total / 0" }').code).toBe('MAPPING_CALC');
  });
});

describe('the transform table', () => {
  it('is the one declaration of every step: the published schema lists its keys in step order and the docs state that order', async () => {
    const { TRANSFORMS } = await import('../../src/mapping/transforms.ts');
    const { mappingJsonSchema } = await import('../../src/mapping/docs.ts');
    const valueSchema = (
      mappingJsonSchema().$defs as Record<string, { properties: Record<string, unknown>; description: string }>
    ).Value;
    const keys = Object.keys(valueSchema?.properties ?? {});
    const stepKeys = TRANSFORMS.flatMap((entry) => Object.keys(entry.fields));
    expect(keys.filter((key) => stepKeys.includes(key))).toEqual(stepKeys);
    expect(valueSchema?.description).toContain(
      `${TRANSFORMS.filter((entry) => entry.phase === 'before_default')
        .map((entry) => entry.name)
        .join(', ')}, default, required check, ${TRANSFORMS.filter((entry) => entry.phase === 'after_default')
        .map((entry) => entry.name)
        .join(', ')}`,
    );
  });

  it('runs the steps in table order: before the default, then after it', () => {
    const view = annotation({ a: '  x  ', e: '   ' });
    expect(
      value(
        '{ field: a, trim: true, replace: [{ pattern: "x", with: "ab" }], case: upper, prefix: "<", suffix: ">", truncate: 3, pad: { width: 5, char: "." } }',
        view,
      ),
    ).toBe('<AB..');
    expect(value('{ field: e, trim: true, default: "d", case: upper }', view)).toBe('D');
  });
});
