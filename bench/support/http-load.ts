import { connect, type Socket } from 'node:net';

/**
 * The benchmark's load generator: keep-alive HTTP/1.1 connections that send requests serialized
 * beforehand, one at a time per connection. It runs on the same cores as the bridge and sshd, and
 * Rossum's side never does in production, so it should cost as little CPU as a wire-level client can.
 */
export interface HttpAnswer {
  status: number;
  body: string;
}

/** The request's bytes, ready to write: headers and body in one buffer. */
export function prepareRequest(options: {
  host: string;
  port: number;
  path: string;
  headers: Record<string, string>;
  body: string;
}): Buffer {
  const body = Buffer.from(options.body, 'utf8');
  const head = [
    `POST ${options.path} HTTP/1.1`,
    `host: ${options.host}:${options.port}`,
    'connection: keep-alive',
    `content-length: ${body.length}`,
    ...Object.entries(options.headers).map(([name, value]) => `${name}: ${value}`),
    '',
    '',
  ].join('\r\n');
  return Buffer.concat([Buffer.from(head, 'latin1'), body]);
}

export class HttpLoadConnection {
  private received: Buffer = Buffer.alloc(0);
  private waiting: { resolve: (answer: HttpAnswer) => void; reject: (error: Error) => void } | undefined;

  private constructor(private readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.received = this.received.length === 0 ? chunk : Buffer.concat([this.received, chunk]);
      this.deliver();
    });
    const fail = (error: Error): void => {
      const waiting = this.waiting;
      this.waiting = undefined;
      waiting?.reject(error);
    };
    socket.on('error', fail);
    socket.on('close', () => fail(new Error('the server closed the connection')));
  }

  static open(host: string, port: number): Promise<HttpLoadConnection> {
    return new Promise((resolve, reject) => {
      const socket = connect({ host, port, noDelay: true }, () => {
        socket.off('error', reject);
        resolve(new HttpLoadConnection(socket));
      });
      socket.once('error', reject);
    });
  }

  send(request: Buffer): Promise<HttpAnswer> {
    if (this.waiting) return Promise.reject(new Error('one request at a time per connection'));
    // A socket the server already closed would swallow the request and never answer.
    if (this.socket.destroyed) return Promise.reject(new Error('the server closed the connection'));
    return new Promise((resolve, reject) => {
      this.waiting = { resolve, reject };
      this.socket.write(request);
    });
  }

  close(): void {
    this.socket.destroy();
  }

  /** Hands over one complete response (fastify always sends content-length for these replies). */
  private deliver(): void {
    const headEnd = this.received.indexOf('\r\n\r\n');
    if (headEnd < 0 || !this.waiting) return;
    const head = this.received.toString('latin1', 0, headEnd);
    const status = Number(head.slice(9, 12));
    const length = /\r\ncontent-length:\s*(\d+)/i.exec(head)?.[1];
    if (length === undefined) {
      this.waiting.reject(new Error(`response without content-length: ${head.split('\r\n')[0]}`));
      this.waiting = undefined;
      return;
    }
    const end = headEnd + 4 + Number(length);
    if (this.received.length < end) return;
    const body = this.received.toString('utf8', headEnd + 4, end);
    this.received = this.received.subarray(end);
    const { resolve } = this.waiting;
    this.waiting = undefined;
    resolve({ status, body });
  }
}
