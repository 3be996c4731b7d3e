import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { BridgeMetrics } from './metrics.ts';

export interface OpsServer {
  /** `http://host:port` as bound. */
  url: string;
  port: number;
  close(): Promise<void>;
}

/** What `/readyz` reports; `ready: false` answers 503 with the same body. */
export type Readiness = { ready: boolean } & Record<string, unknown>;

/**
 * The one HTTP server of a process without a webhook (the `acks` loop): `GET /metrics` for Prometheus,
 * `/healthz` (the process runs) for liveness and, when the process has a readiness check, `/readyz`
 * (503 with the reason while it is not ready). Nothing else is served.
 */
export async function startOpsServer(options: {
  host: string;
  port: number;
  metrics: BridgeMetrics;
  readiness?: () => Promise<Readiness>;
}): Promise<OpsServer> {
  const paths = options.readiness ? '/metrics, /healthz and /readyz' : '/metrics and /healthz';
  const json = (response: ServerResponse, status: number, body: unknown): void => {
    response.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
    response.end(JSON.stringify(body));
  };
  const server = createServer((request, response) => {
    const path = (request.url ?? '/').split('?')[0];
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      response.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (path === '/healthz') return json(response, 200, { status: 'ok' });
    if (path === '/readyz' && options.readiness) {
      options.readiness().then(
        (state) => json(response, state.ready ? 200 : 503, state),
        (error: unknown) =>
          json(response, 503, { ready: false, error: error instanceof Error ? error.message : String(error) }),
      );
      return;
    }
    if (path === '/metrics') {
      options.metrics.render().then(
        ({ contentType, body }) => response.writeHead(200, { 'content-type': contentType }).end(body),
        (error: unknown) =>
          response
            .writeHead(500, { 'content-type': 'text/plain' })
            .end(`metrics failed: ${error instanceof Error ? error.message : String(error)}\n`),
      );
      return;
    }
    response.writeHead(404, { 'content-type': 'text/plain' }).end(`not found: this port serves ${paths}\n`);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => resolve());
  });
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return {
    url: `http://${host}:${address.port}`,
    port: address.port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
