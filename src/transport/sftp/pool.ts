import PQueue from 'p-queue';
import type { PoolStats } from '../contract.ts';
import { classifyError, isConnectionLevel, TransportError } from '../errors.ts';
import type { Connection, Credentials, TargetContext } from './context.ts';
import { connectWithRetry } from './connect.ts';
import { delay, withTimeout } from './operations.ts';
import { abandonConnection } from './ssh2-internals.ts';

/** A connection of the pool, or one still being set up, and how many operations are riding on it. */
interface Slot {
  conn: Connection | undefined;
  readonly ready: Promise<Connection>;
  load: number;
}

/**
 * Connections for one credential set: at most `size`, each carrying up to `inflightPerConnection`
 * operations at once. Over a WAN link one operation per connection leaves the line idle for a round
 * trip per request; SFTP request ids let several uploads share a channel, so a second operation rides
 * an existing connection instead of waiting for it (and a third login is never needed for that).
 */
export class Pool {
  private readonly queue: PQueue;
  private readonly slots = new Set<Slot>();
  private closing = false;

  constructor(
    private readonly context: TargetContext,
    private readonly credentials: Credentials,
    readonly key: string,
  ) {
    const { size, inflightPerConnection } = context.config.pool;
    this.queue = new PQueue({ concurrency: size * inflightPerConnection });
    this.queue.on('add', () => context.changed());
  }

  stats(): PoolStats {
    let size = 0;
    let inUse = 0;
    let idle = 0;
    for (const slot of this.slots) {
      if (slot.conn) size++;
      if (slot.load > 0) inUse++;
      else if (slot.conn) idle++;
    }
    return { size, inUse, idle, pending: this.queue.size };
  }

  isQuiet(): boolean {
    return this.queue.size === 0 && this.queue.pending === 0 && [...this.slots].every((slot) => slot.load === 0);
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
    /** null: `fn` keeps its own time (an upload from a stream, whose source may be slow). */
    timeoutMs: number | null = this.context.config.pool.operationTimeoutMs,
  ): Promise<T> {
    const { hostLabel } = this.context;
    const task = async (): Promise<T> => {
      for (let attempt = 1; ; attempt++) {
        const slot = await this.acquire(operation, signal);
        const conn = slot.conn as Connection;
        if (signal?.aborted) {
          this.release(slot, false);
          throw this.cancelled(operation, path, signal.reason);
        }
        try {
          const result =
            timeoutMs === null
              ? await fn(conn)
              : await withTimeout(fn(conn), timeoutMs, () => conn.client, {
                  host: hostLabel,
                  what: operation,
                  path: path || '.',
                });
          this.release(slot, false);
          return result;
        } catch (error) {
          const broken = isConnectionLevel(error) || !conn.alive;
          this.release(slot, broken);
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

  /** Holds one place on a connection (and one queue slot) until `release` is called, e.g. for a paged listing. */
  lease(
    operation: string,
    path: string,
    signal: AbortSignal | undefined,
  ): Promise<{ conn: Connection; release(broken: boolean): void }> {
    return new Promise((resolveLease, rejectLease) => {
      this.enqueue(
        async () => {
          const slot = await this.acquire(operation, signal);
          const conn = slot.conn as Connection;
          await new Promise<void>((done) => {
            let released = false;
            resolveLease({
              conn,
              release: (broken) => {
                if (released) return;
                released = true;
                this.release(slot, broken || !conn.alive);
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

  private cancelled(operation: string, path: string, cause: unknown): TransportError {
    const { hostLabel } = this.context;
    return new TransportError(
      'ABORTED',
      `${operation} of ${path || '.'} on ${hostLabel} was cancelled before it started`,
      { permanent: false, host: hostLabel, path, cause },
    );
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
      if (!started && signal?.aborted && !(error instanceof TransportError))
        throw this.cancelled(operation, path, error);
      throw error;
    } finally {
      signal?.removeEventListener('abort', cancelIfQueued);
    }
  }

  /**
   * An idle connection first; else a new one while fewer than `size` exist (a handshake costs a few
   * round trips, but spreads the load and survives one connection's loss); else the least loaded
   * connection with room, even one still connecting. The queue's concurrency guarantees room somewhere.
   */
  private async acquire(operation: string, signal: AbortSignal | undefined): Promise<Slot> {
    const { config } = this.context;
    for (;;) {
      let idle: Slot | undefined;
      let leastLoaded: Slot | undefined;
      for (const slot of [...this.slots]) {
        if (slot.conn && !slot.conn.alive) {
          if (slot.load === 0) this.discard(slot);
          continue;
        }
        if (slot.load >= config.pool.inflightPerConnection) continue;
        if (slot.load === 0 && slot.conn && (!idle || (idle.conn as Connection).lastUsedAt < slot.conn.lastUsedAt))
          idle = slot;
        if (!leastLoaded || slot.load < leastLoaded.load) leastLoaded = slot;
      }
      if (idle) {
        const conn = idle.conn as Connection;
        idle.load++;
        if (Date.now() - conn.lastUsedAt >= config.pool.checkIdleAfterMs && !(await this.isLive(conn))) {
          idle.load--;
          this.context.logger.info({ connection: conn.id }, 'idle connection failed its liveness check; replacing it');
          this.discard(idle);
          continue;
        }
        this.context.changed();
        return idle;
      }
      const usable = [...this.slots].filter((slot) => !slot.conn || slot.conn.alive).length;
      if (usable < config.pool.size || !leastLoaded) return this.connectSlot(operation, signal);
      leastLoaded.load++;
      this.context.changed();
      try {
        leastLoaded.conn = await leastLoaded.ready;
      } catch (error) {
        leastLoaded.load--;
        throw error;
      }
      return leastLoaded;
    }
  }

  private async connectSlot(operation: string, signal: AbortSignal | undefined): Promise<Slot> {
    const ready = connectWithRetry(this.context, this.credentials, operation, signal);
    const slot: Slot = { conn: undefined, ready, load: 1 };
    this.slots.add(slot);
    this.context.changed();
    try {
      slot.conn = await ready;
      if (this.closing) {
        void endConnection(slot.conn);
        throw new TransportError('TARGET_CLOSED', `target "${this.context.name}" is closed`, {
          permanent: false,
          host: this.context.hostLabel,
        });
      }
      this.context.changed();
      return slot;
    } catch (error) {
      slot.load--;
      this.slots.delete(slot);
      this.context.changed();
      throw error;
    }
  }

  private release(slot: Slot, broken: boolean): void {
    slot.load--;
    const conn = slot.conn as Connection;
    conn.lastUsedAt = Date.now();
    // Other operations may still be riding a broken connection: they fail on their own and release it too.
    if (broken || !conn.alive || this.closing) {
      conn.alive = false;
      this.discard(slot);
    }
    this.context.changed();
  }

  private discard(slot: Slot): void {
    if (!this.slots.delete(slot)) return;
    if (slot.conn) void endConnection(slot.conn);
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
    for (const slot of [...this.slots]) {
      const conn = slot.conn;
      if (!conn || slot.load > 0) continue;
      if (!conn.alive || now - conn.lastUsedAt >= limit) {
        this.context.logger.debug({ connection: conn.id }, 'closing idle connection');
        this.discard(slot);
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
    for (const slot of [...this.slots]) this.discard(slot);
  }
}

async function endConnection(conn: Connection): Promise<void> {
  conn.alive = false;
  try {
    await withTimeout(conn.client.end(), 2_000, () => conn.client, { host: '', what: 'close' });
  } catch {
    abandonConnection(conn.client);
  }
}
