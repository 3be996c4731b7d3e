import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fixture, repoRoot } from './bridge.ts';

/** A shipped mapping without its test cases, with its `batch:` block (and file name) replaced. */
export function batchMappingFrom(shipped: string, batch: Record<string, unknown>, fileName?: string): string {
  let text = readFileSync(join(repoRoot, 'mappings', shipped), 'utf8');
  text = text.slice(0, text.indexOf('\ntests:'));
  text = text.replace(/\nbatch:\n(?: {2}.*\n)+/, '\n');
  if (fileName) text = text.replace(/\n {2}name: .*\n/, `\n  name: "${fileName}"\n`);
  return `${text}\nbatch: ${JSON.stringify(batch)}\n`;
}

export function writeMappings(dir: string, mappings: Record<string, string>): string {
  mkdirSync(dir, { recursive: true });
  for (const [name, text] of Object.entries(mappings)) writeFileSync(join(dir, `${name}.yaml`), text);
  return dir;
}

/** The invoice fixture as annotation `annotationId` in queue `queueId`, its document number `documentId`. */
export function batchPayload(annotationId: number, queueId: number, documentId: string): Record<string, unknown> {
  const payload = fixture('export-invoice.json');
  const annotation = payload.annotation as { id: number; queue: string; content: unknown[] };
  annotation.id = annotationId;
  annotation.queue = annotation.queue.replace(/\/queues\/\d+$/, `/queues/${queueId}`);
  const walk = (node: { schema_id: string; category: string; children?: unknown[]; content?: { value: string } }) => {
    if (node.category === 'datapoint' && node.schema_id === 'document_id' && node.content)
      node.content.value = documentId;
    for (const child of (node.children ?? []) as Array<typeof node>) walk(child);
  };
  for (const section of annotation.content as Array<Parameters<typeof walk>[0]>) walk(section);
  return payload;
}
