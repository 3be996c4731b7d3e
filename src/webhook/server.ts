import Fastify, { LogController, type FastifyPluginAsync, type FastifyReply, type FastifyRequest } from 'fastify';
import type { AddressInfo } from 'node:net';
import { describeError, isBridgeError } from '../errors.ts';
import type { ExportHold } from '../ack/index.ts';
import type { ExportReply, ExportService } from '../export/index.ts';
import type { Logger, BridgeMetrics } from '../observability/index.ts';
import type { DeliveryClassifier } from './classify.ts';
import { readSignedBody, BodyRefusal, UnverifiedBytes } from './signed-body.ts';
import { readSignatureHeader, verifySignature, type SignatureSettings } from './signature.ts';

export const WEBHOOK_PATH = '/webhooks/rossum';
/** Where Rossum polls a held export (the Location of the 202). */
export const HELD_PATH = `${WEBHOOK_PATH}/held`;

export interface ReadinessReport {
  ready: boolean;
  checks: Record<string, { ok: boolean; error?: string }>;
}

export interface WebhookServerOptions {
  exportService: ExportService;
  signature: SignatureSettings;
  limits: WebhookLimits;
  /** Public base URL Rossum reaches this server at (held-export Location); else the request's own host. */
  publicUrl?: string;
  /** Take protocol and host from X-Forwarded-Proto / X-Forwarded-Host (only behind a proxy that sets them). */
  trustProxy?: boolean;
  /** Answer Rossum before this, whatever the upload is doing (Rossum gives up at its timeout_s). */
  deadlineMs: number;
  /** Signed body → parsed, validated, routed and rendered export, or why not. */
  classify: DeliveryClassifier;
  logger: Logger;
  metrics: BridgeMetrics;
  /** Whether this process can take webhooks (the bridge itself: ledger, config), not whether the ERPs answer. */
  readiness: () => Promise<ReadinessReport>;
  /** `/healthz?verbose`: what the process depends on (each target), reported without failing liveness. */
  healthDetail?: () => Promise<Record<string, unknown>>;
  /** Held-export mode (202 + Location until the ERP answers), for mappings that ask for it. */
  hold?: ExportHold;
  /** More HTTP surfaces on the same port, each under its own path prefix (the operator console). */
  plugins?: ReadonlyArray<{ prefix: string; plugin: FastifyPluginAsync }>;
}

/** What an unauthenticated caller can make the server hold, and for how long. */
export interface WebhookLimits {
  bodyBytes: number;
  /** Bytes of bodies not yet verified, summed over all connections; over it → 503 + Retry-After. */
  unverifiedBodyBytes: number;
  retryAfterS: number;
  headersTimeoutMs: number;
  bodyIdleTimeoutMs: number;
  /** Whole request (headers and body) must arrive within this. */
  requestTimeoutMs: number;
  keepAliveTimeoutMs: number;
}

/**
 * The HTTP edge: checks signature and body, dispatches on event/action, and turns an ExportReply into
 * the status Rossum acts on. Nothing below this file knows HTTP.
 */
export interface WebhookServer {
  /** Starts listening; port 0 picks a free one. */
  listen(options: { host: string; port: number }): Promise<{ url: string; port: number }>;
  /** Stops accepting, lets in-flight requests finish, then closes. */
  close(): Promise<void>;
}

export function buildWebhookServer(options: WebhookServerOptions): WebhookServer {
  const { limits } = options;
  const unverified = new UnverifiedBytes(limits.unverifiedBodyBytes);
  const app = Fastify({
    loggerInstance: options.logger,
    bodyLimit: limits.bodyBytes,
    requestTimeout: limits.requestTimeoutMs,
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    // Socket inactivity; the answer itself may take up to the deadline, so this must outlast it.
    connectionTimeout: Math.max(limits.requestTimeoutMs, options.deadlineMs) + 5_000,
    // Node checks the request and headers timeouts on this interval (30 s by default, longer than the timeouts).
    http: {
      headersTimeout: limits.headersTimeoutMs,
      connectionsCheckingInterval: Math.min(1_000, limits.headersTimeoutMs),
    },
    trustProxy: options.trustProxy ?? false,
    // Our own log lines say what happened to each export; per-request lines would only be noise.
    logController: new LogController({ disableRequestLogging: true }),
    return503OnClosing: true,
  });

  // Answers sent while stopping close their connection: an idle keep-alive socket would otherwise hold
  // the shutdown for the server's keep-alive timeout (72 s), past most orchestrators' grace period.
  let closing = false;
  app.addHook('onSend', async (_request, reply, payload) => {
    if (closing) reply.header('connection', 'close');
    return payload;
  });

  app.removeAllContentTypeParsers();
  // The raw bytes are hashed as they arrive and handed on only once the signature matches; JSON is parsed after that.
  app.addContentTypeParser(['application/json', 'text/plain'], (request, payload, done) => {
    const header = readSignatureHeader(request.headers, options.signature);
    if (!header.ok) return done(new BodyRefusal(401, header.reason), undefined);
    readSignedBody(
      payload,
      header,
      options.signature.secret,
      { limitBytes: limits.bodyBytes, idleMs: limits.bodyIdleTimeoutMs, retryAfterS: limits.retryAfterS },
      unverified,
    ).then(
      (body) => done(null, body),
      (error: Error) => done(error, undefined),
    );
  });

  app.setErrorHandler((error: { statusCode?: number; code?: string; message: string }, request, reply) => {
    if (error instanceof BodyRefusal) {
      if (error.statusCode === 401) request.log.warn({ reason: error.message }, 'webhook call refused: bad signature');
      // The rest of the body is never read: close the connection rather than drain it.
      reply.headers({ ...error.headers, connection: 'close' });
      return sendError(reply, error.statusCode, error.message, options.metrics);
    }
    const statusCode = error.statusCode && error.statusCode >= 400 && error.statusCode < 500 ? error.statusCode : 500;
    const message =
      error.code === 'FST_ERR_CTP_BODY_TOO_LARGE'
        ? `Body larger than the configured limit of ${limits.bodyBytes} bytes`
        : error.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE'
          ? `Unsupported content type "${request.headers['content-type'] ?? '(none)'}": send application/json`
          : statusCode === 500
            ? 'Internal error in the bridge; see its logs'
            : error.message;
    if (statusCode === 500) request.log.error({ err: describeError(error) }, 'unhandled error');
    return sendError(reply, statusCode, message, options.metrics);
  });

  const refuseEarly = async (request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | undefined> => {
    // Before any body byte is read: a wrong content type, an unsigned call or one announcing too big a body costs nothing.
    const contentType = request.headers['content-type'];
    if (contentType !== undefined && !/^\s*(application\/json|text\/plain)\s*(;|$)/i.test(contentType)) {
      return sendError(
        reply.header('connection', 'close'),
        415,
        `Unsupported content type "${contentType}": send application/json`,
        options.metrics,
      );
    }
    const header = readSignatureHeader(request.headers, options.signature);
    if (!header.ok) {
      request.log.warn({ reason: header.reason }, 'webhook call refused: bad signature');
      return sendError(reply.header('connection', 'close'), 401, header.reason, options.metrics);
    }
    const declared = Number(request.headers['content-length'] ?? 0);
    if (declared > limits.bodyBytes) {
      return sendError(
        reply.header('connection', 'close'),
        413,
        `Body larger than the configured limit of ${limits.bodyBytes} bytes`,
        options.metrics,
      );
    }
    return undefined;
  };

  app.post(WEBHOOK_PATH, { onRequest: refuseEarly }, async (request, reply) => {
    const receivedAt = Date.now();
    // The content-type parser let the body through only with a matching signature (or none required).
    const raw = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
    if (!Buffer.isBuffer(request.body)) {
      // No body at all, so the parser never ran: the signature must still be the one of an empty body.
      const signature = verifySignature(raw, request.headers, options.signature);
      if (!signature.ok) return sendError(reply, 401, signature.reason, options.metrics);
    }
    const delivery = options.classify(raw);
    if (delivery.kind === 'invalid') return sendError(reply, 400, delivery.reason, options.metrics);
    if (delivery.kind === 'ignored') {
      request.log.info(
        { event: delivery.event, action: delivery.action },
        'hook event ignored: only annotation_content.export exports',
      );
      options.metrics.webhookRequests.inc({ status: '200' });
      return reply.code(200).send({});
    }
    const annotationId = delivery.kind === 'ready' ? delivery.prepared.annotationId : delivery.annotationId;

    // A plain timer: AbortSignal.timeout costs several times more per request (weak refs, finalizers).
    const deadline = new AbortController();
    const abortAtDeadline = setTimeout(
      () => deadline.abort(new DOMException(`the ${options.deadlineMs} ms deadline passed`, 'TimeoutError')),
      options.deadlineMs,
    );
    let result: ExportReply;
    try {
      result = await withDeadline(
        options.exportService.handle(delivery, { signal: deadline.signal, deadlineMs: options.deadlineMs }),
        options.deadlineMs,
        annotationId,
      );
    } finally {
      clearTimeout(abortAtDeadline);
    }
    const held = options.hold ? await options.hold.hold(result, heldBaseUrl(request), receivedAt) : null;
    if (held) {
      options.metrics.webhookRequests.inc({ status: String(held.statusCode) });
      return reply.code(held.statusCode).headers(held.headers).send(held.body);
    }
    options.metrics.webhookRequests.inc({ status: String(result.statusCode) });
    return reply.code(result.statusCode).send(result.body);
  });

  app.get<{ Params: { exportId: string; token: string } }>(`${HELD_PATH}/:exportId/:token`, async (request, reply) => {
    if (!options.hold) return sendError(reply, 404, 'Held exports are not enabled', options.metrics);
    const answer = await options.hold.poll(Number(request.params.exportId), request.params.token);
    options.metrics.webhookRequests.inc({ status: String(answer.statusCode) });
    return reply.code(answer.statusCode).headers(answer.headers).send(answer.body);
  });

  const heldBaseUrl = (request: FastifyRequest): string =>
    options.publicUrl
      ? `${options.publicUrl.replace(/\/+$/, '')}${HELD_PATH}`
      : `${request.protocol}://${request.host}${HELD_PATH}`;

  app.get<{ Querystring: { verbose?: string } }>('/healthz', async (request) =>
    request.query.verbose !== undefined && options.healthDetail
      ? { status: 'ok', ...(await options.healthDetail()) }
      : { status: 'ok' },
  );
  app.get('/readyz', async (_request, reply) => {
    const report = await options.readiness();
    return reply.code(report.ready ? 200 : 503).send(report);
  });
  app.get('/metrics', async (_request, reply) => {
    const { contentType, body } = await options.metrics.render();
    return reply.type(contentType).send(body);
  });
  for (const { prefix, plugin } of options.plugins ?? []) app.register(plugin, { prefix });
  return {
    async listen({ host, port }) {
      await app.listen({ host, port });
      const address = app.server.address() as AddressInfo;
      const shownHost = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host;
      return { url: `http://${shownHost}:${address.port}${WEBHOOK_PATH}`, port: address.port };
    },
    async close() {
      closing = true;
      await app.close();
    },
  };
}

function sendError(reply: FastifyReply, statusCode: number, message: string, metrics: BridgeMetrics): FastifyReply {
  metrics.webhookRequests.inc({ status: String(statusCode) });
  // Both a plain `error` and Rossum's parsable error format, so the UI shows the reason.
  return reply.code(statusCode).send({ error: message, messages: [{ type: 'error', content: message }] });
}

/** The export keeps running after the deadline (its ledger claim makes the retry find it). Exported for its test. */
export async function withDeadline(
  work: Promise<ExportReply>,
  deadlineMs: number,
  annotationId: number,
): Promise<ExportReply> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<ExportReply>((resolve) => {
    timer = setTimeout(
      () =>
        resolve({
          statusCode: 503,
          outcome: 'deadline',
          body: {
            messages: [
              {
                type: 'error',
                content: `Export of annotation ${annotationId} did not finish within ${Math.round(deadlineMs / 1000)} s; it continues in the background and Rossum's retry will get its result without a second upload`,
              },
            ],
          },
        }),
      deadlineMs,
    );
  });
  try {
    return await Promise.race([work.catch((error: unknown) => unexpected(error)), deadline]);
  } finally {
    clearTimeout(timer);
  }
}

function unexpected(error: unknown): ExportReply {
  const permanent = isBridgeError(error) && error.permanent;
  return {
    statusCode: permanent ? 200 : 503,
    outcome: permanent ? 'failed' : 'transient_error',
    body: { messages: [{ type: 'error', content: `Export failed: ${describeError(error)}` }] },
  };
}
