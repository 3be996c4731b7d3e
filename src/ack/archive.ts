import { isBridgeError } from '../errors.ts';
import type { AckFileInput } from '../ledger/index.ts';
import type { AcksConfig } from './config.ts';
import type { ReadyFile } from './discovery.ts';
import type { Source } from './sources.ts';

/**
 * processed/ (or deleted), unmatched/, invalid/ — never silently deleted unless it was recorded.
 * Returns where the file went (null when deleted).
 */
export async function archiveAck(
  source: Source,
  file: ReadyFile,
  disposition: AckFileInput['disposition'],
  acks: AcksConfig,
  now: number,
): Promise<string | null> {
  if (disposition === 'matched' && acks.archive === 'delete') {
    await source.target.remove(file.path);
    return null;
  }
  const folder = disposition === 'matched' ? acks.folders.processed : acks.folders[disposition];
  const base = source.folder === '' ? folder : `${source.folder}/${folder}`;
  const destination = `${base}/${file.name}`;
  try {
    await source.target.move(file.path, destination);
    return destination;
  } catch (error) {
    if (!isBridgeError(error) || error.code !== 'TARGET_EXISTS') throw error;
    // ERPs reuse names (ack_YYYYMMDD.csv): keep both.
    const dot = file.name.lastIndexOf('.');
    const stamped = `${base}/${dot > 0 ? file.name.slice(0, dot) : file.name}.${new Date(now).toISOString().replace(/[:.]/g, '-')}${dot > 0 ? file.name.slice(dot) : ''}`;
    await source.target.move(file.path, stamped);
    return stamped;
  }
}
