import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseExportPayload, viewAnnotation, type AnnotationView, type RawNode } from '../../src/annotation/index.ts';
import { loadMappingFile, type LoadedMapping } from '../../src/mapping/index.ts';

export const FIXTURES = join(import.meta.dirname, '..', 'fixtures', 'rossum');

export function fixture(name: 'export-invoice' | 'export-tricky-characters' | 'export-no-line-items'): AnnotationView {
  return viewAnnotation(parseExportPayload(JSON.parse(readFileSync(join(FIXTURES, `${name}.json`), 'utf8'))));
}

/** A mapping written to a temporary folder, as a customer would write it. */
export function mappingFrom(yaml: string, name = 'test-mapping'): LoadedMapping {
  const dir = mkdtempSync(join(tmpdir(), 'mapping-'));
  const path = join(dir, `${name}.yaml`);
  writeFileSync(path, yaml);
  return loadMappingFile(path);
}

/** A CSV of just these columns (YAML list items), unquoted, "|"-separated, no header, no final newline: values as written. */
export function columnsMapping(columns: string): LoadedMapping {
  return mappingFrom(`
format: csv
final_newline: false
file: { name: out.csv }
csv:
  header: false
  quote: ""
  delimiter: "|"
  escape_formulas: false
  columns:
${columns}
`);
}

let nextId = 1000;
/** A small annotation: header datapoints and one `line_items` table. */
export function annotation(
  header: Record<string, string | { value: string; normalized?: string | null }>,
  rows: Array<Record<string, string>> = [],
  table = 'line_items',
): AnnotationView {
  const datapoint = (schemaId: string, v: string | { value: string; normalized?: string | null }): RawNode => {
    const content =
      typeof v === 'string'
        ? { value: v, normalized_value: null }
        : { value: v.value, normalized_value: v.normalized ?? null };
    return { id: nextId++, schema_id: schemaId, category: 'datapoint', content };
  };
  const content: RawNode[] = [
    {
      id: nextId++,
      schema_id: 'header_section',
      category: 'section',
      children: Object.entries(header).map(([k, v]) => datapoint(k, v)),
    },
    {
      id: nextId++,
      schema_id: 'items_section',
      category: 'section',
      children: [
        {
          id: nextId++,
          schema_id: table,
          category: 'multivalue',
          children: rows.map((row) => ({
            id: nextId++,
            schema_id: 'line_item',
            category: 'tuple',
            children: Object.entries(row).map(([k, v]) => datapoint(k, v)),
          })),
        },
      ],
    },
  ];
  return viewAnnotation(
    parseExportPayload({
      request_id: 'r-1',
      action: 'export',
      event: 'annotation_content',
      timestamp: '2024-02-02T10:15:30Z',
      annotation: { id: 77, content },
    }),
  );
}

export const text = (bytes: Buffer): string => bytes.toString('utf8');
