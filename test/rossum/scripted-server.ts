import {
  createServer,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import type { AddressInfo } from 'node:net';

/** One request as the server saw it, raw body included (to check signatures independently). */
export interface SeenRequest {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

export interface ScriptedReply {
  status: number;
  body?: string | object;
  headers?: Record<string, string>;
  /** Never answer (the client's timeout has to fire). */
  hang?: boolean;
}

export type Script = (request: SeenRequest, index: number) => ScriptedReply;

/** A real HTTP server on loopback that answers from a script and records every request. */
export class ScriptedServer {
  private constructor(
    private readonly server: Server,
    readonly url: string,
    readonly requests: SeenRequest[],
  ) {}

  static async start(script: Script | ScriptedReply[]): Promise<ScriptedServer> {
    const requests: SeenRequest[] = [];
    const pick: Script = Array.isArray(script)
      ? (_request, index) => script[Math.min(index, script.length - 1)] ?? { status: 500, body: 'script exhausted' }
      : script;
    const server = createServer((req: IncomingMessage, res: ServerResponse) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        const seen: SeenRequest = {
          method: req.method ?? '',
          path: req.url ?? '',
          headers: req.headers,
          body: Buffer.concat(chunks),
        };
        requests.push(seen);
        const reply = pick(seen, requests.length - 1);
        if (reply.hang) return;
        const isJson = typeof reply.body === 'object';
        const text = reply.body === undefined ? '' : isJson ? JSON.stringify(reply.body) : String(reply.body);
        res.writeHead(reply.status, {
          ...(isJson
            ? { 'content-type': 'application/json' }
            : reply.body === undefined
              ? {}
              : { 'content-type': 'text/plain' }),
          ...reply.headers,
        });
        res.end(text);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    const { port } = server.address() as AddressInfo;
    return new ScriptedServer(server, `http://127.0.0.1:${port}`, requests);
  }

  hookUrl(path = '/webhooks/rossum'): string {
    return `${this.url}${path}`;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** A port nothing listens on: bind, note the port, close. */
export async function closedPortUrl(): Promise<string> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return `http://127.0.0.1:${port}/webhooks/rossum`;
}
