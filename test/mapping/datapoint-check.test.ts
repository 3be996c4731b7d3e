import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { catalogueFromSchema, checkMapping } from '../../src/mapping/index.ts';
import { FIXTURES } from './helpers.ts';
import { readFileSync } from 'node:fs';

const ROOT = join(import.meta.dirname, '..', '..');
const SCHEMA_FILE = join(FIXTURES, 'schemas', 'queue-8236-schema.json');
const schema = catalogueFromSchema(JSON.parse(readFileSync(SCHEMA_FILE, 'utf8')), 'queue-8236-schema.json');

function mappingFile(yaml: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'datapoints-'));
  const path = join(dir, 'customer.yaml');
  writeFileSync(path, yaml);
  return path;
}

const lines = (
  diagnostics: Array<{ line: number; column: number; key: string; message: string; hint?: string }>,
): string[] => diagnostics.map((d) => `${d.line}:${d.column} ${d.key}: ${d.message}${d.hint ? ` (${d.hint})` : ''}`);

// The three planted mistakes of issue 13: a misspelled datapoint, dd.mm.yyyy, a header/line-item mix-up.
const planted = `format: csv
file: { name: "INV_{document_id}.csv" }
csv:
  rows: line_items
  columns:
    - { name: vat, value: { field: sender_vat } }
    - { name: date, value: { field: date_issue, date: dd.mm.yyyy } }
    - { name: text, value: { row: item_descripton } }
    - { name: qty, value: { field: item_quantity } }
    - { name: total, value: { row: amount_total } }
    - { name: ok, value: "{row.item_code} / {sender_name}" }
`;

describe('check with a queue schema', () => {
  it('reports each planted mistake at file:line:column with a hint', () => {
    const { errors } = checkMapping(mappingFile(planted), { schema });
    expect(lines(errors)).toEqual([
      '6:36 csv.columns[0].value.field: header field "sender_vat" is not in schema 223 (queue-8236-schema.json) (did you mean "sender_vat_id"?)',
      '7:55 csv.columns[1].value.date: invalid date pattern "dd.mm.yyyy": "mm" is minutes, and the pattern has no hours (use MM for the month (mm is minutes, as in HH:mm))',
      '8:35 csv.columns[2].value.row: column "item_descripton" of table "line_items" is not in schema 223 (queue-8236-schema.json) (did you mean "item_description"?)',
      '9:36 csv.columns[3].value.field: "item_quantity" is a line-item column of "line_items", not a header field (read it per row with {row: item_quantity} under repeat/rows: line_items, or add it up with {sum: line_items.item_quantity})',
      '10:36 csv.columns[4].value.row: "amount_total" is a header field, not a line-item column of "line_items" (read it with {field: amount_total})',
    ]);
  });

  it('checks table names, templates, calc, sums and conditions too', () => {
    const { errors } = checkMapping(
      mappingFile(`format: xml
file: { name: "x.xml" }
vars:
  net: { calc: "amount_total_bse - 1" }
  n: { sum: line_items.item_amount_totl }
xml:
  root:
    element: Invoice
    children:
      - { element: Id, value: "{document_idd}" }
      - element: Line
        repeat: line_item
        when: { row: item_cod, present: true }
        value: { row: item_code }
`),
      { schema },
    );
    expect(lines(errors)).toEqual([
      '4:16 vars.net.calc: header field "amount_total_bse" is not in schema 223 (queue-8236-schema.json) (did you mean "amount_total_base"?)',
      '5:13 vars.n.sum: column "item_amount_totl" of table "line_items" is not in schema 223 (queue-8236-schema.json) (did you mean "item_amount_total"?)',
      '10:31 xml.root.children[0].value: header field "document_idd" is not in schema 223 (queue-8236-schema.json) (did you mean "document_id"?)',
      '12:17 xml.root.children[1].repeat: table "line_item" is not in schema 223 (queue-8236-schema.json) (did you mean "line_items"?)',
      '13:22 xml.root.children[1].when.row: column "item_cod" of table "line_item" is not in schema 223 (queue-8236-schema.json) (did you mean "item_code"?)',
    ]);
  });

  it('the shipped mappings name only datapoints of the queue schema', () => {
    for (const name of ['generic-xml', 'generic-csv', 'datev-csv', 'sap-idoc-xml', 'as400-fixed']) {
      const { errors } = checkMapping(join(ROOT, 'mappings', `${name}.yaml`), { schema });
      expect(lines(errors), name).toEqual([]);
    }
  });

  it('a file that is not a Rossum schema is refused with the reason', () => {
    expect(() => catalogueFromSchema({ results: [] }, 'queues.json')).toThrow(/queues\.json: not a Rossum schema/);
  });
});

describe('check without a schema', () => {
  it("warns about datapoints the mapping's own test payloads do not have, and does not fail", () => {
    const path = mappingFile(`${planted.replace('dd.mm.yyyy', 'dd.MM.yyyy')}tests:
  - name: invoice
    payload: ${join(FIXTURES, 'export-invoice.json')}
    expect: { file_name: INV_INV-2024-00417.csv }
`);
    const { errors, warnings } = checkMapping(path);
    expect(errors).toEqual([]);
    expect(lines(warnings)).toEqual([
      '6:36 csv.columns[0].value.field: header field "sender_vat" is not in the test payloads (did you mean "sender_vat_id"?)',
      '8:35 csv.columns[2].value.row: column "item_descripton" of table "line_items" is not in the test payloads (did you mean "item_description"?)',
      '9:36 csv.columns[3].value.field: "item_quantity" is a line-item column of "line_items", not a header field (read it per row with {row: item_quantity} under repeat/rows: line_items, or add it up with {sum: line_items.item_quantity})',
      '10:36 csv.columns[4].value.row: "amount_total" is a header field, not a line-item column of "line_items" (read it with {field: amount_total})',
    ]);
  });

  it('says the names were not checked when there is neither a schema nor a test payload', () => {
    const { warnings } = checkMapping(
      mappingFile('format: csv\nfile: {name: x}\ncsv: {columns: [{name: a, value: {field: a}}]}\n'),
    );
    expect(lines(warnings)).toEqual([
      '1:1 : datapoint names not checked: no queue schema given and the mapping has no test payloads (check --schema SCHEMA.json (get it with: rossum-sftp-bridge schema pull --queue ID))',
    ]);
  });
});

describe('check --schema on the command line', () => {
  it('exits 1 and prints every planted mistake as file:line:column', () => {
    const path = mappingFile(planted);
    const result = spawnSync(join(ROOT, 'bin', 'rossum-sftp-bridge'), ['check', '--schema', SCHEMA_FILE, path], {
      encoding: 'utf8',
    });
    expect(result.status).toBe(1);
    expect(result.stdout).toContain(
      `${path}:6:36: csv.columns[0].value.field: header field "sender_vat" is not in schema 223`,
    );
    expect(result.stdout).toContain(`${path}:7:55: csv.columns[1].value.date: invalid date pattern "dd.mm.yyyy"`);
    expect(result.stdout).toContain(
      `${path}:9:36: csv.columns[3].value.field: "item_quantity" is a line-item column of "line_items", not a header field`,
    );
    expect(result.stdout).toContain('5 problem(s) in 1 of 1 file(s)');
  }, 120_000);
});
