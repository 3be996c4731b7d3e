import PQueue from 'p-queue';
import type { PoolStats } from '../contract.ts';
import { classifyError, isConnectionLevel, TransportError } from '../errors.ts';
import type { Connection, Credentials, TargetContext } from './context.ts';
import { connectWithRetry } from './connect.ts';
import { delay, withTimeout } from './operations.ts';
import { rawClient } from './ssh2-internals.ts';

/** Connections for one credential set: at most `size`, one operation at a time on each. */
export class Pool {
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
    // p-queue also rejects a running task's add() on abort; a started operation must finish (the deadline
    // answer promises a running upload completes), so the caller's signal only cancels waiting in the queue.
    let started = false;
    const whileQueued = new AbortController();
    const cancelIfQueued = (): void => {
      if (!started) whileQueued.abort(signal?.reason);
    };
    if (signal?.aborted) cancelIfQueued();
    else signal?.addEventListener('abort', cancelIfQueued, { once: true });
    const startedTask = (): Promise<T> => {
      started = true;
      return task();
    };
    try {
      return await this.queue.add(startedTask, signal ? { signal: whileQueued.signal } : {});
    } catch (error) {
      if (!started && signal?.aborted && !(error instanceof TransportError)) {
        throw new TransportError(
          'ABORTED',
          `${operation} of ${path || '.'} on ${hostLabel} was cancelled before it started`,
          { permanent: false, host: hostLabel, path, cause: error },
        );
      }
      throw error;
    } finally {
      signal?.removeEventListener('abort', cancelIfQueued);
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
      const conn = await connectWithRetry(this.context, this.credentials, operation, signal);
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
}

async function endConnection(conn: Connection): Promise<void> {
  conn.alive = false;
  try {
    await withTimeout(conn.client.end(), 2_000, () => conn.client, { host: '', what: 'close' });
  } catch {
    rawClient(conn.client).destroy();
  }
}
