import type { ExportPayload, RawNode } from '../annotation/index.ts';

/**
 * `init`: a starter mapping that lists every datapoint of a sample payload (header fields and the
 * columns of every table) in the chosen format, with a test case for that payload. It is meant to be
 * edited: renamed, trimmed to what the ERP reads, given date and number formats.
 */

export const STARTER_FORMATS = ['xml', 'csv', 'fixed', 'edifact'] as const;
export type StarterFormat = (typeof STARTER_FORMATS)[number];

interface Sampled {
  id: string;
  /** Longest text seen (value or normalized value), in UTF-8 bytes: a first guess at fixed widths. */
  bytes: number;
}

interface SampledTable {
  id: string;
  rowName: string;
  columns: Sampled[];
}

export interface PayloadOutline {
  header: Sampled[];
  tables: SampledTable[];
}

function widthOf(node: RawNode): number {
  const texts = [node.content?.value ?? '', node.content?.normalized_value ?? ''].map((text) =>
    text.replace(/\r\n|\r|\n/g, ' '),
  );
  return Math.max(...texts.map((text) => Buffer.byteLength(text, 'utf8')));
}

function remember(list: Sampled[], node: RawNode): void {
  const known = list.find((entry) => entry.id === node.schema_id);
  if (known) known.bytes = Math.max(known.bytes, widthOf(node));
  else list.push({ id: node.schema_id, bytes: widthOf(node) });
}

/** Header datapoints and tables of a payload, in document order, each once. */
export function outlinePayload(payload: ExportPayload): PayloadOutline {
  const outline: PayloadOutline = { header: [], tables: [] };
  const walk = (nodes: RawNode[], table: SampledTable | undefined): void => {
    for (const node of nodes) {
      if (node.category === 'multivalue') {
        let entry = outline.tables.find((t) => t.id === node.schema_id);
        if (!entry) {
          entry = { id: node.schema_id, rowName: node.children?.[0]?.schema_id ?? 'row', columns: [] };
          outline.tables.push(entry);
        }
        for (const child of node.children ?? []) {
          if (child.category === 'datapoint') remember(entry.columns, child);
          else walk(child.children ?? [], entry);
        }
      } else if (node.category === 'datapoint') remember(table ? table.columns : outline.header, node);
      else walk(node.children ?? [], table);
    }
  };
  walk(payload.annotation.content, undefined);
  return outline;
}

const PLAIN = /^[A-Za-z_][\w.-]*$/;

/** A YAML scalar: plain when safe, else a JSON string (which YAML reads the same). */
function scalar(text: string): string {
  return PLAIN.test(text) && !['true', 'false', 'null', 'yes', 'no', 'on', 'off'].includes(text.toLowerCase())
    ? text
    : JSON.stringify(text);
}

function xmlName(id: string): string {
  const cleaned = id.replace(/[^\p{L}\p{N}_.-]/gu, '_');
  return /^[\p{L}_]/u.test(cleaned) ? cleaned : `_${cleaned}`;
}

function xmlBody(outline: PayloadOutline): string[] {
  const lines = [
    'xml:',
    '  root:',
    '    element: Document',
    '    children:',
    '      - element: Header',
    '        children:',
  ];
  for (const { id } of outline.header)
    lines.push(`          - { element: ${scalar(xmlName(id))}, value: { field: ${scalar(id)} } }`);
  for (const table of outline.tables) {
    lines.push(
      `      - element: ${scalar(xmlName(table.id))}`,
      '        children:',
      `          - element: ${scalar(xmlName(table.rowName))}`,
      `            repeat: ${scalar(table.id)}`,
      '            children:',
    );
    for (const { id } of table.columns)
      lines.push(`              - { element: ${scalar(xmlName(id))}, value: { row: ${scalar(id)} } }`);
  }
  return lines;
}

function mainTable(outline: PayloadOutline): SampledTable | undefined {
  return (
    outline.tables.find((table) => table.id === 'line_items') ??
    [...outline.tables].sort((a, b) => b.columns.length - a.columns.length)[0]
  );
}

function csvBody(outline: PayloadOutline): string[] {
  const table = mainTable(outline);
  const lines = ['csv:', '  delimiter: ";"'];
  if (table) lines.push(`  rows: ${scalar(table.id)}`, '  no_rows: document_row');
  lines.push('  columns:');
  for (const { id } of outline.header) lines.push(`    - { name: ${scalar(id)}, value: { field: ${scalar(id)} } }`);
  for (const { id } of table?.columns ?? []) lines.push(`    - { name: ${scalar(id)}, value: { row: ${scalar(id)} } }`);
  for (const other of outline.tables.filter((t) => t !== table)) {
    lines.push(
      `  # Table ${other.id} is not in this CSV (one table per file): ${other.columns.map((c) => c.id).join(', ')}.`,
    );
    lines.push(`  # Add its totals as columns, e.g. { name: ${other.id}_count, value: { count: ${other.id} } }.`);
  }
  return lines;
}

function fixedBody(outline: PayloadOutline): string[] {
  const field = (id: string, source: 'field' | 'row', bytes: number): string =>
    `        - { name: ${scalar(id)}, width: ${Math.max(bytes, 10)}, value: { ${source}: ${scalar(id)}, strip_line_breaks: true } }`;
  const lines = ['fixed:', '  records:'];
  if (outline.header.length > 0) {
    lines.push('    - name: header', '      fields:', '        - { name: record_type, width: 1, value: { const: H } }');
    for (const { id, bytes } of outline.header) lines.push(field(id, 'field', bytes));
  }
  for (const [i, table] of outline.tables.entries()) {
    lines.push(
      `    - name: ${scalar(table.rowName)}`,
      `      rows: ${scalar(table.id)}`,
      '      fields:',
      `        - { name: record_type, width: 1, value: { const: "${i + 1}" } }`,
    );
    for (const { id, bytes } of table.columns) lines.push(field(id, 'row', bytes));
  }
  return lines;
}

/** One free-text segment per datapoint: FTX+ZZZ+++schema_id:value. */
function edifactText(id: string, source: 'field' | 'row', indent: string): string {
  return `${indent}- { segment: FTX, elements: [ZZZ, "", "", [{ const: ${scalar(id)} }, { ${source}: ${scalar(id)}, collapse_whitespace: true }]] }`;
}

function edifactBody(outline: PayloadOutline): string[] {
  const lines = [
    'edifact:',
    '  # UNOC (ISO 8859-1) with transliteration: any payload text renders. Use UNOA/UNOB if the partner asks.',
    '  syntax: UNOC',
    '  syntax_version: 3',
    '  una: true',
    '  segment_newline: true',
    '  # The interchange partners: replace these placeholders, e.g. { route: edi_sender_gln, required: true }.',
    '  sender: { id: SENDER, qualifier: ZZZ }',
    '  recipient: { id: RECIPIENT, qualifier: ZZZ }',
    '  interchange_reference: "{meta.annotation_id}"',
    '  message: { type: INVOIC, version: D, release: 96A, agency: UN }',
    '  segments:',
    '    # Every header datapoint as free text (FTX ZZZ: schema_id, value); replace with BGM, DTM, RFF, NAD, MOA ...',
  ];
  for (const { id } of outline.header) lines.push(edifactText(id, 'field', '    '));
  for (const table of outline.tables) {
    lines.push(
      `    # One LIN group per row of ${table.id}, each column as free text.`,
      `    - group: ${scalar(table.id)}`,
      `      repeat: ${scalar(table.id)}`,
      '      segments:',
      '        - { segment: LIN, elements: [{ line_number: true }] }',
    );
    for (const { id } of table.columns) lines.push(edifactText(id, 'row', '        '));
  }
  return lines;
}

const BODIES: Record<StarterFormat, (outline: PayloadOutline) => string[]> = {
  xml: xmlBody,
  csv: csvBody,
  fixed: fixedBody,
  edifact: edifactBody,
};

const EXTENSIONS: Record<StarterFormat, string> = { xml: 'xml', csv: 'csv', fixed: 'txt', edifact: 'edi' };

export interface StarterOptions {
  name: string;
  format: StarterFormat;
  /** The sample payload, relative to the mapping file. */
  payloadPath: string;
  /** Expected output for the test case, relative to the mapping file. */
  expectedPath: string;
  /** The file name the test expects; left out until known. */
  fileName?: string | undefined;
}

export function starterFileExtension(format: StarterFormat): string {
  return EXTENSIONS[format];
}

/** The text of a starter mapping (YAML with comments). */
export function starterMapping(payload: ExportPayload, options: StarterOptions): string {
  const outline = outlinePayload(payload);
  const { name, format } = options;
  const body = BODIES[format](outline);
  const lines = [
    `# Starter mapping written by \`rossum-sftp-bridge init\` from ${options.payloadPath}:`,
    "# every datapoint of that payload once (header fields, then each table's columns). Rename, drop what the",
    '# ERP does not read, add date/number formats (docs/mappings.md), then run `check` and `test`;',
    '# `test --update` rewrites the expected output after a deliberate change.',
    `description: Starter ${format} mapping "${name}"`,
    `format: ${format}`,
    ...(format === 'edifact' ? ['encoding: iso-8859-1', 'unencodable: transliterate'] : ['encoding: utf-8']),
    `file: { name: ${JSON.stringify(`${name}_{meta.annotation_id}.${EXTENSIONS[format]}`)} }`,
    ...body,
    'tests:',
    `  - name: ${JSON.stringify(`renders ${options.payloadPath.split('/').pop() ?? options.payloadPath}`)}`,
    `    payload: ${JSON.stringify(options.payloadPath)}`,
    '    expect:',
    ...(options.fileName === undefined ? [] : [`      file_name: ${JSON.stringify(options.fileName)}`]),
    `      output_file: ${JSON.stringify(options.expectedPath)}`,
  ];
  return `${lines.join('\n')}\n`;
}
