import { randomBytes } from 'node:crypto';
import { constants, type Dirent, type Stats } from 'node:fs';
import { link, lstat, mkdir, open, opendir, realpath, rename, stat, unlink, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join, sep } from 'node:path';
import type { Logger } from '../observability/index.ts';
import type {
  MoveOptions,
  OperationOptions,
  PoolStats,
  ReadOptions,
  RemoteEntry,
  Target,
  UploadRequest,
  UploadResult,
} from './contract.ts';
import { checkBeforeRead, notRegular, readLimit, type ReadPlace } from './read-guard.ts';
import type { TargetConfig } from './config.ts';
import { classifyError, errorCodeOf, TransportError } from './errors.ts';
import { containedPath, parentOf } from './paths.ts';
import { publishUnderPolicy } from './publish.ts';
import { removeLeftoverTemps } from './leftovers.ts';
import { StreamedSource } from './source.ts';

const HOST = 'localhost';
/** link() is how `fail` and `version` stay race-free; some mounts (SMB, FAT) refuse it. */
const NO_HARDLINKS = new Set(['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS', 'EXDEV', 'EMLINK']);

/**
 * A mounted folder (`file:///mnt/erp/inbound`) with the same promises as SFTP: write to a
 * temporary name, fsync, then publish with link()/rename() and fsync the folder.
 */
export class FileTarget implements Target {
  readonly name: string;
  readonly description: string;
  private readonly root: string;
  private readonly config: TargetConfig;
  private readonly logger: Logger;
  private running = 0;
  private closed = false;

  constructor(name: string, config: TargetConfig, dir: string, options: { logger: Logger }) {
    this.name = name;
    this.root = dir;
    this.config = config;
    this.description = `file://${dir}`;
    this.logger = options.logger.child({ target: name });
  }

  async upload(request: UploadRequest, options?: OperationOptions): Promise<UploadResult> {
    const relative = containedPath(request.relativePath, HOST);
    const content = 'stream' in request ? new StreamedSource(request.stream) : request.bytes;
    try {
      return await this.uploadContent(relative, content, request.onExisting, options);
    } catch (error) {
      throw content instanceof StreamedSource ? content.explain(error) : error;
    }
  }

  private async uploadContent(
    relative: string,
    content: Buffer | StreamedSource,
    onExisting: UploadRequest['onExisting'],
    options: OperationOptions | undefined,
  ): Promise<UploadResult> {
    return this.operation('upload', relative, options, async () => {
      const { upload } = this.config;
      const finalPath = await this.resolve(relative, true);
      const tempDir =
        upload.tempDir !== null
          ? await this.resolve(containedPath(upload.tempDir, HOST), true, true)
          : dirname(finalPath);
      const name = relative.slice(relative.lastIndexOf('/') + 1);
      const tempPath = join(
        tempDir,
        `${upload.tempPrefix}${name}.${randomBytes(4).toString('hex')}${upload.tempSuffix}`,
      );
      let tempExists = false;
      try {
        const mode = upload.mode !== undefined ? Number.parseInt(upload.mode, 8) : 0o644;
        const handle = await open(tempPath, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, mode);
        tempExists = true;
        let written = 0;
        try {
          if (Buffer.isBuffer(content)) {
            await handle.writeFile(content);
            written = content.length;
          } else {
            // Chunk by chunk as they come: only the chunk being written is held.
            for await (const chunk of content.chunks()) {
              for (let at = 0; at < chunk.length; ) {
                const { bytesWritten } = await handle.write(chunk, at, chunk.length - at, written);
                at += bytesWritten;
                written += bytesWritten;
              }
            }
          }
          // open() applies the umask; chmod gives the exact mode asked for.
          if (upload.mode !== undefined) await handle.chmod(mode);
          await handle.sync();
          if (upload.verifySize) {
            const { size } = await handle.stat();
            if (size !== written) {
              throw new TransportError(
                'SIZE_MISMATCH',
                `upload of ${relative} to ${this.description}: wrote ${size} bytes of ${written}; the file was not published`,
                {
                  permanent: false,
                  host: HOST,
                  path: relative,
                },
              );
            }
          }
        } finally {
          await handle.close();
        }
        const remotePath = await this.publish(tempPath, relative, onExisting, true);
        tempExists = false;
        return { remotePath, bytes: written };
      } finally {
        if (tempExists) await unlink(tempPath).catch(() => undefined);
      }
    });
  }

  async stat(relativePath: string, options?: OperationOptions): Promise<{ size: number; mtimeMs: number } | null> {
    const relative = containedPath(relativePath, HOST, { allowRoot: true });
    return this.operation('stat', relative, options, async () => {
      try {
        const stats = await stat(await this.resolve(relative, false));
        return { size: stats.size, mtimeMs: stats.mtimeMs };
      } catch (error) {
        if (errorCodeOf(error) === 'ENOENT' || errorCodeOf(error) === 'ENOTDIR') return null;
        throw error;
      }
    });
  }

  async readFile(relativePath: string, options?: ReadOptions): Promise<Buffer> {
    const relative = containedPath(relativePath, HOST);
    const place = { host: HOST, path: relative, where: this.description };
    return this.operation('read', relative, options, async () =>
      readRegularFile(await this.resolve(relative, false), place, options),
    );
  }

  async *list(relativeDir: string, options?: OperationOptions): AsyncIterable<RemoteEntry> {
    const relative = containedPath(relativeDir, HOST, { allowRoot: true });
    this.guard('list', relative, options);
    let dirPath: string;
    let entries: AsyncIterable<Dirent>;
    try {
      dirPath = await this.resolve(relative, false);
      // fs.opendir streams entries in batches instead of reading the whole folder.
      entries = await opendir(dirPath, { bufferSize: 128 });
    } catch (error) {
      throw classifyError(error, { host: HOST, operation: 'list', path: this.shown(relative || '.') });
    }
    for await (const entry of entries) {
      let stats: Stats;
      try {
        stats = await lstat(join(dirPath, entry.name));
      } catch {
        continue; // removed while we listed
      }
      // Type, size and mtime from one lstat: the entry's own type may describe what was there a moment before.
      yield {
        path: relative === '' ? entry.name : `${relative}/${entry.name}`,
        name: entry.name,
        size: stats.size,
        mtimeMs: stats.mtimeMs,
        isFile: stats.isFile(),
      };
    }
  }

  async move(fromRelative: string, toRelative: string, options?: MoveOptions): Promise<void> {
    const from = containedPath(fromRelative, HOST);
    const to = containedPath(toRelative, HOST);
    await this.operation('move', from, options, async () => {
      const fromPath = await this.resolve(from, false);
      await this.publish(fromPath, to, options?.overwrite ? 'overwrite' : 'fail', this.config.upload.createDirs);
    });
  }

  async remove(relativePath: string, options?: OperationOptions): Promise<void> {
    const relative = containedPath(relativePath, HOST);
    await this.operation('remove', relative, options, async () => {
      try {
        const path = await this.resolve(relative, false);
        await unlink(path);
        await syncDir(dirname(path));
      } catch (error) {
        if (errorCodeOf(error) !== 'ENOENT') throw error;
      }
    });
  }

  removeLeftoverTemps(relativePath: string, options?: OperationOptions): Promise<string[]> {
    return removeLeftoverTemps(this, this.config.upload, relativePath, options);
  }

  async check(options?: OperationOptions): Promise<void> {
    await this.operation('check', '', options, async () => {
      if (this.config.upload.createDirs) await mkdir(this.root, { recursive: true });
      const stats = await stat(this.root);
      if (!stats.isDirectory())
        throw new TransportError('IO_FAILED', `${this.description} is not a folder`, {
          permanent: false,
          host: HOST,
          path: this.root,
        });
    });
  }

  stats(): PoolStats {
    return { size: 0, inUse: this.running, idle: 0, pending: 0 };
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  private guard(operation: string, relative: string, options: OperationOptions | undefined): void {
    if (this.closed)
      throw new TransportError('TARGET_CLOSED', `target "${this.name}" is closed`, { permanent: false, host: HOST });
    if (options?.signal?.aborted) {
      throw new TransportError(
        'ABORTED',
        `${operation} of ${this.shown(relative || '.')} was cancelled before it started`,
        { permanent: false, host: HOST, path: relative },
      );
    }
  }

  private async operation<T>(
    operation: string,
    relative: string,
    options: OperationOptions | undefined,
    fn: () => Promise<T>,
  ): Promise<T> {
    this.guard(operation, relative, options);
    this.running++;
    try {
      return await fn();
    } catch (error) {
      throw classifyError(error, { host: HOST, operation, path: this.shown(relative || '.') });
    } finally {
      this.running--;
    }
  }

  private shown(relative: string): string {
    return `${this.root}/${relative}`;
  }

  /**
   * Absolute path of a contained relative path. The lexical check already happened; this one
   * follows symlinks in existing folders so a link inside the share cannot lead outside it.
   */
  private async resolve(relative: string, createParent: boolean, isDir = false): Promise<string> {
    const rootReal = await realpath(this.root).catch(async (error: unknown) => {
      if (errorCodeOf(error) !== 'ENOENT' || !this.config.upload.createDirs || !createParent) throw error;
      await mkdir(this.root, { recursive: true });
      return realpath(this.root);
    });
    const folderRelative = isDir ? relative : parentOf(relative);
    const folder = folderRelative === '' ? rootReal : join(rootReal, folderRelative);
    if (createParent && this.config.upload.createDirs) await mkdir(folder, { recursive: true });
    let folderReal: string;
    try {
      folderReal = await realpath(folder);
    } catch (error) {
      if (errorCodeOf(error) === 'ENOENT')
        return isDir ? folder : join(folder, relative.slice(relative.lastIndexOf('/') + 1));
      throw error;
    }
    if (folderReal !== rootReal && !folderReal.startsWith(rootReal + sep)) {
      throw new TransportError(
        'PATH_ESCAPE',
        `refused path ${JSON.stringify(relative)} in ${this.description}: a symlink leads outside the target folder`,
        {
          permanent: true,
          host: HOST,
          path: relative,
        },
      );
    }
    return isDir ? folderReal : join(folderReal, relative.slice(relative.lastIndexOf('/') + 1));
  }

  /** Moves `fromPath` to `relative` under the policy and makes the change durable. */
  private async publish(
    fromPath: string,
    relative: string,
    onExisting: UploadRequest['onExisting'],
    createDirs: boolean,
  ): Promise<string> {
    const finalPath = await this.resolve(relative, createDirs);
    return publishUnderPolicy(
      relative,
      onExisting,
      { host: HOST, place: `in ${this.description}` },
      {
        async overwrite() {
          await rename(fromPath, finalPath);
          await syncDir(dirname(finalPath));
        },
        placeIfFree: async (candidate) => {
          const candidatePath = candidate === relative ? finalPath : join(dirname(finalPath), basename(candidate));
          try {
            await link(fromPath, candidatePath);
            await unlink(fromPath);
          } catch (error) {
            const code = errorCodeOf(error);
            if (code === 'EEXIST') return 'taken';
            if (typeof code !== 'string' || !NO_HARDLINKS.has(code)) throw error;
            // No hard links on this mount: check, then rename. Not race-free; the ledger keeps writers apart.
            if (await exists(candidatePath)) return 'taken';
            this.logger.debug({ code }, 'hard links unsupported; publishing with rename');
            await rename(fromPath, candidatePath);
          }
          await syncDir(dirname(candidatePath));
          return 'placed';
        },
      },
    );
  }
}

/**
 * O_NOFOLLOW: a symlink under the name fails the open itself, so a swap after the lstat cannot redirect
 * the read; the open handle must be the regular file the lstat saw (same device and inode).
 */
async function readRegularFile(path: string, place: ReadPlace, options: ReadOptions | undefined): Promise<Buffer> {
  const looked = await lstat(path);
  if (!looked.isFile())
    throw notRegular(
      place,
      looked.isSymbolicLink()
        ? 'it is a symlink'
        : looked.isDirectory()
          ? 'it is a folder'
          : 'it is not a regular file',
    );
  let handle: FileHandle;
  try {
    // O_NONBLOCK: a FIFO swapped in must not hang the open.
    handle = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (error) {
    if (errorCodeOf(error) === 'ELOOP') throw notRegular(place, 'it is a symlink');
    throw error;
  }
  try {
    const opened = await handle.stat();
    if (!opened.isFile() || opened.dev !== looked.dev || opened.ino !== looked.ino)
      throw notRegular(place, 'it was replaced between the look and the read');
    checkBeforeRead(place, opened, options);
    const limit = readLimit(opened.size, options);
    const bytes = Buffer.alloc(limit);
    let length = 0;
    while (length < limit) {
      const { bytesRead } = await handle.read(bytes, length, limit - length, length);
      if (bytesRead === 0) break;
      length += bytesRead;
    }
    return bytes.subarray(0, length);
  } finally {
    await handle.close();
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch {
    return false;
  }
}

/** A rename is only durable once the folder's entry is on disk. */
async function syncDir(path: string): Promise<void> {
  let handle: FileHandle | undefined;
  try {
    handle = await open(path, constants.O_RDONLY | constants.O_DIRECTORY);
    await handle.sync();
  } catch (error) {
    // Some network file systems refuse fsync on folders; the data itself was synced.
    if (!['EINVAL', 'ENOTSUP', 'EOPNOTSUPP', 'EISDIR', 'EBADF', 'EPERM'].includes(String(errorCodeOf(error))))
      throw error;
  } finally {
    await handle?.close();
  }
}
