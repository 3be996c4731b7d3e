import { createHash } from 'node:crypto';
import iconv from 'iconv-lite';
import type { ExportRecord } from '../ledger/index.ts';
import { isTransportError, type Target } from '../transport/index.ts';

/** Larger files are offered for download only: a browser tab is no place for 50 MB of text. */
export const VIEW_LIMIT_BYTES = 2 * 1024 * 1024;
/** The console never pulls more than this from a target in one request. */
export const READ_LIMIT_BYTES = 64 * 1024 * 1024;

export type RenderedFile =
  /** `source`: read back from the target, or the copy the ledger kept after a transient failure. */
  | { kind: 'bytes'; bytes: Buffer; encoding: string; fileName: string; source: 'target' | 'kept' }
  /** Why the console cannot show it, in the operator's words. */
  | { kind: 'unavailable'; reason: string };

/**
 * The ledger keeps the rendered file's name, size and sha256, not its bytes: the console reads the
 * uploaded file back from the target and shows it only if it still is, byte for byte, what was uploaded.
 */
export async function readRenderedFile(
  record: ExportRecord,
  targets: ReadonlyMap<string, Target>,
  encodingOf: (mappingName: string) => string | undefined,
  kept?: { content: Buffer },
): Promise<RenderedFile> {
  const encoding = encodingOf(record.mappingName) ?? 'utf-8';
  if (record.remotePath === null && kept) {
    const name = record.plannedPath.split('/').at(-1) ?? record.plannedPath;
    // The same rule as a file read back: shown only if it is byte for byte what the ledger recorded.
    if (createHash('sha256').update(kept.content).digest('hex') === record.sha256)
      return { kind: 'bytes', bytes: kept.content, encoding, fileName: name, source: 'kept' };
  }
  if (record.remotePath === null) {
    return {
      kind: 'unavailable',
      reason:
        'This export was never uploaded, and the ledger keeps no copy of it (it keeps one only after a transient failure, up to a size limit), so there is nothing to show.',
    };
  }
  const target = targets.get(record.target);
  if (!target)
    return {
      kind: 'unavailable',
      reason: `Target "${record.target}" is no longer configured, so the uploaded file cannot be read back.`,
    };
  if (record.bytes > READ_LIMIT_BYTES)
    return {
      kind: 'unavailable',
      reason: `The file is ${record.bytes} bytes, more than the console reads from a target.`,
    };
  let bytes: Buffer;
  try {
    bytes = await target.readFile(record.remotePath, { signal: AbortSignal.timeout(15_000) });
  } catch (error) {
    if (isTransportError(error) && error.code === 'NOT_FOUND') {
      return {
        kind: 'unavailable',
        reason: `The file is no longer on ${record.target} (the ERP has probably picked it up), and the bridge does not keep a copy. The ledger still proves what was uploaded: its size and sha256 above.`,
      };
    }
    const what = isTransportError(error) ? error.code : 'an unexpected error';
    return {
      kind: 'unavailable',
      reason: `Reading the file back from ${record.target} failed (${what}). Try again later.`,
    };
  }
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  if (sha256 !== record.sha256) {
    return {
      kind: 'unavailable',
      reason: `The file now on ${record.target} under this name is not the one the bridge uploaded (its sha256 differs); it is not shown so nobody mistakes it for the export.`,
    };
  }
  const name = record.remotePath.split('/').at(-1) ?? record.remotePath;
  return { kind: 'bytes', bytes, encoding, fileName: name, source: 'target' };
}

/** Text in the mapping's encoding (a BOM is dropped); undecodable bytes show as U+FFFD. */
export function decodeText(bytes: Buffer, encoding: string): { text: string; encoding: string } {
  const known = iconv.encodingExists(encoding) ? encoding : 'utf-8';
  return { text: iconv.decode(bytes, known, { stripBOM: true }), encoding: known };
}
