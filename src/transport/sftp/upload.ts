import { randomUUID } from 'node:crypto';
import { posix } from 'node:path';
import type { UploadRequest, UploadResult } from '../contract.ts';
import { isConnectionLevel, TransportError } from '../errors.ts';
import { containedPath, joinRemote, parentOf } from '../paths.ts';
import { publishUnderPolicy } from '../publish.ts';
import { remotePath, type Connection, type TargetContext } from './context.ts';
import type { StreamedSource } from '../source.ts';
import { abandonConnection } from './ssh2-internals.ts';
import {
  call,
  isNoSuchFile,
  mkdirp,
  openForWrite,
  statOrNull,
  writeStreamedFile,
  writeWholeFile,
} from './operations.ts';

/** Upload progress shared across a retry: what is safe to repeat and what to clean up. */
export interface AttemptState {
  /** The rename was sent: repeating the upload could duplicate or misreport it. */
  committed: boolean;
  leftoverTemps: string[];
  /** A temp file may still exist: its removal failed for a reason other than "no such file". */
  unremovedTemps: boolean;
}

/** Removes `temp`; a removal that fails (but not because the file is absent) is remembered, never dropped. */
async function removeTemp(conn: Connection, temp: string, state: AttemptState): Promise<void> {
  await call<void>((cb) => conn.sftp.unlink(temp, cb)).catch((error: unknown) => {
    if (!isNoSuchFile(error)) state.unremovedTemps = true;
  });
}

/** Removes the temp files an attempt on a connection that died left behind. */
export async function cleanupLeftovers(conn: Connection, state: AttemptState): Promise<void> {
  while (state.leftoverTemps.length > 0) await removeTemp(conn, state.leftoverTemps.pop() as string, state);
}

/** Writes a temp name in full, checks its size, then publishes it under the `onExisting` policy. */
export async function atomicUpload(
  context: TargetContext,
  conn: Connection,
  relative: string,
  request: UploadRequest,
  state: AttemptState,
  content: Buffer | StreamedSource,
): Promise<UploadResult> {
  const { upload } = context.config;
  const name = posix.basename(relative);
  // A random token keeps two uploads of the same name (version policy, racing replicas) from sharing a temp
  // file. randomUUID draws from a cached pool; randomBytes(4) cost a call into OpenSSL per upload.
  const tempName = `${upload.tempPrefix}${name}.${randomUUID().slice(0, 8)}${upload.tempSuffix}`;
  const tempRelative =
    upload.tempDir !== null
      ? joinRemote(containedPath(upload.tempDir, context.hostLabel), tempName)
      : joinRemote(parentOf(relative) || '.', tempName);
  const tempRemote = remotePath(context, tempRelative === '.' ? tempName : tempRelative);
  // Set before the OPEN is sent: an OPEN that timed out may still have created the file.
  let tempMayExist = true;
  try {
    let handle: Buffer;
    try {
      handle = await openForWrite(conn, tempRemote);
    } catch (error) {
      if (!upload.createDirs || !isNoSuchFile(error)) throw error;
      await mkdirp(conn, posix.dirname(tempRemote));
      handle = await openForWrite(conn, tempRemote);
    }
    const mode = upload.mode === undefined ? undefined : Number.parseInt(upload.mode, 8);
    const written = Buffer.isBuffer(content)
      ? { ...(await writeWholeFile(conn, handle, content, mode)), written: content.length }
      : await writeStreamedFile(conn, handle, content.chunks(), mode);
    if (upload.verifySize && written.size !== written.written) {
      throw new TransportError(
        'SIZE_MISMATCH',
        `upload of ${relative} to ${context.hostLabel}: the server stored ${written.size} bytes of ${written.written}; the file was not published`,
        { permanent: false, host: context.hostLabel, path: relative },
      );
    }
    state.committed = true;
    const published = await placeFile(context, conn, tempRemote, relative, request.onExisting);
    tempMayExist = false;
    return { remotePath: published, bytes: written.written };
  } catch (error) {
    if (tempMayExist) {
      if (conn.alive) await removeTemp(conn, tempRemote, state);
      else state.leftoverTemps.push(tempRemote);
    }
    throw error;
  }
}

/**
 * The operation timeout for an upload from a stream: the server must answer within
 * `pool.operationTimeoutMs` each time the upload works on its side, while the time spent waiting for
 * the source (a large or slow download, which has its own idle timeout) does not count.
 */
export function whileServerAnswers<T>(
  upload: Promise<T>,
  source: StreamedSource,
  context: TargetContext,
  conn: Connection,
  relative: string,
): Promise<T> {
  const limitMs = context.config.pool.operationTimeoutMs;
  let timer: NodeJS.Timeout | undefined;
  const stalled = new Promise<never>((_, reject) => {
    timer = setInterval(
      () => {
        if (source.busySince === null || Date.now() - source.busySince < limitMs) return;
        abandonConnection(conn.client);
        reject(
          new TransportError(
            'OPERATION_TIMEOUT',
            `upload on ${context.hostLabel} (${relative}): no answer within ${limitMs} ms; the connection was dropped`,
            { permanent: false, host: context.hostLabel, path: relative },
          ),
        );
      },
      Math.max(25, Math.floor(limitMs / 8)),
    );
  });
  upload.catch(() => undefined);
  return Promise.race([upload, stalled]).finally(() => clearInterval(timer));
}

/**
 * Renames `fromRemote` to `relative` under the policy. Plain SFTP rename never replaces
 * (OpenSSH uses link + unlink, as SFTP v3 requires), which makes `fail` and `version` race-free.
 */
export async function placeFile(
  context: TargetContext,
  conn: Connection,
  fromRemote: string,
  relative: string,
  onExisting: UploadRequest['onExisting'],
): Promise<string> {
  const { upload } = context.config;
  const { hostLabel } = context;
  const attempt = async (rename: () => Promise<void>, finalRemote: string): Promise<void> => {
    try {
      await rename();
    } catch (error) {
      if (!upload.createDirs || !isNoSuchFile(error) || !(await statOrNull(conn, fromRemote))) throw error;
      await mkdirp(conn, posix.dirname(finalRemote));
      await rename();
    }
  };
  const plainRename = (to: string) => () => call<void>((cb) => conn.sftp.rename(fromRemote, to, cb));

  return publishUnderPolicy(
    relative,
    onExisting,
    { host: hostLabel, place: `on ${hostLabel}` },
    {
      async overwrite() {
        const finalRemote = remotePath(context, relative);
        const usePosix = upload.rename === 'posix' || (upload.rename === 'auto' && conn.posixRename);
        if (usePosix) {
          if (!conn.posixRename) {
            throw new TransportError(
              'UNSUPPORTED',
              `${hostLabel} does not offer posix-rename@openssh.com, which upload.rename: posix requires`,
              {
                permanent: true,
                host: hostLabel,
                path: relative,
              },
            );
          }
          await attempt(() => conn.client.posixRename(fromRemote, finalRemote).then(() => undefined), finalRemote);
          return;
        }
        try {
          await attempt(plainRename(finalRemote), finalRemote);
        } catch (error) {
          if (!(await statOrNull(conn, finalRemote))) throw error;
          // Without posix-rename there is a short window where the old file is gone and the new one not yet there.
          await call<void>((cb) => conn.sftp.unlink(finalRemote, cb));
          await plainRename(finalRemote)();
        }
      },
      async placeIfFree(candidate) {
        const finalRemote = remotePath(context, candidate);
        try {
          await attempt(plainRename(finalRemote), finalRemote);
          return 'placed';
        } catch (error) {
          if (isConnectionLevel(error) || !(await statOrNull(conn, finalRemote))) throw error;
          return 'taken';
        }
      },
    },
  );
}
