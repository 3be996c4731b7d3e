import type { BatchRecord, Ledger } from '../../ledger/index.ts';
import { table, time } from './text-table.ts';

/** `status --batches`: each batch (newest first) with its state, file and documents. */
export async function batchListing(
  ledger: Ledger,
  options: { mapping?: string; json?: boolean; limit?: number },
): Promise<string> {
  const batches = await ledger.listBatches({
    ...(options.mapping ? { mappingName: options.mapping } : {}),
    limit: options.limit ?? 200,
  });
  const withEntries = await Promise.all(
    batches.map(async (batch) => ({ batch, entries: await ledger.batchEntries(batch.id) })),
  );
  if (options.json)
    return `${JSON.stringify(
      withEntries.map(({ batch, entries }) => ({
        ...batch,
        documents: entries.map((entry) => ({
          annotationId: entry.annotationId,
          documentRef: entry.documentRef,
          exportId: entry.exportId,
          replaced: entry.replaced,
          addedAt: new Date(entry.createdAt).toISOString(),
          updatedAt: new Date(entry.updatedAt).toISOString(),
        })),
      })),
      null,
      2,
    )}\n`;
  if (batches.length === 0) return 'no batches\n';
  const rows: string[][] = [];
  for (const { batch, entries } of withEntries) {
    rows.push([
      String(batch.number),
      batch.status,
      batch.mappingName,
      batch.target,
      String(entries.length),
      time(batch.openedAt),
      when(batch),
      batch.remotePath ?? batch.fileName ?? '',
      batch.error ?? '',
    ]);
    for (const entry of entries)
      rows.push([
        '',
        `  annotation ${entry.annotationId}`,
        entry.documentRef ?? '',
        entry.exportId === null ? '' : `export ${entry.exportId}`,
        '',
        time(entry.createdAt),
        entry.replaced ? `replaced ${time(entry.updatedAt)}` : '',
        '',
        '',
      ]);
  }
  return table(['BATCH', 'STATE', 'MAPPING', 'TARGET', 'DOCS', 'OPENED', 'SENT / CLOSES', 'FILE', 'ERROR'], rows);
}

function when(batch: BatchRecord): string {
  if (batch.sentAt !== null) return `sent ${time(batch.sentAt)}`;
  return `closes ${time(batch.closedAt ?? batch.closesAt)}`;
}
