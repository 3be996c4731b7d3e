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
  const { base, destination } = destinationOf(source, file, disposition, acks);
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

function destinationOf(
  source: Source,
  file: ReadyFile,
  disposition: AckFileInput['disposition'],
  acks: AcksConfig,
): { base: string; destination: string } {
  const folder = disposition === 'matched' ? acks.folders.processed : acks.folders[disposition];
  const base = source.folder === '' ? folder : `${source.folder}/${folder}`;
  return { base, destination: `${base}/${file.name}` };
}

export interface ArchiveItem {
  file: ReadyFile;
  disposition: AckFileInput['disposition'];
}

/**
 * Archives a batch: where the target can (SFTP), every rename of the batch leaves at once — one round
 * trip for the batch, not one per file. A file whose rename failed (a taken name, a missing folder, a
 * dropped connection) goes the one-by-one way of `archiveAck`. Per file: where it went, or the error.
 */
export async function archiveAcks(
  source: Source,
  items: readonly ArchiveItem[],
  acks: AcksConfig,
  now: () => number,
  oneByOne: (run: Array<() => Promise<void>>) => Promise<void>,
): Promise<Array<{ archivedTo: string | null } | { error: unknown }>> {
  const results: Array<{ archivedTo: string | null } | { error: unknown }> = new Array(items.length);
  const single: number[] = [];
  const renamed: number[] = [];
  for (const [index, { disposition }] of items.entries()) {
    if (source.target.moveMany && !(disposition === 'matched' && acks.archive === 'delete')) renamed.push(index);
    else single.push(index);
  }
  if (renamed.length > 0 && source.target.moveMany) {
    const moves = renamed.map((index) => {
      const { file, disposition } = items[index] as ArchiveItem;
      return { from: file.path, to: destinationOf(source, file, disposition, acks).destination };
    });
    const errors = await source.target.moveMany(moves);
    for (const [i, index] of renamed.entries()) {
      const error = errors[i];
      // A taken name is stamped by the one-by-one way; anything else is reported as it is.
      if (!error) results[index] = { archivedTo: (moves[i] as { to: string }).to };
      else if (isBridgeError(error) && error.code === 'TARGET_EXISTS') single.push(index);
      else results[index] = { error };
    }
  }
  await oneByOne(
    single.map((index) => async () => {
      const { file, disposition } = items[index] as ArchiveItem;
      try {
        results[index] = { archivedTo: await archiveAck(source, file, disposition, acks, now()) };
      } catch (error) {
        results[index] = { error };
      }
    }),
  );
  return results;
}
