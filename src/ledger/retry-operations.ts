import { recordAction, refused } from './console-operations.ts';
import { addEvent, type LedgerContext } from './export-operations.ts';
import { rowToRecord, type ExportRow } from './rows.ts';
import type { AckFileContent, ExportRecord, KeptPayload } from './types.ts';

export async function keptPayload({ driver }: LedgerContext, exportId: number): Promise<KeptPayload | undefined> {
  const row = await driver.get<{ sha256: string; content: Uint8Array; kept_at: number }>(
    'SELECT sha256, content, kept_at FROM export_payloads WHERE export_id = ?',
    [exportId],
  );
  return row ? { sha256: row.sha256, content: Buffer.from(row.content), keptAt: Number(row.kept_at) } : undefined;
}

const TAKE_FOR_RETRY = `UPDATE exports SET status = 'uploading', lease_owner = ?, lease_expires_at = ?, attempts = attempts + 1, updated_at = ?
  WHERE id = ? AND status = 'retryable' AND EXISTS (SELECT 1 FROM export_payloads p WHERE p.export_id = exports.id) RETURNING *`;

/**
 * An operator's retry: takes a `retryable` export's lease the way a takeover does (so Rossum's own retry,
 * arriving meanwhile, waits for this one), and records who asked and when, in one transaction.
 */
export function claimForRetry(
  { driver, now: clock, selectExport }: LedgerContext,
  exportId: number,
  input: { owner: string; leaseMs: number; actor: string },
): Promise<ExportRecord> {
  return driver.transaction(async (tx) => {
    const now = clock();
    const taken = await tx.get<ExportRow>(TAKE_FOR_RETRY, [input.owner, now + input.leaseMs, now, exportId]);
    if (!taken) {
      const current = await tx.get<{ status: string }>('SELECT status FROM exports WHERE id = ?', [exportId]);
      if (!current) throw refused('not_found', `Export ${exportId} does not exist`);
      throw refused(
        'conflict',
        current.status === 'retryable'
          ? `Export ${exportId} has no kept file to upload again (too large to keep, or failed before this bridge version kept them); Rossum's next delivery, or exporting the annotation again, uploads it`
          : `Export ${exportId} is ${current.status}: only an export whose upload failed transiently is retried`,
      );
    }
    const row = await tx.get<ExportRow>(`${selectExport} WHERE e.id = ?`, [exportId]);
    const detail = { by: input.actor, sha256: taken.sha256, bytes: Number(taken.bytes) };
    await addEvent(tx, exportId, now, 'console_retry', detail);
    await recordAction(tx, now, input.actor, 'retry_upload', { exportId }, detail);
    return rowToRecord(row ?? taken);
  });
}

export async function ackFileContent(
  { driver }: LedgerContext,
  ackFileId: number,
): Promise<AckFileContent | undefined> {
  const row = await driver.get<{
    content: Uint8Array | null;
    content_bytes: number | null;
    content_encoding: string | null;
  }>('SELECT content, content_bytes, content_encoding FROM ack_files WHERE id = ?', [ackFileId]);
  if (!row || row.content === null) return undefined;
  const content = Buffer.from(row.content);
  const totalBytes = Number(row.content_bytes ?? content.length);
  return { content, totalBytes, truncated: totalBytes > content.length, encoding: row.content_encoding };
}
