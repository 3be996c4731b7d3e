import type { OnExisting } from '../mapping/index.ts';

interface UploadRequestBase {
  /** Path relative to the target folder (already sanitized by the mapping; transport re-checks containment). */
  relativePath: string;
  onExisting: OnExisting;
}

/**
 * The content whole (`bytes`), or as a stream read once while it is written (`stream`, e.g. a
 * download too large to hold): a streamed upload is not retried once its first chunk was read, and
 * an error the stream itself throws (say, a size limit) reaches the caller unchanged.
 */
export type UploadRequest = UploadRequestBase & ({ bytes: Buffer } | { stream: AsyncIterable<Uint8Array> });

export interface UploadResult {
  /** Final path relative to the target folder (differs from the request under the `version` policy). */
  remotePath: string;
  bytes: number;
  /**
   * A try within this upload left a temporary file it could not remove (its connection died and the removal on
   * the next one was refused): the caller should sweep with `removeLeftoverTemps` once it may (and say so if that fails).
   */
  mayHaveLeftTemps?: true;
}

/** Credentials that came with the hook call (`secrets`), for targets configured to use them. */
export interface HookCredentials {
  username?: string;
  password?: string;
  privateKey?: string;
  passphrase?: string;
}

export interface RemoteEntry {
  /** Path relative to the target folder. */
  path: string;
  name: string;
  size: number;
  mtimeMs: number;
  isFile: boolean;
  /** Type bits, permissions and owner, when the listing carries them (SFTP listings do: OpenSSH lstats each name). */
  identity?: EntryIdentity;
}

export interface EntryIdentity {
  mode: number;
  uid: number;
  gid: number;
}

export interface PoolStats {
  size: number;
  inUse: number;
  idle: number;
  pending: number;
}

export interface OperationOptions {
  signal?: AbortSignal;
  credentials?: HookCredentials;
}

/** What a listing said about a file, so a read can refuse anything else found under its name. */
export interface ListedFile {
  size: number;
  mtimeMs: number;
}

export interface ReadOptions extends OperationOptions {
  /** Fails with ACK_FILE_TOO_LARGE (permanent) before reading more than this many bytes. */
  maxBytes?: number;
  /** When given, a file whose size or mtime differs from the listing is refused (ACK_FILE_NOT_REGULAR). */
  listed?: ListedFile;
  /**
   * Everything a listing said about the name. When the opened file is exactly that regular file, the
   * read needs no look of its own (a round trip less); anything else and it looks first, as without it.
   */
  seen?: ListedFile & { identity: EntryIdentity };
}

export interface PlannedMove {
  from: string;
  to: string;
}

export interface MoveOptions extends OperationOptions {
  /** Replace an existing file at the destination (default: fail with TARGET_EXISTS, permanent). */
  overwrite?: boolean;
}

/** A place files go: `sftp://` or `file://`. Errors are TransportError (BridgeError) with permanent/transient set. */
export interface Target {
  readonly name: string;
  /** URL without secrets, for messages: `sftp://erp@10.0.0.5:22/inbound`. */
  readonly description: string;
  upload(request: UploadRequest, options?: OperationOptions): Promise<UploadResult>;
  stat(relativePath: string, options?: OperationOptions): Promise<{ size: number; mtimeMs: number } | null>;
  /**
   * Reads a regular file, never through a symlink: a symlink, folder, device or a file swapped in
   * between the look and the read fails with ACK_FILE_NOT_REGULAR (permanent).
   */
  readFile(relativePath: string, options?: ReadOptions): Promise<Buffer>;
  /** Lists a folder lazily, page by page, so huge folders do not load at once. */
  list(relativeDir: string, options?: OperationOptions): AsyncIterable<RemoteEntry>;
  /** Renames within the target folder, creating the destination folder when missing. */
  move(fromRelative: string, toRelative: string, options?: MoveOptions): Promise<void>;
  /**
   * Several renames at once, never replacing (as `move` without `overwrite`): over SFTP all of them leave
   * together and cost one round trip. Each settles on its own: the error of each move, or undefined.
   */
  moveMany?(moves: readonly PlannedMove[], options?: OperationOptions): Promise<Array<Error | undefined>>;
  remove(relativePath: string, options?: OperationOptions): Promise<void>;
  /** Removes the temporary files an interrupted upload of `relativePath` left behind; returns their paths. */
  removeLeftoverTemps?(relativePath: string, options?: OperationOptions): Promise<string[]>;
  /** Readiness probe: connects (or reuses a connection) and checks the folder. */
  check(options?: OperationOptions): Promise<void>;
  stats(): PoolStats;
  close(): Promise<void>;
}
