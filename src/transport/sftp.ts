import { createHash, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { posix } from 'node:path';
import PQueue from 'p-queue';
import type { Algorithms, Client as SshClient, ConnectConfig, FileEntryWithStats, SFTPWrapper, Stats } from 'ssh2';
import SftpClient from 'ssh2-sftp-client';
import type { Logger } from '../observability/index.ts';
import type {
  HookCredentials,
  OperationOptions,
  PoolStats,
  RemoteEntry,
  Target,
  UploadRequest,
  UploadResult,
} from './contract.ts';
import type { MoveOptions, TransportHooks } from './types.ts';
import type { TargetConfig } from './config.ts';
import { classifyError, errorCodeOf, isConnectionLevel, SFTP_STATUS, TransportError } from './errors.ts';
import { knownKeyTypes, parseKnownHosts, verifyHostKey, type HostKeyPolicy, type HostKeyVerdict } from './hostkey.ts';
import { containedPath, joinRemote, parentOf, versionedName } from './paths.ts';
import { removeLeftoverTemps } from './leftovers.ts';

/** Pool statistics plus counters that prove reuse (and feed metrics). */
export interface SftpPoolStats extends PoolStats {
  /** Configured maximum connections per credential set. */
  maxSize: number;
  /** Credential sets with a pool (1 unless `credentials: hookSecrets`). */
  pools: number;
  connectsTotal: number;
  connectFailuresTotal: number;
  handshakesInFlight: number;
}

interface Credentials {
  username: string;
  password?: string;
  privateKey?: string;
  passphrase?: string;
}

interface Connection {
  readonly id: number;
  readonly client: SftpClient;
  readonly sftp: SFTPWrapper;
  alive: boolean;
  lastUsedAt: number;
  readonly posixRename: boolean;
  /** Holds back the socket writes of requests sent back to back, so they leave in one segment. */
  readonly batch: (send: () => void) => void;
}

interface TargetContext {
  readonly name: string;
  readonly hostLabel: string;
  readonly host: string;
  readonly port: number;
  readonly config: TargetConfig;
  readonly policy: HostKeyPolicy;
  readonly handshakes: PQueue;
  readonly logger: Logger;
  readonly counters: { connects: number; connectFailures: number; handshakesInFlight: number; nextId: number };
  readonly hooks: TransportHooks;
  changed(): void;
}

/** Upload progress shared across a retry: what is safe to repeat and what to clean up. */
interface AttemptState {
  /** The rename was sent: repeating the upload could duplicate or misreport it. */
  committed: boolean;
  leftoverTemps: string[];
}

const MAX_POOLS = 32;
const MAX_VERSIONS = 9_999;

export class SftpTarget implements Target {
  readonly name: string;
  readonly description: string;
  private readonly context: TargetContext;
  private readonly base: string;
  private readonly configCredentials: Credentials | undefined;
  private readonly urlUsername: string | undefined;
  private readonly pools = new Map<string, Pool>();
  private readonly sweepTimer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    name: string,
    config: TargetConfig,
    url: { host: string; port: number; username: string | undefined; dir: string },
    options: { logger: Logger; hooks?: TransportHooks },
  ) {
    this.name = name;
    this.base = url.dir;
    this.urlUsername = url.username;
    const hostLabel = `${url.host.includes(':') ? `[${url.host}]` : url.host}:${url.port}`;
    const shownDir = url.dir === '.' ? '/~' : url.dir.startsWith('/') ? url.dir : `/~/${url.dir}`;
    this.description = `sftp://${url.username ? `${encodeURIComponent(url.username)}@` : ''}${hostLabel}${shownDir}`;
    const logger = options.logger.child({ target: name, host: hostLabel });

    const policy: HostKeyPolicy = {
      fingerprints:
        config.hostKey === undefined ? [] : Array.isArray(config.hostKey) ? config.hostKey : [config.hostKey],
      insecureAcceptAny: config.insecureAcceptAnyHostKey,
    };
    if (config.knownHosts) {
      let text: string;
      try {
        text = readFileSync(config.knownHosts, 'utf8');
      } catch (error) {
        throw new TransportError(
          'HOST_KEY_UNKNOWN',
          `target "${name}": cannot read knownHosts file ${config.knownHosts}: ${(error as Error).message}`,
          {
            permanent: true,
            host: hostLabel,
            cause: error,
          },
        );
      }
      policy.knownHosts = { entries: parseKnownHosts(text), source: config.knownHosts };
    }
    if (config.insecureAcceptAnyHostKey) {
      logger.warn(
        { insecureAcceptAnyHostKey: true },
        `INSECURE: target "${name}" accepts ANY host key from ${hostLabel}; anyone able to intercept the connection receives the exported files. Pin hostKey or knownHosts outside of tests.`,
      );
    }

    if (config.credentials === 'config') {
      let privateKey = config.privateKey;
      if (config.privateKeyPath) {
        try {
          privateKey = readFileSync(config.privateKeyPath, 'utf8');
        } catch (error) {
          throw new TransportError(
            'CREDENTIALS_INVALID',
            `target "${name}": cannot read privateKeyPath ${config.privateKeyPath}: ${(error as Error).message}`,
            {
              permanent: true,
              host: hostLabel,
              cause: error,
            },
          );
        }
      }
      this.configCredentials = {
        username: url.username ?? '',
        ...(config.password !== undefined ? { password: config.password } : {}),
        ...(privateKey !== undefined ? { privateKey } : {}),
        ...(config.passphrase !== undefined ? { passphrase: config.passphrase } : {}),
      };
    }

    const counters = { connects: 0, connectFailures: 0, handshakesInFlight: 0, nextId: 1 };
    const hooks = options.hooks ?? {};
    this.context = {
      name,
      hostLabel,
      host: url.host,
      port: url.port,
      config,
      policy,
      handshakes: new PQueue({ concurrency: config.pool.maxConcurrentHandshakes }),
      logger,
      counters,
      hooks,
      changed: () => hooks.onPoolChange?.(name, this.stats()),
    };

    const idleCloseMs = config.pool.idleCloseMs;
    if (idleCloseMs > 0) {
      this.sweepTimer = setInterval(() => this.sweep(), Math.max(250, Math.min(idleCloseMs / 2, 30_000)));
      this.sweepTimer.unref();
    }
  }

  async upload(request: UploadRequest, options?: OperationOptions): Promise<UploadResult> {
    const relative = containedPath(request.relativePath, this.context.hostLabel);
    const pool = this.poolFor(options?.credentials);
    const state: AttemptState = { committed: false, leftoverTemps: [] };
    return pool.run(
      'upload',
      relative,
      options?.signal,
      async (conn) => {
        await this.cleanupLeftovers(conn, state);
        return this.uploadOn(conn, relative, request, state);
      },
      () => !state.committed,
    );
  }

  async stat(relativePath: string, options?: OperationOptions): Promise<{ size: number; mtimeMs: number } | null> {
    const relative = containedPath(relativePath, this.context.hostLabel, { allowRoot: true });
    return this.poolFor(options?.credentials).run('stat', relative, options?.signal, async (conn) => {
      const stats = await statOrNull(conn, this.remote(relative));
      return stats ? { size: stats.size, mtimeMs: stats.mtime * 1000 } : null;
    });
  }

  async readFile(relativePath: string, options?: OperationOptions): Promise<Buffer> {
    const relative = containedPath(relativePath, this.context.hostLabel);
    return this.poolFor(options?.credentials).run('read', relative, options?.signal, (conn) =>
      readWholeFile(conn, this.remote(relative)),
    );
  }

  async *list(relativeDir: string, options?: OperationOptions): AsyncIterable<RemoteEntry> {
    const relative = containedPath(relativeDir, this.context.hostLabel, { allowRoot: true });
    const pool = this.poolFor(options?.credentials);
    const lease = await pool.lease('list', relative, options?.signal);
    let broken = false;
    try {
      const timeoutMs = this.context.config.pool.operationTimeoutMs;
      const label = { host: this.context.hostLabel, what: 'list', path: relative || '.' };
      const handle = await withTimeout(
        call<Buffer>((cb) => lease.conn.sftp.opendir(this.remote(relative), cb)),
        timeoutMs,
        () => lease.conn.client,
        label,
      );
      try {
        for (;;) {
          // One READDIR answer is one page (OpenSSH sends up to 100 names), so huge folders stream.
          const page = await withTimeout(
            readdirPage(lease.conn.sftp, handle),
            timeoutMs,
            () => lease.conn.client,
            label,
          );
          if (page === null) break;
          for (const entry of page) {
            const mode = entry.attrs.mode ?? 0;
            yield {
              path: relative === '' ? entry.filename : `${relative}/${entry.filename}`,
              name: entry.filename,
              size: entry.attrs.size ?? 0,
              mtimeMs: (entry.attrs.mtime ?? 0) * 1000,
              isFile: (mode & 0o170000) === 0o100000,
            };
          }
        }
      } finally {
        if (lease.conn.alive) await call<void>((cb) => lease.conn.sftp.close(handle, cb)).catch(() => undefined);
      }
    } catch (error) {
      broken = isConnectionLevel(error);
      throw classifyError(error, { host: this.context.hostLabel, operation: 'list', path: relative || '.' });
    } finally {
      lease.release(broken);
    }
  }

  async move(fromRelative: string, toRelative: string, options?: MoveOptions): Promise<void> {
    const from = containedPath(fromRelative, this.context.hostLabel);
    const to = containedPath(toRelative, this.context.hostLabel);
    const overwrite = options?.overwrite ?? false;
    await this.poolFor(options?.credentials).run('move', from, options?.signal, async (conn) => {
      await this.placeFile(conn, this.remote(from), to, overwrite ? 'overwrite' : 'fail');
    });
  }

  async remove(relativePath: string, options?: OperationOptions): Promise<void> {
    const relative = containedPath(relativePath, this.context.hostLabel);
    await this.poolFor(options?.credentials).run('remove', relative, options?.signal, async (conn) => {
      try {
        await call<void>((cb) => conn.sftp.unlink(this.remote(relative), cb));
      } catch (error) {
        if (errorCodeOf(error) !== SFTP_STATUS.NO_SUCH_FILE) throw error;
      }
    });
  }

  removeLeftoverTemps(relativePath: string, options?: OperationOptions): Promise<string[]> {
    return removeLeftoverTemps(this, this.context.config.upload, relativePath, options);
  }

  async check(options?: OperationOptions): Promise<void> {
    await this.poolFor(options?.credentials).run('check', '', options?.signal, async (conn) => {
      const stats = await statOrNull(conn, this.base);
      if (stats?.isDirectory()) return;
      if (stats)
        throw new TransportError('IO_FAILED', `${this.description}: the target folder is a file`, {
          permanent: false,
          host: this.context.hostLabel,
          path: this.base,
        });
      if (!this.context.config.upload.createDirs) {
        throw new TransportError(
          'NOT_FOUND',
          `${this.description}: the target folder does not exist (and upload.createDirs is off)`,
          {
            permanent: false,
            host: this.context.hostLabel,
            path: this.base,
          },
        );
      }
      await mkdirp(conn, this.base);
    });
  }

  stats(): SftpPoolStats {
    let size = 0;
    let inUse = 0;
    let idle = 0;
    let pending = 0;
    for (const pool of this.pools.values()) {
      const stats = pool.stats();
      size += stats.size;
      inUse += stats.inUse;
      idle += stats.idle;
      pending += stats.pending;
    }
    const { counters, config } = this.context;
    return {
      size,
      inUse,
      idle,
      pending,
      maxSize: config.pool.size,
      pools: this.pools.size,
      connectsTotal: counters.connects,
      connectFailuresTotal: counters.connectFailures,
      handshakesInFlight: counters.handshakesInFlight,
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    await Promise.all([...this.pools.values()].map((pool) => pool.close()));
    this.pools.clear();
    this.context.changed();
  }

  private remote(relative: string): string {
    return joinRemote(this.base, relative);
  }

  private poolFor(hookCredentials: HookCredentials | undefined): Pool {
    if (this.closed) {
      throw new TransportError('TARGET_CLOSED', `target "${this.name}" is closed`, {
        permanent: false,
        host: this.context.hostLabel,
      });
    }
    const credentials = this.credentialsFor(hookCredentials);
    const key =
      credentials === this.configCredentials ? (this.configPoolKey ??= poolKey(credentials)) : poolKey(credentials);
    let pool = this.pools.get(key);
    if (pool) {
      // Map order doubles as LRU order for eviction.
      this.pools.delete(key);
      this.pools.set(key, pool);
      return pool;
    }
    pool = new Pool(this.context, credentials, key);
    this.pools.set(key, pool);
    if (this.pools.size > MAX_POOLS) {
      for (const [oldKey, oldPool] of this.pools) {
        if (this.pools.size <= MAX_POOLS) break;
        if (oldPool.isQuiet()) {
          this.pools.delete(oldKey);
          void oldPool.close();
        }
      }
    }
    return pool;
  }

  private configPoolKey: string | undefined;

  private credentialsFor(hook: HookCredentials | undefined): Credentials {
    if (this.configCredentials) return this.configCredentials;
    const { hostLabel } = this.context;
    if (!hook || (!hook.password && !hook.privateKey)) {
      throw new TransportError(
        'CREDENTIALS_MISSING',
        `target "${this.name}" (${hostLabel}) takes credentials from the hook's secrets, but the hook call carried no password or privateKey — set them in the Rossum hook's secrets`,
        { permanent: true, host: hostLabel },
      );
    }
    const username = hook.username ?? this.urlUsername;
    if (!username) {
      throw new TransportError(
        'CREDENTIALS_MISSING',
        `target "${this.name}" (${hostLabel}) has no username: put it in the URL or the hook's secrets`,
        {
          permanent: true,
          host: hostLabel,
        },
      );
    }
    return {
      username,
      ...(hook.password ? { password: hook.password } : {}),
      ...(hook.privateKey ? { privateKey: hook.privateKey } : {}),
      ...(hook.passphrase ? { passphrase: hook.passphrase } : {}),
    };
  }

  private sweep(): void {
    for (const pool of this.pools.values()) pool.closeIdle();
  }

  private async cleanupLeftovers(conn: Connection, state: AttemptState): Promise<void> {
    while (state.leftoverTemps.length > 0) {
      const temp = state.leftoverTemps.pop() as string;
      await call<void>((cb) => conn.sftp.unlink(temp, cb)).catch(() => undefined);
    }
  }

  private async uploadOn(
    conn: Connection,
    relative: string,
    request: UploadRequest,
    state: AttemptState,
  ): Promise<UploadResult> {
    const { upload } = this.context.config;
    const name = posix.basename(relative);
    // A random token keeps two uploads of the same name (version policy, racing replicas) from sharing a temp
    // file. randomUUID draws from a cached pool; randomBytes(4) cost a call into OpenSSL per upload.
    const tempName = `${upload.tempPrefix}${name}.${randomUUID().slice(0, 8)}${upload.tempSuffix}`;
    const tempRelative =
      upload.tempDir !== null
        ? joinRemote(containedPath(upload.tempDir, this.context.hostLabel), tempName)
        : joinRemote(parentOf(relative) || '.', tempName);
    const tempRemote = this.remote(tempRelative === '.' ? tempName : tempRelative);
    let tempWritten = false;
    try {
      let handle: Buffer;
      try {
        handle = await openForWrite(conn, tempRemote);
      } catch (error) {
        if (!upload.createDirs || !isNoSuchFile(error)) throw error;
        await mkdirp(conn, posix.dirname(tempRemote));
        handle = await openForWrite(conn, tempRemote);
      }
      tempWritten = true;
      const written = await writeWholeFile(
        conn,
        handle,
        request.bytes,
        upload.mode === undefined ? undefined : Number.parseInt(upload.mode, 8),
      );
      if (upload.verifySize && written.size !== request.bytes.length) {
        throw new TransportError(
          'SIZE_MISMATCH',
          `upload of ${relative} to ${this.context.hostLabel}: the server stored ${written.size} bytes of ${request.bytes.length}; the file was not published`,
          { permanent: false, host: this.context.hostLabel, path: relative },
        );
      }
      state.committed = true;
      const remotePath = await this.placeFile(conn, tempRemote, relative, request.onExisting);
      tempWritten = false;
      return { remotePath, bytes: request.bytes.length };
    } catch (error) {
      if (tempWritten) {
        if (conn.alive) await call<void>((cb) => conn.sftp.unlink(tempRemote, cb)).catch(() => undefined);
        else state.leftoverTemps.push(tempRemote);
      }
      throw error;
    }
  }

  /**
   * Renames `fromRemote` to `relative` under the policy. Plain SFTP rename never replaces
   * (OpenSSH uses link + unlink, as SFTP v3 requires), which makes `fail` and `version` race-free.
   */
  private async placeFile(
    conn: Connection,
    fromRemote: string,
    relative: string,
    onExisting: UploadRequest['onExisting'],
  ): Promise<string> {
    const { upload } = this.context.config;
    const { hostLabel } = this.context;
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

    if (onExisting === 'overwrite') {
      const finalRemote = this.remote(relative);
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
        return relative;
      }
      try {
        await attempt(plainRename(finalRemote), finalRemote);
      } catch (error) {
        if (!(await statOrNull(conn, finalRemote))) throw error;
        // Without posix-rename there is a short window where the old file is gone and the new one not yet there.
        await call<void>((cb) => conn.sftp.unlink(finalRemote, cb));
        await plainRename(finalRemote)();
      }
      return relative;
    }

    const maxVersion = onExisting === 'version' ? MAX_VERSIONS : 1;
    for (let version = 1; version <= maxVersion; version++) {
      const candidate = versionedName(relative, version);
      const finalRemote = this.remote(candidate);
      try {
        await attempt(plainRename(finalRemote), finalRemote);
        return candidate;
      } catch (error) {
        if (isConnectionLevel(error) || !(await statOrNull(conn, finalRemote))) throw error;
        if (onExisting === 'fail') {
          throw new TransportError(
            'TARGET_EXISTS',
            `${relative} already exists on ${hostLabel} and the policy is onExisting: fail; nothing was changed`,
            {
              permanent: true,
              host: hostLabel,
              path: relative,
            },
          );
        }
      }
    }
    throw new TransportError(
      'TARGET_EXISTS',
      `${relative} and ${MAX_VERSIONS - 1} versions of it already exist on ${hostLabel}`,
      {
        permanent: true,
        host: hostLabel,
        path: relative,
      },
    );
  }
}

/** Connections for one credential set: at most `size`, one operation at a time on each. */
class Pool {
  private readonly queue: PQueue;
  private readonly idleConnections: Connection[] = [];
  private readonly open = new Set<Connection>();
  private busy = 0;
  private closing = false;

  constructor(
    private readonly context: TargetContext,
    private readonly credentials: Credentials,
    readonly key: string,
  ) {
    this.queue = new PQueue({ concurrency: context.config.pool.size });
    this.queue.on('add', () => context.changed());
  }

  stats(): PoolStats {
    return { size: this.open.size, inUse: this.busy, idle: this.idleConnections.length, pending: this.queue.size };
  }

  isQuiet(): boolean {
    return this.busy === 0 && this.queue.size === 0 && this.queue.pending === 0;
  }

  /**
   * Runs `operation` on a pooled connection. When the connection turns out dead and
   * `mayRetry()` says nothing irreversible happened, it runs once more on a fresh connection.
   */
  async run<T>(
    operation: string,
    path: string,
    signal: AbortSignal | undefined,
    fn: (conn: Connection) => Promise<T>,
    mayRetry: () => boolean = () => true,
  ): Promise<T> {
    const { hostLabel, config } = this.context;
    const task = async (): Promise<T> => {
      for (let attempt = 1; ; attempt++) {
        const conn = await this.acquire(operation, signal);
        try {
          const result = await withTimeout(fn(conn), config.pool.operationTimeoutMs, () => conn.client, {
            host: hostLabel,
            what: operation,
            path: path || '.',
          });
          this.release(conn, false);
          return result;
        } catch (error) {
          const broken = isConnectionLevel(error) || !conn.alive;
          this.release(conn, broken);
          // A timeout means a hung server, not a stale connection: retrying would only double the wait.
          const stale = broken && !(error instanceof TransportError && error.code === 'OPERATION_TIMEOUT');
          if (stale && attempt === 1 && mayRetry() && !signal?.aborted) {
            this.context.logger.info(
              { operation, path, connection: conn.id },
              'connection was dead; retrying on a fresh one',
            );
            continue;
          }
          throw classifyError(error, { host: hostLabel, operation, path: path || '.' });
        }
      }
    };
    return this.enqueue(task, signal, operation, path);
  }

  /** Holds one connection (and one queue slot) until `release` is called, e.g. for a paged listing. */
  lease(
    operation: string,
    path: string,
    signal: AbortSignal | undefined,
  ): Promise<{ conn: Connection; release(broken: boolean): void }> {
    return new Promise((resolveLease, rejectLease) => {
      this.enqueue(
        async () => {
          const conn = await this.acquire(operation, signal);
          await new Promise<void>((done) => {
            let released = false;
            resolveLease({
              conn,
              release: (broken) => {
                if (released) return;
                released = true;
                this.release(conn, broken || !conn.alive);
                done();
              },
            });
          });
        },
        signal,
        operation,
        path,
      ).catch(rejectLease);
    });
  }

  private async enqueue<T>(
    task: () => Promise<T>,
    signal: AbortSignal | undefined,
    operation: string,
    path: string,
  ): Promise<T> {
    const { hostLabel } = this.context;
    if (this.closing)
      throw new TransportError('TARGET_CLOSED', `target "${this.context.name}" is closed`, {
        permanent: false,
        host: hostLabel,
      });
    try {
      return await this.queue.add(task, signal ? { signal } : {});
    } catch (error) {
      if (signal?.aborted && !(error instanceof TransportError)) {
        throw new TransportError(
          'ABORTED',
          `${operation} of ${path || '.'} on ${hostLabel} was cancelled before it started`,
          { permanent: false, host: hostLabel, path, cause: error },
        );
      }
      throw error;
    }
  }

  private async acquire(operation: string, signal: AbortSignal | undefined): Promise<Connection> {
    const { config } = this.context;
    while (this.idleConnections.length > 0) {
      const conn = this.idleConnections.pop() as Connection;
      if (!conn.alive) {
        this.discard(conn);
        continue;
      }
      this.busy++;
      if (Date.now() - conn.lastUsedAt >= config.pool.checkIdleAfterMs && !(await this.isLive(conn))) {
        this.busy--;
        this.context.logger.info({ connection: conn.id }, 'idle connection failed its liveness check; replacing it');
        this.discard(conn);
        continue;
      }
      this.context.changed();
      return conn;
    }
    this.busy++;
    try {
      const conn = await this.connectWithRetry(operation, signal);
      this.open.add(conn);
      this.context.changed();
      return conn;
    } catch (error) {
      this.busy--;
      this.context.changed();
      throw error;
    }
  }

  private release(conn: Connection, broken: boolean): void {
    this.busy--;
    conn.lastUsedAt = Date.now();
    if (broken || !conn.alive || this.closing) this.discard(conn);
    else this.idleConnections.push(conn);
    this.context.changed();
  }

  private discard(conn: Connection): void {
    this.open.delete(conn);
    const index = this.idleConnections.indexOf(conn);
    if (index >= 0) this.idleConnections.splice(index, 1);
    void endConnection(conn);
    this.context.changed();
  }

  private async isLive(conn: Connection): Promise<boolean> {
    try {
      await withTimeout(
        conn.client.realPath('.'),
        Math.min(5_000, this.context.config.pool.operationTimeoutMs),
        () => conn.client,
        { host: this.context.hostLabel, what: 'liveness check' },
      );
      return conn.alive;
    } catch {
      return false;
    }
  }

  closeIdle(): void {
    const limit = this.context.config.pool.idleCloseMs;
    const now = Date.now();
    for (const conn of [...this.idleConnections]) {
      if (!conn.alive || now - conn.lastUsedAt >= limit) {
        this.context.logger.debug({ connection: conn.id }, 'closing idle connection');
        this.discard(conn);
      }
    }
  }

  async close(): Promise<void> {
    this.closing = true;
    // Let running and queued work finish (bounded), then end every connection; the bound's timer must
    // not outlive the close, or it keeps a finished process alive.
    const bound = new AbortController();
    await Promise.race([this.queue.onIdle(), delay(this.context.config.pool.operationTimeoutMs, bound.signal)]);
    bound.abort();
    for (const conn of [...this.open]) this.discard(conn);
  }

  private async connectWithRetry(operation: string, signal: AbortSignal | undefined): Promise<Connection> {
    const { retry } = this.context.config;
    let lastError: TransportError | undefined;
    for (let attempt = 1; attempt <= retry.attempts; attempt++) {
      if (signal?.aborted) break;
      try {
        return await this.context.handshakes.add(() => this.connectOnce(), signal ? { signal } : {});
      } catch (error) {
        lastError =
          error instanceof TransportError
            ? error
            : classifyError(error, { host: this.context.hostLabel, operation: 'connect' });
        if (NOT_RETRIED.has(lastError.code) || attempt === retry.attempts) break;
        const backoff = Math.min(retry.maxDelayMs, retry.minDelayMs * 2 ** (attempt - 1));
        await delay(backoff / 2 + Math.random() * (backoff / 2), signal);
      }
    }
    if (lastError) throw lastError;
    throw new TransportError('ABORTED', `${operation} on ${this.context.hostLabel} was cancelled while connecting`, {
      permanent: false,
      host: this.context.hostLabel,
    });
  }

  private async connectOnce(): Promise<Connection> {
    const { config, policy, host, port, hostLabel, counters, logger, hooks, name } = this.context;
    const id = counters.nextId++;
    let verdict: HostKeyVerdict | undefined;
    let rawError: (Error & { level?: string }) | undefined;
    let alive = true;
    const client = new SftpClient(`${name}#${id}`, {
      // The library's defaults print to the console; we track state ourselves instead.
      error: () => undefined,
      end: () => undefined,
      close: () => undefined,
    });
    const ssh = rawClient(client);
    const markDead = (): void => {
      alive = false;
      if (conn) conn.alive = false;
    };
    let conn: Connection | undefined;
    ssh.on('error', (error: Error & { level?: string }) => {
      rawError ??= error;
    });
    ssh.on('close', markDead);
    ssh.on('end', markDead);

    const connectConfig: ConnectConfig = {
      host,
      port,
      username: this.credentials.username,
      readyTimeout: config.pool.connectTimeoutMs,
      keepaliveInterval: config.pool.keepaliveMs,
      keepaliveCountMax: 3,
      hostVerifier: (key: Buffer) => {
        verdict = verifyHostKey(policy, host, port, key);
        return verdict.ok;
      },
      ...(this.credentials.password !== undefined ? { password: this.credentials.password } : {}),
      ...(this.credentials.privateKey !== undefined ? { privateKey: this.credentials.privateKey } : {}),
      ...(this.credentials.passphrase !== undefined ? { passphrase: this.credentials.passphrase } : {}),
    };
    const algorithms = algorithmsFor(config, policy, host, port);
    if (algorithms) connectConfig.algorithms = algorithms;

    const started = Date.now();
    counters.handshakesInFlight++;
    this.context.changed();
    try {
      const sftp = await withTimeout(
        client.connect(connectConfig),
        config.pool.connectTimeoutMs + 1_000,
        () => client,
        { host: hostLabel, what: 'connect' },
      );
      if (!alive)
        throw new TransportError('CONNECTION_LOST', `${hostLabel} closed the connection right after login`, {
          permanent: false,
          host: hostLabel,
        });
      sftp.on('close', markDead);
      conn = {
        id,
        client,
        sftp,
        alive: true,
        lastUsedAt: Date.now(),
        posixRename: offersExtension(sftp, 'posix-rename@openssh.com'),
        batch: socketBatcher(ssh),
      };
      counters.connects++;
      hooks.onConnect?.({ target: name, ok: true, durationMs: Date.now() - started });
      logger.debug({ connection: id, ms: Date.now() - started }, 'sftp connected');
      return conn;
    } catch (error) {
      ssh.destroy();
      counters.connectFailures++;
      const failure = this.describeConnectFailure(error, verdict, rawError);
      hooks.onConnect?.({ target: name, ok: false, durationMs: Date.now() - started, code: failure.code });
      logger.warn({ code: failure.code, err: failure.message }, 'sftp connect failed');
      throw failure;
    } finally {
      counters.handshakesInFlight--;
      this.context.changed();
    }
  }

  private describeConnectFailure(
    error: unknown,
    verdict: HostKeyVerdict | undefined,
    rawError: (Error & { level?: string }) | undefined,
  ): TransportError {
    const { hostLabel, name, policy } = this.context;
    const base = { permanent: false, host: hostLabel, cause: error };
    if (verdict && !verdict.ok) {
      if (verdict.reason === 'unknown') {
        const source = policy.knownHosts
          ? `no entry for ${hostLabel} in ${policy.knownHosts.source}`
          : 'no hostKey configured';
        return new TransportError(
          'HOST_KEY_UNKNOWN',
          `host key of ${hostLabel} is not known (${source}); it presented ${verdict.presented} (${verdict.keyType}). Verify it with the server's administrator, then add it to target "${name}" (hostKey or knownHosts).`,
          base,
        );
      }
      const expected =
        verdict.reason === 'revoked' ? 'it is marked @revoked' : `expected ${verdict.expected.join(' or ')}`;
      return new TransportError(
        'HOST_KEY_MISMATCH',
        `host key mismatch for ${hostLabel}: server presented ${verdict.presented} (${verdict.keyType}), ${expected}. Connection refused. If the server's key changed on purpose, confirm the new fingerprint with its administrator and update hostKey/knownHosts of target "${name}"; otherwise someone may be intercepting the connection.`,
        base,
      );
    }
    const message = rawError?.message ?? (error instanceof Error ? error.message : String(error));
    if (rawError?.level === 'client-authentication' || /authentication methods failed/i.test(message)) {
      return new TransportError(
        'AUTH_REJECTED',
        `${hostLabel} rejected the credentials of user "${this.credentials.username}" for target "${name}" — check the password or key configured for it`,
        base,
      );
    }
    if (/privateKey|private key|passphrase/i.test(message) && !(error instanceof TransportError)) {
      return new TransportError(
        'CREDENTIALS_INVALID',
        `target "${name}": the private key cannot be used (${message.replace(/^[a-zA-Z]+: /, '')}) — check privateKey and passphrase`,
        {
          ...base,
          permanent: true,
        },
      );
    }
    if (error instanceof TransportError) return error;
    if (rawError?.level === 'client-timeout' || /timed out/i.test(message)) {
      return new TransportError(
        'CONNECT_TIMEOUT',
        `connecting to ${hostLabel} timed out (SSH handshake not finished in ${this.context.config.pool.connectTimeoutMs} ms)`,
        base,
      );
    }
    return classifyError(rawError ?? error, { host: hostLabel, operation: 'connect' });
  }
}

const NOT_RETRIED = new Set([
  'HOST_KEY_MISMATCH',
  'HOST_KEY_UNKNOWN',
  'AUTH_REJECTED',
  'CREDENTIALS_INVALID',
  'CREDENTIALS_MISSING',
  'ABORTED',
]);

function algorithmsFor(
  config: TargetConfig,
  policy: HostKeyPolicy,
  host: string,
  port: number,
): Algorithms | undefined {
  // zod's shape matches ssh2's; its typings demand all of append/prepend/remove at once.
  const algorithms = config.algorithms ? ({ ...config.algorithms } as Algorithms) : undefined;
  if (algorithms?.serverHostKey) return algorithms;
  // Like OpenSSH: ask for the key type known_hosts can verify, not whatever the server prefers.
  const types = knownKeyTypes(policy, host, port).flatMap((type) =>
    type === 'ssh-rsa' ? ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'] : [type],
  );
  if (types.length === 0) return algorithms;
  return { ...(algorithms ?? {}), serverHostKey: { prepend: types, append: [], remove: [] } } as Algorithms;
}

/** ssh2-sftp-client keeps its ssh2 Client in `.client`; the typings do not say so. */
/**
 * ssh2 writes every SFTP packet to its socket at once, one syscall (and one wake-up of the server)
 * each. Corking the socket around requests sent together makes them one write; ssh2 keeps the
 * socket on a private field, so without it the requests simply go out one by one.
 */
function socketBatcher(ssh: SshClient): (send: () => void) => void {
  const socket = (ssh as unknown as { _sock?: { cork?: () => void; uncork?: () => void } })._sock;
  if (typeof socket?.cork !== 'function' || typeof socket.uncork !== 'function') return (send) => send();
  const { cork, uncork } = { cork: socket.cork.bind(socket), uncork: socket.uncork.bind(socket) };
  return (send) => {
    cork();
    try {
      send();
    } finally {
      uncork();
    }
  };
}

function rawClient(client: SftpClient): SshClient {
  return (client as unknown as { client: SshClient }).client;
}

function offersExtension(sftp: SFTPWrapper, name: string): boolean {
  // ssh2 records the server's SFTP extensions on a private field; absent means "do not rely on it".
  const extensions = (sftp as unknown as { _extensions?: Record<string, string> })._extensions;
  return extensions !== undefined && Object.hasOwn(extensions, name);
}

async function endConnection(conn: Connection): Promise<void> {
  conn.alive = false;
  try {
    await withTimeout(conn.client.end(), 2_000, () => conn.client, { host: '', what: 'close' });
  } catch {
    rawClient(conn.client).destroy();
  }
}

function openForWrite(conn: Connection, remotePath: string): Promise<Buffer> {
  return call<Buffer>((cb) => conn.sftp.open(remotePath, 'w', cb));
}

/** ssh2's smallest write payload (non-OpenSSH servers): one request never gets split behind our back. */
const SINGLE_WRITE_BYTES = 34_000 - 2 * 1024;

/**
 * A file that fits one write request: write, optional fchmod, fstat and close go out back to back on
 * one handle. SFTP servers answer a handle's requests in order, so the fstat sees every byte written
 * and the whole file costs one round trip after the open. Larger files are written one request after
 * another (no parallel writes: some servers mishandle them), then checked the same way.
 */
async function writeWholeFile(
  conn: Connection,
  handle: Buffer,
  bytes: Buffer,
  mode: number | undefined,
): Promise<{ size: number }> {
  const writeChunk = (offset: number, length: number): Promise<void> =>
    call<void>((cb) => conn.sftp.write(handle, bytes, offset, length, offset, (error) => cb(error, undefined)));
  const pending: Array<Promise<unknown>> = [];
  let stat: Promise<Stats> | undefined;
  let close: Promise<void> | undefined;
  const finish = (): void => {
    if (mode !== undefined)
      pending.push(call<void>((cb) => conn.sftp.fchmod(handle, mode, (error) => cb(error, undefined))));
    stat = call<Stats>((cb) => conn.sftp.fstat(handle, cb));
    close = call<void>((cb) => conn.sftp.close(handle, (error) => cb(error, undefined)));
  };
  try {
    if (bytes.length <= SINGLE_WRITE_BYTES) {
      // write, (fchmod,) fstat and close leave in one segment and are answered in order.
      conn.batch(() => {
        if (bytes.length > 0) pending.push(writeChunk(0, bytes.length));
        finish();
      });
    } else {
      for (let offset = 0; offset < bytes.length; offset += SINGLE_WRITE_BYTES) {
        await writeChunk(offset, Math.min(SINGLE_WRITE_BYTES, bytes.length - offset));
      }
      conn.batch(finish);
    }
  } catch (error) {
    await call<void>((cb) => conn.sftp.close(handle, (closeError) => cb(closeError, undefined))).catch(() => undefined);
    throw error;
  }
  const results = await Promise.allSettled([...pending, stat as Promise<Stats>, close as Promise<void>]);
  for (const result of results) if (result.status === 'rejected') throw result.reason;
  return { size: (await (stat as Promise<Stats>)).size };
}

const READ_CHUNK_BYTES = 32 * 1024;

/**
 * open, then fstat and the first read on the same handle back to back (answered in order), more reads
 * only while the file is longer, close. An empty file is an empty Buffer (ssh2-sftp-client's `get`
 * gave no Buffer for it), and a small file costs two round trips after the open.
 */
async function readWholeFile(conn: Connection, remotePath: string): Promise<Buffer> {
  const handle = await call<Buffer>((cb) => conn.sftp.open(remotePath, 'r', cb));
  const readAt = (position: number): Promise<Buffer> =>
    new Promise((resolveRead, rejectRead) => {
      // ssh2 answers a read at the end of the file with zero bytes.
      conn.sftp.read(
        handle,
        Buffer.allocUnsafe(READ_CHUNK_BYTES),
        0,
        READ_CHUNK_BYTES,
        position,
        (error, bytesRead, buffer) => (error ? rejectRead(error) : resolveRead(buffer.subarray(0, bytesRead))),
      );
    });
  try {
    const stat = call<Stats>((cb) => conn.sftp.fstat(handle, cb));
    let next = readAt(0);
    // Both at once: when the connection drops, the read fails too, and an unawaited rejection ends the process.
    const [{ size }] = await Promise.all([stat, next]);
    const chunks: Buffer[] = [];
    let length = 0;
    for (;;) {
      const chunk = await next;
      if (chunk.length === 0) break;
      chunks.push(chunk);
      length += chunk.length;
      // What the file held when opened; a file still growing was not offered as complete.
      if (length >= size) break;
      next = readAt(length);
    }
    return Buffer.concat(chunks, length);
  } finally {
    if (conn.alive)
      await call<void>((cb) => conn.sftp.close(handle, (error) => cb(error, undefined))).catch(() => undefined);
  }
}

/** Pools are per credential set; the key is a digest, so no secret is kept as a map key. */
function poolKey(credentials: Credentials): string {
  return createHash('sha256')
    .update(
      JSON.stringify([
        credentials.username,
        credentials.password ?? null,
        credentials.privateKey ?? null,
        credentials.passphrase ?? null,
      ]),
    )
    .digest('hex')
    .slice(0, 16);
}

function call<T>(invoke: (callback: (error: Error | null | undefined, value: T) => void) => void): Promise<T> {
  return new Promise((resolveCall, rejectCall) => {
    invoke((error, value) => (error ? rejectCall(error) : resolveCall(value)));
  });
}

function readdirPage(sftp: SFTPWrapper, handle: Buffer): Promise<FileEntryWithStats[] | null> {
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

function isNoSuchFile(error: unknown): boolean {
  const code = errorCodeOf(error);
  return code === SFTP_STATUS.NO_SUCH_FILE || code === 'ENOENT';
}

async function statOrNull(conn: Connection, remote: string): Promise<Stats | null> {
  try {
    return await call<Stats>((cb) => conn.sftp.stat(remote, cb));
  } catch (error) {
    if (isNoSuchFile(error)) return null;
    throw error;
  }
}

async function mkdirp(conn: Connection, remoteDir: string): Promise<void> {
  if (remoteDir === '' || remoteDir === '.' || remoteDir === '/') return;
  try {
    await call<void>((cb) => conn.sftp.mkdir(remoteDir, cb));
    return;
  } catch (error) {
    if (isNoSuchFile(error)) {
      await mkdirp(conn, posix.dirname(remoteDir));
      try {
        await call<void>((cb) => conn.sftp.mkdir(remoteDir, cb));
        return;
      } catch (again) {
        error = again;
      }
    }
    // Another connection may have created it meanwhile: fine if it is a folder now.
    const stats = await statOrNull(conn, remoteDir);
    if (stats?.isDirectory()) return;
    throw error;
  }
}

/** Rejects after `ms` and kills the connection, whose state is unknown from then on. */
function withTimeout<T>(
  promise: Promise<T>,
  ms: number,
  connection: () => SftpClient,
  label: { host: string; what: string; path?: string },
): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, rejectTimeout) => {
    timer = setTimeout(() => {
      rawClient(connection()).destroy();
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

function delay(ms: number, signal?: AbortSignal): Promise<void> {
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
