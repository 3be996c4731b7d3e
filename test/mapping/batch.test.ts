import { describe, expect, it } from 'vitest';
import { ConfigFileError } from '../../src/config-loading/index.ts';
import { nextLocalTime } from '../../src/mapping/batch.ts';
import type { BatchEntry } from '../../src/mapping/index.ts';
import { annotation, mappingFrom } from './helpers.ts';

const doc = (number: string, total: string, lines: string[] = ['1']) =>
  annotation(
    { document_id: number, amount_total: { value: total, normalized: total } },
    lines.map((amount) => ({ item_amount: amount })),
  );
const frame = { number: 7, openedAt: new Date('2026-11-30T10:00:00Z'), closedAt: new Date('2026-11-30T10:15:00Z') };

function problems(yaml: string): string[] {
  try {
    mappingFrom(yaml);
    return [];
  } catch (error) {
    if (!(error instanceof ConfigFileError)) throw error;
    return error.diagnostics.map((d) => `${d.line}:${d.key}: ${d.message}`);
  }
}

describe('batch forms of the formats', () => {
  it('XML: one root element per document under the batch root, which carries the namespaces and the declaration', () => {
    const mapping = mappingFrom(`
format: xml
file: { name: "BATCH_{batch:3}.xml" }
batch: { every: 15m, root: "b:Invoices" }
xml:
  namespaces: { b: "urn:batch", "": "urn:inv" }
  root:
    element: Invoice
    children:
      - { element: Number, value: { field: document_id } }
`);
    const entries = [doc('A-1', '10'), doc('A-2', '20')].map((view) => mapping.renderBatchEntry(view) as BatchEntry);
    expect(entries.map((e) => e.records)).toEqual([1, 1]);
    const file = mapping.renderBatch(entries, frame);
    expect(file.fileName).toBe('BATCH_007.xml');
    expect(file.bytes.toString('utf8')).toBe(
      '<?xml version="1.0" encoding="UTF-8"?>\n<b:Invoices xmlns:b="urn:batch" xmlns="urn:inv">\n' +
        '  <Invoice>\n    <Number>A-1</Number>\n  </Invoice>\n' +
        '  <Invoice>\n    <Number>A-2</Number>\n  </Invoice>\n</b:Invoices>\n',
    );
  });

  it('fixed width: one header and trailer around every document, with counts and totals over the batch', () => {
    const mapping = mappingFrom(`
format: fixed
file: { name: "FB{batch:5}.DAT" }
batch:
  at: "18:00"
  timezone: Europe/Prague
  totals:
    gross: { field: amount_total }
  header:
    name: batch header
    fields:
      - { name: type, width: 2, value: { const: BH } }
      - { name: number, width: 6, pad: "0", align: right, value: "{batch}" }
      - { name: closed, width: 8, value: { meta: batch_closed_at, date: yyyyMMdd } }
  trailer:
    name: batch trailer
    fields:
      - { name: type, width: 2, value: { const: BT } }
      - { name: documents, width: 4, pad: "0", align: right, value: { meta: batch_documents } }
      - { name: records, width: 4, pad: "0", align: right, value: { meta: batch_records } }
      - { name: gross, width: 12, value: { meta: batch_total.gross, number: { decimals: 2 } } }
fixed:
  records:
    - name: document
      fields:
        - { name: type, width: 2, value: { const: D1 } }
        - { name: number, width: 10, value: { field: document_id } }
    - name: line
      rows: line_items
      fields:
        - { name: type, width: 2, value: { const: L1 } }
        - { name: amount, width: 6, align: right, value: { row: item_amount } }
`);
    const entries = [doc('A-1', '10.50', ['1', '2']), doc('A-2', '0.25')].map(
      (view) => mapping.renderBatchEntry(view) as BatchEntry,
    );
    expect(entries.map((e) => [e.records, e.totals])).toEqual([
      [3, { gross: '10.5' }],
      [2, { gross: '0.25' }],
    ]);
    const file = mapping.renderBatch(entries, frame);
    expect(file.fileName).toBe('FB00007.DAT');
    expect(file.bytes.toString('utf8')).toBe(
      [
        'BH00000720261130',
        'D1A-1       ',
        'L1     1',
        'L1     2',
        'D1A-2       ',
        'L1     1',
        'BT00020005       10.75',
        '',
      ].join('\n'),
    );
  });

  it('meta.batch* in a document record is refused with the place named (known only for the batch as a whole)', () => {
    const mapping = mappingFrom(`
format: csv
file: { name: "B_{batch}.csv" }
batch: { every: 1h }
csv:
  columns:
    - { name: n, value: { meta: batch_documents } }
`);
    expect(() => mapping.renderBatchEntry(doc('A-1', '1'))).toThrow(
      /column "n" of record 1: meta.batch_documents is known only for the batch as a whole/,
    );
  });
});

describe('batch: is validated with file:line', () => {
  const csv = (batch: string, name = 'B_{batch}.csv') => `format: csv
file: { name: "${name}" }
batch: ${batch}
csv:
  columns:
    - { name: n, value: { field: document_id } }
`;
  it('names each problem at its key', () => {
    expect(problems(csv('{ max_documents: 5 }'))).toEqual(['3:batch: a batch needs a time to close']);
    expect(problems(csv('{ every: 15m, at: "18:00" }'))).toEqual([
      '3:batch.at: every: and at: both set; a batch closes on one schedule',
    ]);
    expect(problems(csv('{ at: "18:00", timezone: Mars/Olympus }'))).toEqual([
      '3:batch.timezone: unknown time zone "Mars/Olympus"',
    ]);
    expect(problems(csv('{ every: 15x }'))[0]).toMatch(/^3:batch.every: .*a period such as 30s, 15m, 1h or 1d/);
    expect(problems(csv('{ every: 0s }'))).toEqual(['3:batch.every: the period must be between 1s and 31d, not 0s']);
    expect(problems(csv('{ every: 1h, header: { name: h, fields: [{ name: a, width: 1, value: x }] } }'))).toEqual([
      '3:batch.header: header is for fixed-width batches (CSV has its header row, XML its root)',
    ]);
    expect(problems(csv('{ every: 1h }', 'B_{document_id}.csv'))).toEqual([
      '2:file.name: a batch file holds many documents, so its name cannot read document fields',
    ]);
    expect(problems(csv('{ every: 1h, totals: { gross: { meta: batch_total.net } } }'))).toEqual([
      '3:batch.totals.gross.meta: "batch_total.net" reads a batch total that batch.totals does not declare',
    ]);
  });
});

describe('batch schedule', () => {
  it('every: closes on whole multiples of the period; at: the next local time, across daylight saving time', () => {
    const mapping = mappingFrom(`
format: csv
file: { name: "B_{batch}.csv" }
batch: { every: 15m }
csv: { columns: [{ name: n, value: { field: document_id } }] }
`);
    expect(new Date(mapping.batch?.closesAt(Date.parse('2026-11-30T10:07:12Z')) as number).toISOString()).toBe(
      '2026-11-30T10:15:00.000Z',
    );
    expect(new Date(mapping.batch?.closesAt(Date.parse('2026-11-30T10:15:00Z')) as number).toISOString()).toBe(
      '2026-11-30T10:30:00.000Z',
    );
    const prague = (after: string) =>
      new Date(nextLocalTime(Date.parse(after), '18:00', 'Europe/Prague')).toISOString();
    expect(prague('2026-11-30T10:00:00Z')).toBe('2026-11-30T17:00:00.000Z'); // CET
    expect(prague('2026-11-30T17:00:00Z')).toBe('2026-12-01T17:00:00.000Z');
    expect(prague('2026-03-28T17:30:00Z')).toBe('2026-03-29T16:00:00.000Z'); // the night CEST begins
    expect(prague('2026-10-24T16:30:00Z')).toBe('2026-10-25T17:00:00.000Z'); // the night CET returns
    expect(new Date(nextLocalTime(Date.parse('2026-03-29T00:00:00Z'), '02:30', 'Europe/Prague')).toISOString()).toBe(
      '2026-03-29T01:30:00.000Z', // 02:30 does not exist that night: an hour later on the wall clock
    );
  });
});
