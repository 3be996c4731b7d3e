import type { Ledger } from '../ledger/index.ts';
import { sleep } from './owners.ts';
import { replayed, transientReply, type ExportReply } from './replies.ts';

/** A duplicate delivery while another worker uploads: poll the ledger for its answer until the deadline. */
export async function waitForOther(
  ledger: Ledger,
  exportId: number,
  targetDescription: string,
  pollMs: number,
  signal: AbortSignal | undefined,
): Promise<ExportReply> {
  for (;;) {
    if (signal?.aborted) break;
    await sleep(pollMs, signal);
    const record = await ledger.get(exportId);
    if (!record) break;
    if (record.status === 'uploaded' || record.status === 'failed') return replayed(record);
    if (record.status === 'retryable') {
      return transientReply(
        `The first delivery of this export to ${targetDescription} failed: ${record.error ?? 'unknown error'}`,
      );
    }
    if (record.status === 'uploading' && record.leaseExpiresAt !== null && record.leaseExpiresAt < Date.now()) break;
  }
  return transientReply(
    `Export to ${targetDescription} is still in progress (another delivery is uploading it); Rossum will retry and get its result`,
  );
}
