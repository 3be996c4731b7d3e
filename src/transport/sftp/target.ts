import PQueue from 'p-queue';
import type { FileEntryWithStats } from 'ssh2';
import type { Logger } from '../../observability/index.ts';
import type { TargetConfig } from '../config.ts';
import type {
  HookCredentials,
  MoveOptions,
  OperationOptions,
  PlannedMove,
  ReadOptions,
  RemoteEntry,
  Target,
  UploadRequest,
  UploadResult,
} from '../contract.ts';
import { classifyError, errorCodeOf, isConnectionLevel, SFTP_STATUS, TransportError } from '../errors.ts';
import { removeLeftoverTemps } from '../leftovers.ts';
import { StreamedSource } from '../source.ts';
import { containedPath } from '../paths.ts';
import type { TransportHooks } from '../types.ts';
import { remotePath, type Credentials, type SftpPoolStats, type TargetContext } from './context.ts';
import { configuredCredentials, hookCredentials, hostKeyPolicyFor, poolKey } from './credentials.ts';
import { call, readdirPage, readRegularFile, statOrNull, mkdirp, withTimeout } from './operations.ts';
import { Pool } from './pool.ts';
import { atomicUpload, cleanupLeftovers, placeFile, whileServerAnswers, type AttemptState } from './upload.ts';

/** An `sftp://` target: the operations of the Target contract over a pool of SSH connections per credential set. */
const MAX_POOLS = 32;

export class SftpTarget implements Target {
  readonly name: string;
  readonly description: string;
  private readonly context: TargetContext;
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
    this.urlUsername = url.username;
    const hostLabel = `${url.host.includes(':') ? `[${url.host}]` : url.host}:${url.port}`;
    const shownDir = url.dir === '.' ? '/~' : url.dir.startsWith('/') ? url.dir : `/~/${url.dir}`;
    this.description = `sftp://${url.username ? `${encodeURIComponent(url.username)}@` : ''}${hostLabel}${shownDir}`;
    const logger = options.logger.child({ target: name, host: hostLabel });

    const policy = hostKeyPolicyFor(name, config, hostLabel, logger);
    this.configCredentials = configuredCredentials(name, config, hostLabel, url.username);

    const counters = { connects: 0, connectFailures: 0, handshakesInFlight: 0, nextId: 1 };
    const hooks = options.hooks ?? {};
    this.context = {
      name,
      description: this.description,
      hostLabel,
      host: url.host,
      port: url.port,
      base: url.dir,
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
    const state: AttemptState = { committed: false, leftoverTemps: [], unremovedTemps: false };
    const content = 'stream' in request ? new StreamedSource(request.stream) : request.bytes;
    const source = content instanceof StreamedSource ? content : null;
    try {
      const result = await pool.run(
        'upload',
        relative,
        options?.signal,
        async (conn) => {
          if (source) source.busySince = Date.now();
          const upload = cleanupLeftovers(conn, state).then(() =>
            atomicUpload(this.context, conn, relative, request, state, content),
          );
          return source ? whileServerAnswers(upload, source, this.context, conn, relative) : upload;
        },
        () => !state.committed && !source?.started,
        source ? null : this.context.config.pool.operationTimeoutMs,
      );
      return state.unremovedTemps ? { ...result, mayHaveLeftTemps: true } : result;
    } catch (error) {
      throw source ? source.explain(error) : error;
    }
  }

  async stat(relativePath: string, options?: OperationOptions): Promise<{ size: number; mtimeMs: number } | null> {
    const relative = containedPath(relativePath, this.context.hostLabel, { allowRoot: true });
    return this.poolFor(options?.credentials).run('stat', relative, options?.signal, async (conn) => {
      const stats = await statOrNull(conn, this.remote(relative));
      return stats ? { size: stats.size, mtimeMs: stats.mtime * 1000 } : null;
    });
  }

  async readFile(relativePath: string, options?: ReadOptions): Promise<Buffer> {
    const relative = containedPath(relativePath, this.context.hostLabel);
    const place = { host: this.context.hostLabel, path: relative, where: this.description };
    return this.poolFor(options?.credentials).run('read', relative, options?.signal, (conn) =>
      readRegularFile(conn, this.remote(relative), place, options),
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
        // One READDIR answer is one page (OpenSSH sends up to 100 names), so huge folders stream. Several
        // READDIRs stay outstanding on the handle: the server answers them in order, each with the next
        // page, so a folder of 10,000 names costs a few round trips instead of a hundred.
        const window = this.context.config.pool.inflightPerConnection;
        const pages: Array<Promise<FileEntryWithStats[] | null>> = [];
        let ended = false;
        const request = (): void => {
          const page = readdirPage(lease.conn.sftp, handle);
          page.catch(() => undefined);
          pages.push(page);
        };
        for (let i = 0; i < window; i++) request();
        while (pages.length > 0) {
          const page = await withTimeout(
            pages.shift() as Promise<FileEntryWithStats[] | null>,
            timeoutMs,
            () => lease.conn.client,
            label,
          );
          if (page === null) {
            ended = true;
            continue;
          }
          if (!ended) request();
          for (const entry of page) {
            const mode = entry.attrs.mode ?? 0;
            yield {
              path: relative === '' ? entry.filename : `${relative}/${entry.filename}`,
              name: entry.filename,
              size: entry.attrs.size ?? 0,
              mtimeMs: (entry.attrs.mtime ?? 0) * 1000,
              isFile: (mode & 0o170000) === 0o100000,
              identity: { mode, uid: entry.attrs.uid ?? 0, gid: entry.attrs.gid ?? 0 },
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
      await placeFile(this.context, conn, this.remote(from), to, overwrite ? 'overwrite' : 'fail');
    });
  }

  async moveMany(moves: readonly PlannedMove[], options?: OperationOptions): Promise<Array<Error | undefined>> {
    const results: Array<Error | undefined> = new Array(moves.length).fill(undefined);
    const planned: Array<{ index: number; from: string; to: string }> = [];
    for (const [index, move] of moves.entries()) {
      try {
        planned.push({
          index,
          from: containedPath(move.from, this.context.hostLabel),
          to: containedPath(move.to, this.context.hostLabel),
        });
      } catch (error) {
        results[index] = error as Error;
      }
    }
    if (planned.length === 0) return results;
    // All plain renames leave together (never replacing: OpenSSH links then unlinks); the server answers them
    // in order. A rename that failed changed nothing, so each failure is done again by `move`, which creates a
    // missing folder and tells a taken name (TARGET_EXISTS) from other failures.
    let failed = planned;
    try {
      const settled = await this.poolFor(options?.credentials).run(
        'move',
        (planned[0] as { from: string }).from,
        options?.signal,
        async (conn) => {
          const rename = ({ from, to }: { from: string; to: string }): Promise<void> =>
            call<void>((cb) => conn.sftp.rename(this.remote(from), this.remote(to), cb));
          // inflightPerConnection 1 is for servers that mishandle concurrent requests: one at a time there.
          if (this.context.config.pool.inflightPerConnection === 1) {
            const settled: Array<PromiseSettledResult<void>> = [];
            for (const move of planned) settled.push(...(await Promise.allSettled([rename(move)])));
            return settled;
          }
          const renames: Array<Promise<void>> = [];
          conn.batch(() => {
            for (const move of planned) renames.push(rename(move));
          });
          return Promise.allSettled(renames);
        },
        // Some renames may have gone through on a connection that died: never run the batch twice.
        () => false,
      );
      failed = planned.filter((_, i) => settled[i]?.status === 'rejected');
    } catch {
      // Nothing known of the batch: each move on its own says what happened.
    }
    await Promise.all(
      failed.map(async ({ index, from, to }) => {
        try {
          await this.move(from, to, options);
        } catch (error) {
          results[index] = error as Error;
        }
      }),
    );
    return results;
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
      const stats = await statOrNull(conn, this.context.base);
      if (stats?.isDirectory()) return;
      if (stats)
        throw new TransportError('IO_FAILED', `${this.description}: the target folder is a file`, {
          permanent: false,
          host: this.context.hostLabel,
          path: this.context.base,
        });
      if (!this.context.config.upload.createDirs) {
        throw new TransportError(
          'NOT_FOUND',
          `${this.description}: the target folder does not exist (and upload.createDirs is off)`,
          {
            permanent: false,
            host: this.context.hostLabel,
            path: this.context.base,
          },
        );
      }
      await mkdirp(conn, this.context.base);
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
    return remotePath(this.context, relative);
  }

  private poolFor(hookCredentials: HookCredentials | undefined): Pool {
    if (this.closed) {
      throw new TransportError('TARGET_CLOSED', `target "${this.name}" is closed`, {
        permanent: false,
        host: this.context.hostLabel,
      });
    }
    const credentials = this.credentialsFor(hookCredentials);
    if (credentials === this.configCredentials) this.configPoolKey ??= poolKey(credentials);
    const key = credentials === this.configCredentials ? (this.configPoolKey as string) : poolKey(credentials);
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
    return this.configCredentials ?? hookCredentials(this.name, this.context.hostLabel, hook, this.urlUsername);
  }

  private sweep(): void {
    for (const pool of this.pools.values()) pool.closeIdle();
  }
}
