import Fastify, { LogController, type FastifyPluginAsync, type FastifyReply } from 'fastify';
import type { AddressInfo } from 'node:net';
import { describeError, isBridgeError } from '../errors.ts';
import type { ExportHold } from '../ack/index.ts';
import type { ExportReply, ExportService } from '../export/index.ts';
import type { Logger, BridgeMetrics } from '../observability/index.ts';
import type { Intake } from './intake.ts';
import { verifySignature, type SignatureSettings } from './signature.ts';

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
  bodyLimitBytes: number;
  /** Answer Rossum before this, whatever the upload is doing (Rossum gives up at its timeout_s). */
  deadlineMs: number;
  /** Signed body → parsed, validated, routed and rendered export, or why not. */
  intake: Intake;
  logger: Logger;
  metrics: BridgeMetrics;
  readiness: () => Promise<ReadinessReport>;
  /** Held-export mode (202 + Location until the ERP answers), for mappings that ask for it. */
  hold?: ExportHold;
  /** More HTTP surfaces on the same port, each under its own path prefix (the operator console). */
  plugins?: ReadonlyArray<{ prefix: string; plugin: FastifyPluginAsync }>;
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
  const app = Fastify({
    loggerInstance: options.logger,
    bodyLimit: options.bodyLimitBytes,
    // Our own log lines say what happened to each export; per-request lines would only be noise.
    logController: new LogController({ disableRequestLogging: true }),
    return503OnClosing: true,
  });

  app.removeAllContentTypeParsers();
  // Keep the raw bytes: the signature is over them, and JSON is parsed only after it checks out.
  app.addContentTypeParser(['application/json', 'text/plain'], { parseAs: 'buffer' }, (_request, body, done) => done(null, body));

  app.setErrorHandler((error: { statusCode?: number; code?: string; message: string }, request, reply) => {
    const statusCode = error.statusCode && error.statusCode >= 400 && error.statusCode < 500 ? error.statusCode : 500;
    const message =
      error.code === 'FST_ERR_CTP_BODY_TOO_LARGE'
        ? `Body larger than the configured limit of ${options.bodyLimitBytes} bytes`
        : error.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE'
          ? `Unsupported content type "${request.headers['content-type'] ?? '(none)'}": send application/json`
          : statusCode === 500
            ? 'Internal error in the bridge; see its logs'
            : error.message;
    if (statusCode === 500) request.log.error({ err: describeError(error) }, 'unhandled error');
    return sendError(reply, statusCode, message, options.metrics);
  });

  app.post(WEBHOOK_PATH, async (request, reply) => {
    const raw = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
    const signature = verifySignature(raw, request.headers, options.signature);
    if (!signature.ok) {
      request.log.warn({ reason: signature.reason }, 'webhook call refused: bad signature');
      return sendError(reply, 401, signature.reason, options.metrics);
    }
    const intake = options.intake(raw);
    if (intake.kind === 'invalid') return sendError(reply, 400, intake.reason, options.metrics);
    if (intake.kind === 'ignored') {
      request.log.info({ event: intake.event, action: intake.action }, 'hook event ignored: only annotation_content.export exports');
      options.metrics.webhookRequests.inc({ status: '200' });
      return reply.code(200).send({});
    }
    const annotationId = intake.kind === 'ready' ? intake.prepared.annotationId : intake.annotationId;

    // A plain timer: AbortSignal.timeout costs several times more per request (weak refs, finalizers).
    const deadline = new AbortController();
    const abortAtDeadline = setTimeout(() => deadline.abort(new DOMException(`the ${options.deadlineMs} ms deadline passed`, 'TimeoutError')), options.deadlineMs);
    let result: ExportReply;
    try {
      result = await withDeadline(options.exportService.handleIntake(intake, { signal: deadline.signal, deadlineMs: options.deadlineMs }), options.deadlineMs, annotationId);
    } finally {
      clearTimeout(abortAtDeadline);
    }
    const held = options.hold ? await options.hold.hold(result, `${request.protocol}://${request.host}${HELD_PATH}`) : null;
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

  app.get('/healthz', async () => ({ status: 'ok' }));
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
      await app.close();
    },
  };
}

function sendError(reply: FastifyReply, statusCode: number, message: string, metrics: BridgeMetrics): FastifyReply {
  metrics.webhookRequests.inc({ status: String(statusCode) });
  // Both a plain `error` and Rossum's parsable error format, so the UI shows the reason.
  return reply.code(statusCode).send({ error: message, messages: [{ type: 'error', content: message }] });
}

/** The export keeps running after the deadline (its ledger claim makes the retry find it). */
async function withDeadline(work: Promise<ExportReply>, deadlineMs: number, annotationId: number): Promise<ExportReply> {
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
