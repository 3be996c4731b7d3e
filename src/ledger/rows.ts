import type { AckState, ExportRecord, ExportStatus, HoldState, StoredReply } from './types.ts';

/** An `exports` row as both databases return it (BIGINT columns arrive as JS numbers). */
export interface ExportRow {
  id: number;
  idempotency_key: string;
  annotation_id: number;
  mapping_name: string;
  mapping_hash: string;
  target: string;
  planned_path: string;
  remote_path: string | null;
  sha256: string;
  bytes: number;
  status: ExportStatus;
  error_code: string | null;
  error: string | null;
  reply: string | null;
  attempts: number;
  lease_owner: string | null;
  lease_expires_at: number | null;
  created_at: number;
  updated_at: number;
  uploaded_at: number | null;
  /** Newline-separated; absent from rows an INSERT or UPDATE returned. */
  request_ids?: string | null;
  document_ref?: string | null;
  rossum_base_url?: string | null;
  ack_state?: AckState | null;
  ack_deadline_at?: number | null;
  ack_at?: number | null;
  ack_file?: string | null;
  erp_reference?: string | null;
  hold_until?: number | null;
  hold_state?: HoldState | null;
  sequence_number?: number | null;
  document_path?: string | null;
  document_sha256?: string | null;
  document_bytes?: number | null;
  document_uploaded_at?: number | null;
}

export function rowToRecord(
  row: ExportRow,
  requestIds: string[] = row.request_ids ? row.request_ids.split('\n') : [],
): ExportRecord {
  return {
    id: row.id,
    idempotencyKey: row.idempotency_key,
    annotationId: row.annotation_id,
    mappingName: row.mapping_name,
    mappingHash: row.mapping_hash,
    target: row.target,
    plannedPath: row.planned_path,
    remotePath: row.remote_path,
    sha256: row.sha256,
    bytes: row.bytes,
    status: row.status,
    errorCode: row.error_code,
    error: row.error,
    reply: row.reply ? (JSON.parse(row.reply) as StoredReply) : null,
    attempts: row.attempts,
    leaseOwner: row.lease_owner,
    leaseExpiresAt: row.lease_expires_at,
    requestIds,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    uploadedAt: row.uploaded_at,
    documentRef: row.document_ref ?? null,
    rossumBaseUrl: row.rossum_base_url ?? null,
    ackState: row.ack_state ?? null,
    ackDeadlineAt: row.ack_deadline_at ?? null,
    ackAt: row.ack_at ?? null,
    ackFile: row.ack_file ?? null,
    erpReference: row.erp_reference ?? null,
    holdUntil: row.hold_until ?? null,
    holdState: row.hold_state ?? null,
    sequenceNumber: row.sequence_number ?? null,
    documentPath: row.document_path ?? null,
    documentSha256: row.document_sha256 ?? null,
    documentBytes: row.document_bytes ?? null,
    documentUploadedAt: row.document_uploaded_at ?? null,
  };
}
