import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseExportPayload, viewAnnotation, type AnnotationView, type RawNode } from '../../src/annotation/index.ts';

const FIXTURE = join(import.meta.dirname, '..', 'fixtures', 'rossum', 'export-invoice.json');

/**
 * The realistic invoice with its first line item repeated `lines` times, each copy with its own code,
 * quantity and amount, and a description that needs escaping (`& < > "`) and transliteration (`–`).
 */
export function bigInvoice(lines: number): AnnotationView {
  const payload = JSON.parse(readFileSync(FIXTURE, 'utf8')) as { annotation: { content: RawNode[] } };
  let id = 900_000_000;
  const table = payload.annotation.content
    .flatMap((section) => section.children ?? [])
    .find((node) => node.schema_id === 'line_items') as RawNode;
  const template = (table.children ?? [])[0] as RawNode;
  table.children = Array.from({ length: lines }, (_, i) => ({
    ...template,
    id: id++,
    children: (template.children ?? []).map((datapoint) => {
      const content = { ...datapoint.content };
      if (datapoint.schema_id === 'item_code') content.value = `ART-${i + 1}`;
      if (datapoint.schema_id === 'item_description')
        content.value = `Item ${i + 1} – Schraube & Mutter <M8> "verzinkt"`;
      if (datapoint.schema_id === 'item_quantity') content.normalized_value = content.value = String((i % 17) + 1);
      if (datapoint.schema_id === 'item_amount_total') content.normalized_value = (((i % 97) + 1) * 1.25).toFixed(2);
      return { ...datapoint, id: id++, content };
    }),
  }));
  return viewAnnotation(parseExportPayload(payload));
}
