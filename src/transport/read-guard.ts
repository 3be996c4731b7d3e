import type { ReadOptions } from './contract.ts';
import { TransportError } from './errors.ts';

/**
 * Checks shared by both targets' reads. Whoever writes the folder (the ERP) can swap a listed name for a
 * symlink between the listing and the read; following it would hand any file we can read to Rossum.
 */
export interface ReadPlace {
  host: string;
  /** Path relative to the target folder. */
  path: string;
  /** Target description for messages: `sftp://erp@host:22/acks`. */
  where: string;
}

export function notRegular(place: ReadPlace, found: string): TransportError {
  return new TransportError(
    'ACK_FILE_NOT_REGULAR',
    `refused to read ${place.path} in ${place.where}: ${found}; only regular files are read, never through a symlink`,
    {
      permanent: true,
      host: place.host,
      path: place.path,
    },
  );
}

export function tooLarge(place: ReadPlace, size: number, maxBytes: number): TransportError {
  return new TransportError(
    'ACK_FILE_TOO_LARGE',
    `refused to read ${place.path} in ${place.where}: it has ${size} bytes, more than the ${maxBytes} allowed`,
    {
      permanent: true,
      host: place.host,
      path: place.path,
    },
  );
}

/** Refuses a file larger than `maxBytes` or different from what the listing said, before any byte is read. */
export function checkBeforeRead(
  place: ReadPlace,
  found: { size: number; mtimeMs: number },
  options: ReadOptions | undefined,
): void {
  const listed = options?.listed;
  if (listed && (listed.size !== found.size || listed.mtimeMs !== found.mtimeMs)) {
    throw notRegular(
      place,
      `it is not the file listed (listed ${listed.size} bytes, mtime ${listed.mtimeMs}; found ${found.size} bytes, mtime ${found.mtimeMs})`,
    );
  }
  const maxBytes = options?.maxBytes;
  if (maxBytes !== undefined && found.size > maxBytes) throw tooLarge(place, found.size, maxBytes);
}

/** How many bytes a read may take: what the file held when opened, capped by `maxBytes`. */
export function readLimit(size: number, options: ReadOptions | undefined): number {
  return options?.maxBytes === undefined ? size : Math.min(size, options.maxBytes);
}
