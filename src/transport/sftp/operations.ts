import { posix } from 'node:path';
import type { FileEntryWithStats, SFTPWrapper, Stats } from 'ssh2';
import type SftpClient from 'ssh2-sftp-client';
import type { ReadOptions } from '../contract.ts';
import { errorCodeOf, SFTP_STATUS, TransportError } from '../errors.ts';
import { checkBeforeRead, notRegular, readLimit, type ReadPlace } from '../read-guard.ts';
import type { Connection } from './context.ts';
import { abandonConnection } from './ssh2-internals.ts';

/* The raw SFTP requests, promise-shaped, one connection at a time. */

export function openForWrite(conn: Connection, remotePath: string): Promise<Buffer> {
  return call<Buffer>((cb) => conn.sftp.open(remotePath, 'w', cb));
}

/** ssh2's smallest write payload (non-OpenSSH servers): one request never gets split behind our back. */
const SINGLE_WRITE_BYTES = 34_000 - 2 * 1024;

/**
 * A file that fits one write request: write, optional fchmod, fstat and close go out back to back on
 * one handle. SFTP servers answer a handle's requests in order, so the fstat sees every byte written
 * and the whole file costs one round trip after the open. Larger files go as several write requests,
 * up to `conn.writesInFlight` outstanding at once, then are checked the same way.
 */
export async function writeWholeFile(
  conn: Connection,
  handle: Buffer,
  bytes: Buffer,
  mode: number | undefined,
): Promise<{ size: number }> {
  if (bytes.length > SINGLE_WRITE_BYTES)
    return writeStreamedFile(conn, handle, [bytes], mode).then(({ size }) => ({ size }));
  // write, (fchmod,) fstat and close leave in one segment and are answered in order.
  const closing = closeAfterWrites(
    conn,
    handle,
    mode,
    bytes.length > 0 ? () => writeAt(conn, handle, bytes, 0, 0, bytes.length) : undefined,
  );
  return closing;
}

/**
 * Writes chunks as they come (a download, say), keeping up to `conn.writesInFlight` write requests
 * outstanding (one round trip for several requests, not one each); only the chunks of those requests
 * are held. The fstat and close go out once every write was answered, so even a server that works on
 * requests in parallel reports the whole file's size. `written` counts the bytes sent, for the size
 * check against what the server stored.
 */
export async function writeStreamedFile(
  conn: Connection,
  handle: Buffer,
  chunks: AsyncIterable<Buffer> | Iterable<Buffer>,
  mode: number | undefined,
): Promise<{ size: number; written: number }> {
  let written = 0;
  const inFlight = new Set<Promise<void>>();
  let failure: { error: unknown } | undefined;
  const send = (chunk: Buffer, from: number, length: number): void => {
    const write: Promise<void> = writeAt(conn, handle, chunk, from, written, length).then(
      () => void inFlight.delete(write),
      (error: unknown) => {
        inFlight.delete(write);
        failure ??= { error };
      },
    );
    inFlight.add(write);
  };
  try {
    for await (const chunk of chunks) {
      let at = 0;
      while (at < chunk.length) {
        while (inFlight.size >= conn.writesInFlight && !failure) await Promise.race(inFlight);
        if (failure) throw failure.error;
        // The writes that fit go out corked: one writev for all their SSH packets instead of a syscall each.
        conn.batch(() => {
          while (at < chunk.length && inFlight.size < conn.writesInFlight) {
            const length = Math.min(SINGLE_WRITE_BYTES, chunk.length - at);
            send(chunk, at, length);
            written += length;
            at += length;
          }
        });
      }
    }
    while (inFlight.size > 0 && !failure) await Promise.race(inFlight);
    if (failure) throw failure.error;
  } catch (error) {
    await call<void>((cb) => conn.sftp.close(handle, (closeError) => cb(closeError, undefined))).catch(() => undefined);
    throw error;
  }
  const { size } = await closeAfterWrites(conn, handle, mode, undefined);
  return { size, written };
}

function writeAt(
  conn: Connection,
  handle: Buffer,
  bytes: Buffer,
  from: number,
  position: number,
  length: number,
): Promise<void> {
  return call<void>((cb) => conn.sftp.write(handle, bytes, from, length, position, (error) => cb(error, undefined)));
}

/** `lastWrite` (if any), (fchmod,) fstat and close, sent in one segment and answered in order. */
async function closeAfterWrites(
  conn: Connection,
  handle: Buffer,
  mode: number | undefined,
  lastWrite: (() => Promise<void>) | undefined,
): Promise<{ size: number }> {
  const pending: Array<Promise<unknown>> = [];
  let stat: Promise<Stats> | undefined;
  let close: Promise<void> | undefined;
  try {
    conn.batch(() => {
      if (lastWrite) pending.push(lastWrite());
      if (mode !== undefined)
        pending.push(call<void>((cb) => conn.sftp.fchmod(handle, mode, (error) => cb(error, undefined))));
      stat = call<Stats>((cb) => conn.sftp.fstat(handle, cb));
      close = call<void>((cb) => conn.sftp.close(handle, (error) => cb(error, undefined)));
    });
  } catch (error) {
    await call<void>((cb) => conn.sftp.close(handle, (closeError) => cb(closeError, undefined))).catch(() => undefined);
    throw error;
  }
  const results = await Promise.allSettled([...pending, stat as Promise<Stats>, close as Promise<void>]);
  for (const result of results) if (result.status === 'rejected') throw result.reason;
  return { size: (await (stat as Promise<Stats>)).size };
}

const READ_CHUNK_BYTES = 32 * 1024;

/** What a file looked like (an lstat, or the listing's lstat): what the opened handle must show. */
interface Look {
  mode: number;
  size: number;
  /** Seconds, as SFTP carries it. */
  mtime: number;
  uid: number;
  gid: number;
}

const REGULAR = 0o100000;
const TYPE_BITS = 0o170000;

/**
 * Never through a symlink: SFTP has no O_NOFOLLOW, so the handle's fstat must show the very file a
 * look saw (type, size, mtime, owner, mode), or nothing read is returned. The look is the listing's
 * when the caller has one (`seen`; OpenSSH lstats each listed name): open, then fstat and the first
 * read back to back, two round trips. When the handle shows anything else (the file changed or was
 * swapped since the listing), or without a listing, an lstat comes first: a symlink, folder or device
 * under the name is refused, never opened; then the open must show what the lstat saw. Three round trips.
 */
export async function readRegularFile(
  conn: Connection,
  remotePath: string,
  place: ReadPlace,
  options: ReadOptions | undefined,
): Promise<Buffer> {
  const seen = options?.seen;
  if (seen && (seen.identity.mode & TYPE_BITS) === REGULAR) {
    checkBeforeRead(place, seen, options);
    const listed: Look = { ...seen.identity, size: seen.size, mtime: seen.mtimeMs / 1000 };
    const bytes = await readIfSame(conn, remotePath, listed, options);
    if (bytes) return bytes;
  }
  const looked = await call<Stats>((cb) => conn.sftp.lstat(remotePath, cb));
  if (!looked.isFile()) throw notRegular(place, `it is ${kindOf(looked)}`);
  checkBeforeRead(place, { size: looked.size, mtimeMs: looked.mtime * 1000 }, options);
  const bytes = await readIfSame(conn, remotePath, looked, options);
  if (!bytes) throw notRegular(place, 'it was replaced between the look and the read');
  return bytes;
}

/**
 * Opens the name and reads it whole, or returns null when the handle is not the file `looked` describes.
 * fstat and the first read go out back to back (answered in order), more reads only while the file is
 * longer, close (not waited for).
 */
async function readIfSame(
  conn: Connection,
  remotePath: string,
  looked: Look,
  options: ReadOptions | undefined,
): Promise<Buffer | null> {
  const handle = await call<Buffer>((cb) => conn.sftp.open(remotePath, 'r', cb));
  const readAt = (position: number, length: number): Promise<Buffer> =>
    new Promise((resolveRead, rejectRead) => {
      // ssh2 answers a read at the end of the file with zero bytes.
      conn.sftp.read(handle, Buffer.allocUnsafe(length), 0, length, position, (error, bytesRead, buffer) =>
        error ? rejectRead(error) : resolveRead(buffer.subarray(0, bytesRead)),
      );
    });
  const chunkAt = (position: number, limit: number): Promise<Buffer> =>
    position >= limit
      ? Promise.resolve(Buffer.alloc(0))
      : readAt(position, Math.min(READ_CHUNK_BYTES, limit - position));
  try {
    const expectedLimit = readLimit(looked.size, options);
    let stat: Promise<Stats> | undefined;
    let next: Promise<Buffer> | undefined;
    conn.batch(() => {
      stat = call<Stats>((cb) => conn.sftp.fstat(handle, cb));
      next = chunkAt(0, expectedLimit);
    });
    // Both at once: when the connection drops, the read fails too, and an unawaited rejection ends the process.
    const [opened] = await Promise.all([stat as Promise<Stats>, next as Promise<Buffer>]);
    if (!sameFile(looked, opened)) return null;
    const limit = readLimit(opened.size, options);
    const chunks: Buffer[] = [];
    let length = 0;
    for (;;) {
      const chunk = await (next as Promise<Buffer>);
      if (chunk.length === 0) break;
      chunks.push(chunk);
      length += chunk.length;
      // What the file held when opened; a file still growing was not offered as complete.
      if (length >= limit) break;
      next = chunkAt(length, limit);
    }
    return Buffer.concat(chunks, length);
  } finally {
    // Not awaited: the server handles this channel's requests in order, so whatever is sent next (the
    // move of the ack file, say) comes after the close anyway, and the read saves a round trip.
    if (conn.alive)
      void call<void>((cb) => conn.sftp.close(handle, (error) => cb(error, undefined))).catch(() => undefined);
  }
}

function sameFile(looked: Look, opened: Stats): boolean {
  return (
    opened.isFile() &&
    opened.mode === looked.mode &&
    opened.size === looked.size &&
    opened.mtime === looked.mtime &&
    opened.uid === looked.uid &&
    opened.gid === looked.gid
  );
}

function kindOf(stats: Stats): string {
  if (stats.isSymbolicLink()) return 'a symlink';
  if (stats.isDirectory()) return 'a folder';
  return 'not a regular file';
}

export function call<T>(invoke: (callback: (error: Error | null | undefined, value: T) => void) => void): Promise<T> {
  return new Promise((resolveCall, rejectCall) => {
    invoke((error, value) => (error ? rejectCall(error) : resolveCall(value)));
  });
}

export function readdirPage(sftp: SFTPWrapper, handle: Buffer): Promise<FileEntryWithStats[] | null> {
  return new Promise((resolvePage, rejectPage) => {
    sftp.readdir(handle, (error, list) => {
      if (error) {
        if (errorCodeOf(error) === SFTP_STATUS.EOF) resolvePage(null);
        else rejectPage(error);
        return;
      }
      resolvePage(list);
    });
  });
}

export function isNoSuchFile(error: unknown): boolean {
  const code = errorCodeOf(error);
  return code === SFTP_STATUS.NO_SUCH_FILE || code === 'ENOENT';
}

export async function statOrNull(conn: Connection, remote: string): Promise<Stats | null> {
  try {
    return await call<Stats>((cb) => conn.sftp.stat(remote, cb));
  } catch (error) {
    if (isNoSuchFile(error)) return null;
    throw error;
  }
}

export async function mkdirp(conn: Connection, remoteDir: string): Promise<void> {
  if (remoteDir === '' || remoteDir === '.' || remoteDir === '/') return;
  try {
    await call<void>((cb) => conn.sftp.mkdir(remoteDir, cb));
    return;
  } catch (error) {
    let failure = error;
    if (isNoSuchFile(error)) {
      await mkdirp(conn, posix.dirname(remoteDir));
      try {
        await call<void>((cb) => conn.sftp.mkdir(remoteDir, cb));
        return;
      } catch (again) {
        failure = again;
      }
    }
    // Another connection may have created it meanwhile: fine if it is a folder now.
    const stats = await statOrNull(conn, remoteDir);
    if (stats?.isDirectory()) return;
    throw failure;
  }
}

/** Rejects after `ms` and kills the connection, whose state is unknown from then on. */
export function withTimeout<T>(
  promise: Promise<T>,
  ms: number,
  connection: () => SftpClient,
  label: { host: string; what: string; path?: string },
): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, rejectTimeout) => {
    timer = setTimeout(() => {
      abandonConnection(connection());
      const where = label.path ? `${label.host} (${label.path})` : label.host;
      rejectTimeout(
        new TransportError(
          'OPERATION_TIMEOUT',
          `${label.what} on ${where}: no answer within ${ms} ms; the connection was dropped`,
          { permanent: false, host: label.host, ...(label.path ? { path: label.path } : {}) },
        ),
      );
    }, ms);
  });
  promise.catch(() => undefined);
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

export function delay(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolveDelay) => {
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolveDelay();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}
