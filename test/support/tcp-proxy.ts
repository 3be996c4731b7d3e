import { createConnection, createServer, type Server, type Socket } from 'node:net';

/**
 * A TCP forwarder on 127.0.0.1 that can stall: while stalled it accepts connections and reads bytes
 * but forwards nothing in either direction (a frozen link, not a refused one). On `resume` the held
 * bytes go through in order, as after a network outage that TCP survived.
 */
export class TcpProxy {
  private readonly server: Server;
  private readonly pairs = new Set<{ client: Socket; upstream: Socket | null }>();
  private held: Array<() => void> = [];
  private stalledSince: number | null = null;
  connections = 0;

  private constructor(
    private readonly targetPort: number,
    private readonly targetHost: string,
  ) {
    this.server = createServer((client) => this.accept(client));
  }

  static async start(targetPort: number, targetHost = '127.0.0.1'): Promise<TcpProxy> {
    const proxy = new TcpProxy(targetPort, targetHost);
    await new Promise<void>((resolve, reject) => {
      proxy.server.once('error', reject);
      proxy.server.listen(0, '127.0.0.1', () => resolve());
    });
    return proxy;
  }

  get port(): number {
    return (this.server.address() as { port: number }).port;
  }

  get stalled(): boolean {
    return this.stalledSince !== null;
  }

  stall(): void {
    this.stalledSince ??= Date.now();
  }

  resume(): void {
    this.stalledSince = null;
    const held = this.held;
    this.held = [];
    for (const action of held) action();
  }

  /** Open client connections (each one a bridge → sshd connection). */
  get open(): number {
    return this.pairs.size;
  }

  async close(): Promise<void> {
    this.resume();
    for (const pair of this.pairs) {
      pair.client.destroy();
      pair.upstream?.destroy();
    }
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private later(action: () => void): void {
    if (this.stalled) this.held.push(action);
    else action();
  }

  private accept(client: Socket): void {
    this.connections++;
    const pair: { client: Socket; upstream: Socket | null } = { client, upstream: null };
    this.pairs.add(pair);
    const pending: Buffer[] = [];
    const drop = (): void => {
      this.pairs.delete(pair);
      client.destroy();
      pair.upstream?.destroy();
    };
    client.on('data', (chunk: Buffer) =>
      this.later(() => (pair.upstream ? pair.upstream.write(chunk) : pending.push(chunk))),
    );
    client.on('error', drop);
    client.on('close', () => this.later(drop));
    // Even the upstream connection waits while stalled: a new SSH handshake hangs like the old ones.
    this.later(() => {
      if (client.destroyed) return;
      const upstream = createConnection({ host: this.targetHost, port: this.targetPort });
      pair.upstream = upstream;
      for (const chunk of pending.splice(0)) upstream.write(chunk);
      upstream.on('data', (chunk: Buffer) => this.later(() => client.write(chunk)));
      upstream.on('error', drop);
      upstream.on('close', () => this.later(drop));
    });
  }
}
