import { once } from 'node:events';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PostgresDriver } from '../../src/ledger/postgres.ts';
import { startPostgres, type PostgresInstance } from '../support/postgres.ts';

/**
 * A forwarder that can hold the server's replies and hand them over in one write, so the client reads
 * the end of one query and the server's goodbye (57P01, admin shutdown) in the same chunk: the moment
 * the pool passes the client on to a waiting transaction is then exactly the moment the error is emitted.
 */
class HoldingProxy {
  private holding = false;
  private held: Buffer[] = [];
  private serverEnded: Promise<unknown> = Promise.resolve();
  private readonly pairs = new Set<{ client: Socket; upstream: Socket }>();
  private readonly server: Server;

  private constructor(private readonly targetPort: number) {
    this.server = createServer((client) => this.accept(client));
  }

  static async start(targetPort: number): Promise<HoldingProxy> {
    const proxy = new HoldingProxy(targetPort);
    proxy.server.listen(0, '127.0.0.1');
    await once(proxy.server, 'listening');
    return proxy;
  }

  get port(): number {
    return (this.server.address() as { port: number }).port;
  }

  hold(): void {
    this.holding = true;
  }

  heldBytes(): number {
    return this.held.reduce((sum, chunk) => sum + chunk.length, 0);
  }

  /** Resolves when the server closed the held connection. */
  whenServerEnded(): Promise<unknown> {
    return this.serverEnded;
  }

  /** Everything held, in one write, then the server's end. */
  release(): void {
    this.holding = false;
    for (const { client } of this.pairs) {
      client.end(Buffer.concat(this.held));
    }
    this.held = [];
  }

  async stop(): Promise<void> {
    for (const { client, upstream } of this.pairs) {
      client.destroy();
      upstream.destroy();
    }
    this.server.close();
    await once(this.server, 'close');
  }

  private accept(client: Socket): void {
    const upstream = createConnection({ host: '127.0.0.1', port: this.targetPort });
    const pair = { client, upstream };
    this.pairs.add(pair);
    client.on('data', (chunk: Buffer) => upstream.write(chunk));
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
    upstream.on('data', (chunk: Buffer) => {
      if (this.holding) this.held.push(chunk);
      else client.write(chunk);
    });
    this.serverEnded = once(upstream, 'end');
    upstream.on('end', () => {
      if (!this.holding) client.end();
    });
    client.on('close', () => this.pairs.delete(pair));
  }
}

describe('PostgreSQL ledger: a backend terminated as its client is handed on', () => {
  let postgres: PostgresInstance;
  let proxy: HoldingProxy;

  beforeAll(async () => {
    postgres = await startPostgres();
    proxy = await HoldingProxy.start(postgres.port);
  }, 60_000);

  afterAll(async () => {
    await proxy?.stop();
    await postgres?.stop();
  });

  it('fails the waiting transaction instead of the process (57P01 read with the previous reply)', async () => {
    const driver = await PostgresDriver.connect(`postgres://bridge@127.0.0.1:${proxy.port}/postgres`, 1);
    const uncaught: unknown[] = [];
    const onUncaught = (error: unknown): void => void uncaught.push(error);
    process.on('uncaughtException', onUncaught);
    try {
      const row = await driver.get<{ pid: number }>('SELECT pg_backend_pid() AS pid');
      const pid = row?.pid as number;

      proxy.hold();
      // The pool's only client runs a plain query; the transaction waits for that client.
      const plain = driver.get<{ one: number }>('SELECT 1 AS one');
      const transaction = driver.transaction((tx) => tx.get('SELECT 2 AS two'));
      transaction.catch(() => undefined);
      while (proxy.heldBytes() === 0) await new Promise((resolve) => setTimeout(resolve, 5));

      // The backend is idle now (its reply is held here): shut it down the way a fast shutdown does.
      const admin = new pg.Client({ connectionString: postgres.url });
      await admin.connect();
      await admin.query('SELECT pg_terminate_backend($1)', [pid]);
      await admin.end();
      await proxy.whenServerEnded();

      proxy.release();
      await expect(plain).resolves.toEqual({ one: 1 });
      await expect(transaction).rejects.toThrow();
      // Let any error emitted without a listener surface.
      await new Promise((resolve) => setImmediate(resolve));
      expect(uncaught).toEqual([]);

      // The pool replaces the dead client: the ledger works again without a restart.
      await expect(driver.transaction((tx) => tx.get('SELECT 3 AS three'))).resolves.toEqual({ three: 3 });
    } finally {
      process.off('uncaughtException', onUncaught);
      await driver.close();
    }
  }, 30_000);
});
