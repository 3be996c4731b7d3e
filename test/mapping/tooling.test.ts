import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigFileError } from '../../src/config-loading/index.ts';
import { checkMappingFile, loadMappings, mappingJsonSchemaForTests } from './tooling-support.ts';
import { FIXTURES } from './helpers.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const CLI = join(ROOT, 'bin', 'rossum-sftp-bridge');

function dirWith(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'mappings-'));
  for (const [name, content] of Object.entries(files)) writeFileSync(join(dir, name), content);
  return dir;
}

const broken = `format: xml
file: { name: "x.xml" }
encoding: windows-1253x
xml:
  root:
    element: inv:Invoice
    children:
      - element: A
        valeu: { field: x }
      - element: B
        value: { field: x, map: currencies }
value_maps:
  currency: { entries: { eur: EUR } }
`;

describe('check', () => {
  it('reports every problem with file:line:column, the key, what was expected and a hint', () => {
    const dir = dirWith({ 'broken.yaml': broken });
    const diagnostics = checkMappingFile(join(dir, 'broken.yaml'));
    const lines = diagnostics.map((d) => `${d.line}:${d.column} ${d.key}: ${d.message}${d.hint ? ` (${d.hint})` : ''}`);
    expect(lines).toEqual(['9:9 xml.root.children[0].valeu: unknown key "valeu" (did you mean "value"?)']);
  });

  it('semantic problems are reported at their keys once the file is valid', () => {
    const dir = dirWith({ 'semantic.yaml': broken.replace('valeu', 'value') });
    const lines = checkMappingFile(join(dir, 'semantic.yaml')).map(
      (d) => `${d.line}:${d.column} ${d.key}: ${d.message}${d.hint ? ` (${d.hint})` : ''}`,
    );
    expect(lines).toEqual([
      '3:11 encoding: unknown encoding "windows-1253x" (e.g. utf-8, windows-1252, iso-8859-15, cp850 (any iconv-lite name))',
      '6:14 xml.root.element: namespace prefix "inv" is not declared (add it under xml.namespaces (declared: xml))',
      '11:33 xml.root.children[1].value.map: unknown value map "currencies" (defined maps: currency)',
    ]);
  });

  it('catches a required value without a source, overlapping fixed fields, unknown vars and bad date patterns', () => {
    const dir = dirWith({
      'f.yaml': `format: fixed
file: { name: x }
fixed:
  records:
    - name: H
      fields:
        - { name: a, width: 4, value: { required: true } }
        - { name: b, start: 2, width: 2, value: { var: nope } }
        - { name: c, width: 8, value: { field: d, date: YYYYmmdd } }
`,
    });
    const messages = checkMappingFile(join(dir, 'f.yaml')).map((d) => `${d.key}: ${d.message}`);
    expect(messages).toContain('fixed.records[0].fields[0].value: a value needs a source');
    expect(messages).toContain(
      'fixed.records[0].fields[1].start: field "b" starts at 2 but "a" already uses bytes up to 4',
    );
    expect(messages).toContain('fixed.records[0].fields[1].value.var: unknown var "nope"');
    expect(messages.some((m) => m.startsWith('fixed.records[0].fields[2].value.date: invalid date pattern'))).toBe(
      true,
    );
  });

  it('loadMappings lists every broken file in one error', () => {
    const dir = dirWith({
      'a.yaml': broken,
      'b.yaml': 'format: csv\nfile: {name: x}\ncsv: {columns: []}\n',
      'ok.yaml': 'format: csv\nfile: {name: x}\ncsv: {columns: [{name: a, value: "1"}]}\n',
    });
    try {
      loadMappings(dir);
      throw new Error('expected failure');
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigFileError);
      const files = new Set((error as ConfigFileError).diagnostics.map((d) => d.file.split('/').pop()));
      expect([...files].sort()).toEqual(['a.yaml', 'b.yaml']);
    }
  });

  it('the shipped mappings pass check, and the published JSON Schema is up to date', () => {
    const result = spawnSync(CLI, ['check', join(ROOT, 'mappings')], { encoding: 'utf8' });
    expect(result.stdout).toContain('no problems');
    expect(result.status).toBe(0);
    expect(JSON.parse(readFileSync(join(ROOT, 'schema', 'mapping.schema.json'), 'utf8'))).toEqual(
      mappingJsonSchemaForTests(),
    );
  });

  it('the CLI exits 1 and prints file:line:column for a broken mapping', () => {
    const dir = dirWith({ 'broken.yaml': broken });
    const result = spawnSync(CLI, ['check', join(dir, 'broken.yaml')], { encoding: 'utf8' });
    expect(result.status).toBe(1);
    expect(result.stdout).toContain(
      `${join(dir, 'broken.yaml')}:9:9: xml.root.children[0].valeu: unknown key "valeu" (hint: did you mean "value"?)`,
    );
  });
});

describe('render', () => {
  it('prints the bytes exactly as uploaded, or JSON with the file name and base64 content', () => {
    const raw = execFileSync(CLI, [
      'render',
      '--mapping',
      'datev-csv',
      join(FIXTURES, 'export-no-line-items.json'),
      '--mappings',
      join(ROOT, 'mappings'),
    ]);
    expect(raw.equals(readFileSync(join(ROOT, 'mappings', 'expected', 'datev-csv', 'no-line-items.csv')))).toBe(true);
    expect(raw.includes(Buffer.from('Gegenkonto (ohne BU-Schl\xfcssel)', 'latin1'))).toBe(true);
    const json = JSON.parse(
      execFileSync(
        CLI,
        ['render', '--mapping', 'generic-xml', '--json', join(FIXTURES, 'export-tricky-characters.json')],
        { cwd: ROOT, encoding: 'utf8' },
      ),
    );
    expect(json.file).toBe('INV_R&D_2024_01__314522~51860355.xml');
    expect(json.encoding).toBe('utf-8');
    expect(
      Buffer.from(json.contentBase64, 'base64').equals(
        readFileSync(join(ROOT, 'mappings', 'expected', 'generic-xml', 'tricky-characters.xml')),
      ),
    ).toBe(true);
  });

  it('--explain names the datapoint behind every output value', () => {
    const out = execFileSync(
      CLI,
      ['render', '--mapping', 'as400-fixed', '--explain', join(FIXTURES, 'export-invoice.json')],
      { cwd: ROOT, encoding: 'utf8' },
    );
    expect(out).toContain(
      'record 1 "header" field "invoice_number" = "INV-2024-00417"  ← document_id (datapoint 314521025)',
    );
    expect(out).toContain(
      '(line_items row 2) field "amount" = "2400"  ← line_items row 2: item_amount_total (datapoint 314521015)',
    );
  });

  it('a missing required field exits 1 with the message and the datapoint id', () => {
    const dir = dirWith({
      'm.yaml':
        'format: csv\nfile: {name: x}\ncsv: {columns: [{name: due, value: {field: date_due, required: true}}]}\n',
    });
    const result = spawnSync(
      CLI,
      ['render', '--mapping', join(dir, 'm.yaml'), join(FIXTURES, 'export-no-line-items.json')],
      { encoding: 'utf8' },
    );
    expect(result.status).toBe(1);
    expect(result.stderr).toContain('MAPPING_REQUIRED_FIELD');
    expect(result.stderr).toContain('[datapoint 314523004]');
  });
});

describe('test', () => {
  it("runs the shipped mappings' test cases", () => {
    const result = spawnSync(CLI, ['test'], { cwd: ROOT, encoding: 'utf8' });
    expect(result.stdout).toMatch(/\n26 passed, 0 failed/);
    expect(result.status).toBe(0);
  });

  it('shows a unified diff and exits 1 when the output changed', () => {
    const dir = mkdtempSync(join(tmpdir(), 'mapping-test-'));
    cpSync(join(ROOT, 'mappings'), join(dir, 'mappings'), { recursive: true });
    cpSync(join(ROOT, 'test', 'fixtures'), join(dir, 'test', 'fixtures'), { recursive: true });
    const expected = join(dir, 'mappings', 'expected', 'generic-csv', 'invoice.csv');
    writeFileSync(expected, readFileSync(expected, 'utf8').replace('Hex nuts M8', 'Hex nuts M10'));
    const result = spawnSync(CLI, ['test', 'generic-csv', '--mappings', join(dir, 'mappings')], { encoding: 'utf8' });
    expect(result.status).toBe(1);
    expect(result.stdout).toContain('FAIL generic-csv › plain invoice');
    expect(result.stdout).toContain(
      '-INV-2024-00417,2024-01-31,2024-03-01,EUR,Müller & Söhne GmbH,DE123456789,165.41,2,B-220,Hex nuts M10,200,pcs,0.12,24.00␍␊',
    );
    expect(result.stdout).toContain(
      '+INV-2024-00417,2024-01-31,2024-03-01,EUR,Müller & Söhne GmbH,DE123456789,165.41,2,B-220,Hex nuts M8,200,pcs,0.12,24.00␍␊',
    );
  });

  it('expected errors: a test passes when rendering fails with the expected message', () => {
    const dir = dirWith({
      'm.yaml': `format: csv
file: {name: x}
csv: {columns: [{name: due, value: {field: date_due, required: true}}]}
tests:
  - name: due date is required
    payload: ${join(FIXTURES, 'export-no-line-items.json')}
    expect: { errors: ["is required", "datapoint 314523004"] }
`,
    });
    const result = spawnSync(CLI, ['test', join(dir, 'm.yaml')], { encoding: 'utf8' });
    expect(result.stdout).toContain('ok   m › due date is required');
    expect(result.status).toBe(0);
  });
});
