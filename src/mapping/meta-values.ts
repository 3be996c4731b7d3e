import { mappingError } from './errors.ts';
import type { META_KEYS } from './schema.ts';
import type { Scope } from './scope.ts';

/** `meta.*` and `route.*` values: what the delivery, the ledger (sequence, batch) and the route know about a render. */

export function metaValue(scope: Scope, key: string): string | undefined {
  const { meta } = scope.doc.view;
  const text = (v: string | number | null): string | undefined => (v === null ? undefined : String(v));
  switch (key as keyof typeof META_KEYS) {
    case 'annotation_id':
      return String(meta.annotationId);
    case 'document_id':
      return text(meta.documentId);
    case 'queue_id':
      return text(meta.queueId);
    case 'document_file_name':
      return text(meta.documentFileName);
    case 'request_id':
      return meta.requestId;
    case 'hook_timestamp':
      return text(meta.hookTimestamp);
    case 'confirmed_at':
      return text(meta.confirmedAt);
    case 'created_at':
      return text(meta.createdAt);
    case 'arrived_at':
      return text(meta.arrivedAt);
    case 'base_url':
      return text(meta.baseUrl);
    case 'now':
      return scope.doc.now;
    case 'seq':
      return sequenceText(scope, 0);
    case 'mapping_name':
      return scope.doc.mappingName;
    case 'mapping_version':
      return scope.doc.mappingVersion;
    case 'record_count':
      return String(scope.doc.recordCount);
    case 'batch':
    case 'batch_documents':
    case 'batch_records':
    case 'batch_opened_at':
    case 'batch_closed_at':
      return batchText(scope, key);
    default:
      return key.startsWith(BATCH_TOTAL) ? batchText(scope, key) : undefined;
  }
}

/** `meta.batch_total.NAME` reads the sum of the `batch.totals` value NAME over the batch. */
export const BATCH_TOTAL = 'batch_total.';

export function batchText(scope: Scope, key: string): string {
  const batch = scope.doc.context.batch;
  if (!batch)
    throw mappingError(
      'MAPPING_INVALID',
      `${scope.at}: meta.${key} is known only for the batch as a whole (file name, batch.header, batch.trailer), not in a document's own records.`,
    );
  if (key.startsWith(BATCH_TOTAL)) return batch.totals[key.slice(BATCH_TOTAL.length)] ?? '0';
  const values: Record<string, string> = {
    batch: String(batch.number),
    batch_documents: String(batch.documents),
    batch_records: String(batch.records),
    batch_opened_at: batch.openedAt,
    batch_closed_at: batch.closedAt,
  };
  return values[key] ?? '';
}

/** `{seq}` / `{seq:8}`: the number the ledger allocated for this export, zero-padded to `width` digits. */
export function sequenceText(scope: Scope, width: number): string {
  const sequence = scope.doc.context.sequence;
  if (sequence === undefined)
    throw mappingError(
      'MAPPING_INVALID',
      `${scope.at}: the mapping reads the sequence number ({seq}), but none was allocated for this render (tests set it with \`sequence:\`).`,
    );
  return String(sequence).padStart(width, '0');
}

export function routeValue(scope: Scope, key: string): string | undefined {
  const fromRoute = scope.doc.context.route?.[key];
  if (fromRoute !== undefined) return fromRoute;
  const setting = scope.doc.view.meta.settings[key];
  return typeof setting === 'string' || typeof setting === 'number' || typeof setting === 'boolean'
    ? String(setting)
    : undefined;
}
