import { EventEmitter, once } from 'node:events';
import { createConnection, createServer, type Server, type Socket } from 'node:net';

/**
 * A TCP forwarder with a gate on the client → server direction. Closing the gate lets connections
 * stay up but holds every byte the client sends from then on; the first held byte is the proof that
 * the client started an operation (`firstHeld()` resolves then). `open()` forwards what was held, in order.
 * Unlike a sleep, the test knows the operation is in flight, not just that time has passed.
 */
export class GatedProxy extends EventEmitter {
  private readonly server: Server;
  private readonly sockets = new Set<Socket>();
  private gateClosed = false;
  private held: Array<() => void> = [];
  /** Bytes held since the gate last closed. */
  heldBytes = 0;
  connections = 0;

  private constructor(
    private readonly targetPort: number,
    private readonly targetHost: string,
  ) {
    super();
    this.server = createServer((client) => this.accept(client));
  }

  static async start(targetPort: number, targetHost = '127.0.0.1'): Promise<GatedProxy> {
    const proxy = new GatedProxy(targetPort, targetHost);
    await new Promise<void>((resolve, reject) => {
      proxy.server.once('error', reject);
      proxy.server.listen(0, '127.0.0.1', () => resolve());
    });
    return proxy;
  }

  get port(): number {
    return (this.server.address() as { port: number }).port;
  }

  close(): void {
    this.gateClosed = true;
    this.heldBytes = 0;
  }

  /** Resolves when a byte from the client is held behind the closed gate. */
  async firstHeld(): Promise<void> {
    if (this.heldBytes > 0) return;
    await once(this, 'held');
  }

  open(): void {
    this.gateClosed = false;
    const held = this.held;
    this.held = [];
    for (const forward of held) forward();
  }

  async stop(): Promise<void> {
    this.open();
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(client: Socket): void {
    this.connections++;
    const upstream = createConnection({ host: this.targetHost, port: this.targetPort });
    this.sockets.add(client);
    this.sockets.add(upstream);
    const drop = (): void => {
      client.destroy();
      upstream.destroy();
      this.sockets.delete(client);
      this.sockets.delete(upstream);
    };
    client.on('data', (chunk: Buffer) => {
      if (!this.gateClosed) {
        upstream.write(chunk);
        return;
      }
      this.held.push(() => upstream.write(chunk));
      const first = this.heldBytes === 0;
      this.heldBytes += chunk.length;
      if (first) this.emit('held');
    });
    upstream.on('data', (chunk: Buffer) => client.write(chunk));
    client.on('error', drop);
    upstream.on('error', drop);
    client.on('close', drop);
    upstream.on('close', drop);
  }
}
