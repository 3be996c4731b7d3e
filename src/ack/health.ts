import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { BridgeMetrics } from '../observability/index.ts';

export interface AcksHealthServer {
  url: string;
  close(): Promise<void>;
}

/**
 * `/healthz` (the process runs), `/readyz` (503 while Rossum refuses our credentials or the ledger is
 * unreachable, with the reason) and `/metrics` for the acks process, which has no webhook of its own.
 */
export async function startAcksHealth(options: {
  host: string;
  port: number;
  metrics: BridgeMetrics;
  readiness: () => Promise<{ ready: boolean } & Record<string, unknown>>;
}): Promise<AcksHealthServer> {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const send = (status: number, body: string, type = 'application/json'): void => {
      res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' }).end(body);
    };
    if (req.method !== 'GET') return send(405, JSON.stringify({ error: 'GET only' }));
    if (path === '/healthz') return send(200, JSON.stringify({ status: 'ok' }));
    if (path === '/readyz') {
      void options.readiness().then(
        (state) => send(state.ready ? 200 : 503, JSON.stringify(state)),
        (error: unknown) =>
          send(503, JSON.stringify({ ready: false, error: error instanceof Error ? error.message : String(error) })),
      );
      return;
    }
    if (path === '/metrics') {
      void options.metrics.render().then(({ contentType, body }) => send(200, body, contentType));
      return;
    }
    send(404, JSON.stringify({ error: 'not found' }));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => resolve());
  });
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return {
    url: `http://${host}:${address.port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
