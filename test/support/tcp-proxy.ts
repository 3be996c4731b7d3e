import { createConnection, createServer, type Server, type Socket } from 'node:net';

/** A WAN link's shape: every byte waits `oneWayDelayMs` (plus up to `jitterMs`) in each direction. */
export interface LinkShape {
  oneWayDelayMs?: number;
  jitterMs?: number;
}

/**
 * Bytes for one direction of one connection, each released at its time and never before an earlier
 * one (a TCP stream keeps order however much its packets were delayed). One timer per direction.
 */
class DelayLine {
  private readonly due: Array<{ at: number; chunk: Buffer }> = [];
  private timer: NodeJS.Timeout | undefined;
  private lastAt: number;

  /** `notBefore`: nothing is delivered earlier (bytes sent before the TCP handshake could have finished). */
  constructor(
    private readonly shape: () => LinkShape,
    private readonly deliver: (chunk: Buffer) => void,
    notBefore = 0,
  ) {
    this.lastAt = notBefore;
  }

  push(chunk: Buffer): void {
    const { oneWayDelayMs = 0, jitterMs = 0 } = this.shape();
    if (oneWayDelayMs === 0 && jitterMs === 0 && this.due.length === 0 && this.lastAt <= Date.now()) {
      this.deliver(chunk);
      return;
    }
    const at = Math.max(Date.now() + oneWayDelayMs + Math.random() * jitterMs, this.lastAt);
    this.lastAt = at;
    this.due.push({ at, chunk });
    this.schedule();
  }

  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.due.length = 0;
  }

  private schedule(): void {
    if (this.timer || this.due.length === 0) return;
    const head = this.due[0] as { at: number };
    this.timer = setTimeout(() => this.flush(), Math.max(0, head.at - Date.now()));
  }

  private flush(): void {
    this.timer = undefined;
    const now = Date.now();
    while (this.due.length > 0 && (this.due[0] as { at: number }).at <= now + 1) {
      this.deliver((this.due.shift() as { chunk: Buffer }).chunk);
    }
    this.schedule();
  }
}

/**
 * A TCP forwarder on 127.0.0.1 that can delay (a WAN link's round trip, with jitter), stall and reset.
 * While stalled it accepts connections and reads bytes but forwards nothing in either direction (a
 * frozen link, not a refused one); on `resume` the held bytes go through in order, as after a network
 * outage that TCP survived. `reset` kills every connection with a TCP RST, as a NAT box that forgot them.
 */
export class TcpProxy {
  private readonly server: Server;
  private readonly pairs = new Set<{ client: Socket; upstream: Socket | null }>();
  private held: Array<() => void> = [];
  private stalledSince: number | null = null;
  connections = 0;
  /** Bytes forwarded from the server to the clients (what the bridge has been sent), for tests to wait on. */
  bytesToClients = 0;
  /** Bytes forwarded from the clients to the server (what reached sshd), likewise. */
  bytesToServer = 0;

  private constructor(
    private readonly targetPort: number,
    private readonly targetHost: string,
    public shape: LinkShape,
  ) {
    this.server = createServer({ noDelay: true }, (client) => this.accept(client));
  }

  static async start(targetPort: number, targetHost = '127.0.0.1', shape: LinkShape = {}): Promise<TcpProxy> {
    const proxy = new TcpProxy(targetPort, targetHost, shape);
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

  /** Every open connection dies with a TCP RST in both directions, mid-whatever it was doing. */
  reset(): void {
    for (const pair of [...this.pairs]) {
      this.pairs.delete(pair);
      pair.client.resetAndDestroy();
      pair.upstream?.resetAndDestroy();
    }
  }

  /** Transfers held back by a stall: above 0, something on the link is waiting for it to resume. */
  get heldTransfers(): number {
    return this.held.length;
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
    const shape = (): LinkShape => this.shape;
    // The client's connect finished at once here (a local accept); over the link it costs a round trip:
    // the SYN reaches the server after one delay (only then does the upstream connection open), the
    // SYN-ACK comes back after another, and only then could the client's first bytes set out.
    const { oneWayDelayMs: handshakeDelayMs = 0 } = this.shape;
    const toServer = new DelayLine(
      shape,
      (chunk) =>
        this.later(() => {
          if (!pair.upstream) pending.push(chunk);
          // A connection the client reset: what the link still held for it is lost, as TCP loses it.
          else if (!pair.upstream.destroyed) {
            this.bytesToServer += chunk.length;
            pair.upstream.write(chunk);
          }
        }),
      Date.now() + 3 * handshakeDelayMs,
    );
    const toClient = new DelayLine(shape, (chunk) =>
      this.later(() => {
        this.bytesToClients += chunk.length;
        client.write(chunk);
      }),
    );
    const drop = (): void => {
      this.pairs.delete(pair);
      toServer.stop();
      toClient.stop();
      client.destroy();
      pair.upstream?.destroy();
    };
    client.on('data', (chunk: Buffer) => toServer.push(chunk));
    client.on('error', drop);
    // The FIN travels the same delayed link as the bytes before it.
    const dropLater = (): void => {
      const { oneWayDelayMs = 0, jitterMs = 0 } = this.shape;
      setTimeout(() => this.later(drop), oneWayDelayMs + jitterMs + 1);
    };
    client.on('close', dropLater);
    // Even the upstream connection waits while stalled: a new SSH handshake hangs like the old ones.
    const openUpstream = (): void => {
      if (client.destroyed) return;
      const upstream = createConnection({ host: this.targetHost, port: this.targetPort, noDelay: true });
      pair.upstream = upstream;
      for (const chunk of pending.splice(0)) {
        this.bytesToServer += chunk.length;
        upstream.write(chunk);
      }
      upstream.on('data', (chunk: Buffer) => toClient.push(chunk));
      upstream.on('error', drop);
      upstream.on('close', dropLater);
    };
    if (handshakeDelayMs > 0) setTimeout(() => this.later(openUpstream), handshakeDelayMs);
    else this.later(openUpstream);
  }
}
