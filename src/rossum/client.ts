import { z } from 'zod';
import { describeError } from '../errors.ts';
import type { Logger } from '../observability/index.ts';
import { RossumApiError, type RossumApiErrorCode } from './errors.ts';
import { cleanContent, ROSSUM_MESSAGE_LIMIT, truncateContent } from './limits.ts';
import { realSleep, type Sleep } from './sleep.ts';
import { DEFAULT_ALLOWED_HOSTS, trustedPayloadRoot } from './trust.ts';

/** Rossum annotation statuses the API accepts (as of the documented API). */
export const ANNOTATION_STATUSES = [
  'created',
  'importing',
  'failed_import',
  'split',
  'to_review',
  'reviewing',
  'in_workflow',
  'confirmed',
  'rejected',
  'exporting',
  'exported',
  'failed_export',
  'postponed',
  'deleted',
  'purged',
] as const;
export type AnnotationStatus = (typeof ANNOTATION_STATUSES)[number];

export const rossumApiConfigSchema = z
  .strictObject({
    baseUrl: z
      .url({ protocol: /^https?$/ })
      .optional()
      .describe(
        'API root including `/api`, e.g. `https://example.rossum.app/api`. When absent, taken from the export payload’s `base_url` (+ `/api`), but only when its host is in `allowedHosts`.',
      ),
    allowedHosts: z
      .array(
        z
          .string()
          .min(1)
          .regex(/^(\*\.)?[A-Za-z0-9.:[\]-]+$/, 'a host name, or `*.` followed by a domain'),
      )
      .optional()
      .describe(
        'Hosts a payload’s `base_url` may name when `baseUrl` is not set: exact names, or `*.domain` for its subdomains. Default `*.rossum.app`, `*.rossum.ai`. Our token and username/password are sent only to `baseUrl` or these hosts; a payload naming another host is refused (the outcome fails with ROSSUM_HOST_NOT_ALLOWED, shown by `status`).',
      ),
    token: z
      .string()
      .min(1)
      .optional()
      .describe(
        'A long-lived API token. Used as is; on 401 the client falls back to username/password when those are set.',
      ),
    username: z
      .string()
      .min(1)
      .optional()
      .describe('Rossum user for `POST /v1/auth/login` (a dedicated API user is recommended).'),
    password: z
      .string()
      .min(1)
      .optional()
      .describe('Password of `username`. Use `${ENV}` interpolation; never commit it.'),
    authScheme: z
      .enum(['Bearer', 'Token'])
      .default('Bearer')
      .describe('Authorization scheme sent with the key: `Bearer` (current), or `Token` for older deployments.'),
    timeoutMs: z
      .number()
      .int()
      .positive()
      .max(600_000)
      .default(30_000)
      .describe('Timeout of each API request, in milliseconds.'),
    retry: z
      .strictObject({
        attempts: z
          .number()
          .int()
          .min(1)
          .max(20)
          .default(5)
          .describe('Attempts per API call for 429, 408, 5xx and connection errors (1 = no retry).'),
        minDelayMs: z
          .number()
          .int()
          .min(0)
          .default(500)
          .describe('First backoff delay; doubles per attempt, with jitter.'),
        maxDelayMs: z.number().int().min(0).default(30_000).describe('Upper bound of one backoff delay.'),
      })
      .prefault({})
      .describe('Retry policy for transient failures. A 429 waits as long as its `Retry-After` says.'),
  })
  .refine((c) => c.token !== undefined || (c.username !== undefined && c.password !== undefined), {
    message: 'set `token`, or both `username` and `password`',
  })
  .refine((c) => (c.username === undefined) === (c.password === undefined), {
    message: '`username` and `password` go together',
  })
  .refine((c) => c.retry.minDelayMs <= c.retry.maxDelayMs, {
    message: '`retry.minDelayMs` must not exceed `retry.maxDelayMs`',
    path: ['retry'],
  });

export type RossumApiConfigInput = z.input<typeof rossumApiConfigSchema>;
export type RossumApiConfig = z.output<typeof rossumApiConfigSchema>;

/** The API root for a payload’s `base_url` (`https://example.rossum.app` → `https://example.rossum.app/api`). */
export function apiRootFromBaseUrl(baseUrl: string): string {
  const trimmed = baseUrl.replace(/\/+$/, '');
  return trimmed.endsWith('/api') ? trimmed : `${trimmed}/api`;
}

export const annotationSchema = z.looseObject({
  id: z.number().int(),
  url: z.string(),
  status: z.string(),
  metadata: z.record(z.string(), z.unknown()).nullable().optional(),
});
export type RossumAnnotation = z.infer<typeof annotationSchema>;

export const noteSchema = z.looseObject({
  id: z.number().int(),
  url: z.string().optional(),
  content: z.string(),
  type: z.string().optional(),
});
export type RossumNote = z.infer<typeof noteSchema>;

export interface AnnotationPatch {
  status?: AnnotationStatus;
  metadata?: Record<string, unknown>;
}

export interface RossumClientOptions {
  /** Raw config (validated here) or an already parsed one. */
  config: RossumApiConfigInput;
  /** Overrides `config.baseUrl` (an API root ending in `/api`). */
  baseUrl?: string;
  /**
   * The export payload's `base_url`, used only when neither `baseUrl` nor `config.baseUrl` is set.
   * Its host must be in `config.allowedHosts` (default `*.rossum.app`, `*.rossum.ai`) and it must be https
   * (plain http only on an allow-listed loopback host): the client sends credentials there.
   */
  payloadBaseUrl?: string;
  /** Retries are logged at `warn` (method, path, status, delay; never credentials). */
  logger?: Logger;
  /** Injectable for tests: waits between retries. */
  sleep?: Sleep;
  /** Injectable for tests: [0, 1) jitter source. */
  random?: () => number;
  /** Injectable clock for HTTP-date `Retry-After` values. */
  now?: () => number;
  /** A `Retry-After` longer than this fails the call as transient instead of blocking the caller. */
  maxRetryAfterMs?: number;
}

interface RequestSpec {
  method: 'GET' | 'POST' | 'PATCH';
  path: string;
  body?: unknown;
}

const TRANSIENT_STATUSES: ReadonlySet<number> = new Set([408, 429, 500, 502, 503, 504]);

export class RossumClient {
  readonly apiRoot: string;
  private readonly config: RossumApiConfig;
  private readonly sleep: Sleep;
  private readonly random: () => number;
  private readonly now: () => number;
  private readonly maxRetryAfterMs: number;
  private readonly logger: Logger | undefined;
  private key: string | undefined;
  private loginInFlight: Promise<string> | undefined;

  constructor(options: RossumClientOptions) {
    const parsed = rossumApiConfigSchema.safeParse(options.config);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      const where = issue && issue.path.length > 0 ? `${issue.path.join('.')}: ` : '';
      throw new RossumApiError(
        'ROSSUM_CONFIG_INVALID',
        `Invalid Rossum API config: ${where}${issue?.message ?? 'invalid'}`,
        { statusCode: null, method: '', path: '', permanent: true },
      );
    }
    this.config = parsed.data;
    const base =
      options.baseUrl ??
      this.config.baseUrl ??
      (options.payloadBaseUrl === undefined
        ? undefined
        : trustedPayloadRoot(options.payloadBaseUrl, this.config.allowedHosts ?? DEFAULT_ALLOWED_HOSTS));
    if (base === undefined) {
      throw new RossumApiError(
        'ROSSUM_CONFIG_INVALID',
        'No Rossum API base URL: set `baseUrl` or pass the payload’s `base_url`',
        { statusCode: null, method: '', path: '', permanent: true },
      );
    }
    this.apiRoot = base.replace(/\/+$/, '');
    this.sleep = options.sleep ?? realSleep;
    this.random = options.random ?? Math.random;
    this.now = options.now ?? Date.now;
    this.maxRetryAfterMs = options.maxRetryAfterMs ?? 300_000;
    this.key = this.config.token;
    this.logger = options.logger;
  }

  /** Whether the client can get a new key on 401 by itself. */
  private get canLogin(): boolean {
    return this.config.username !== undefined && this.config.password !== undefined;
  }

  annotationUrl(id: number): string {
    return `${this.apiRoot}/v1/annotations/${id}`;
  }

  /** `POST /v1/auth/login` → a fresh key, used for the following calls. Concurrent callers share one login. */
  async login(): Promise<string> {
    if (!this.canLogin) {
      throw new RossumApiError('ROSSUM_LOGIN_FAILED', 'Cannot log in to Rossum: no username/password configured', {
        statusCode: null,
        method: 'POST',
        path: '/v1/auth/login',
        permanent: true,
      });
    }
    this.loginInFlight ??= this.performLogin().finally(() => {
      this.loginInFlight = undefined;
    });
    return this.loginInFlight;
  }

  async getAnnotation(id: number): Promise<RossumAnnotation> {
    return this.parse(
      annotationSchema,
      await this.request({ method: 'GET', path: `/v1/annotations/${id}` }),
      'GET',
      `/v1/annotations/${id}`,
    );
  }

  /** Rossum replaces `metadata` as a whole: use `mergeAnnotationMetadata` to add keys. */
  async patchAnnotation(id: number, patch: AnnotationPatch): Promise<RossumAnnotation> {
    const path = `/v1/annotations/${id}`;
    return this.parse(annotationSchema, await this.request({ method: 'PATCH', path, body: patch }), 'PATCH', path);
  }

  async setStatus(id: number, status: AnnotationStatus): Promise<RossumAnnotation> {
    return this.patchAnnotation(id, { status });
  }

  /**
   * GET then PATCH with the union of both (patch keys win). Not atomic: a concurrent writer between the
   * two calls loses its keys, so keep one writer per annotation (the ack loop is).
   */
  async mergeAnnotationMetadata(
    id: number,
    patch: Record<string, unknown>,
    extra: Omit<AnnotationPatch, 'metadata'> = {},
  ): Promise<RossumAnnotation> {
    const current = await this.getAnnotation(id);
    return this.patchAnnotation(id, { ...extra, metadata: { ...(current.metadata ?? {}), ...patch } });
  }

  /** A note on the annotation (shown to operators): control characters and bidi overrides removed, content beyond Rossum's limit cut with an ellipsis. */
  async createNote(annotationId: number, content: string, type: 'rejection' = 'rejection'): Promise<RossumNote> {
    const body = {
      annotation: this.annotationUrl(annotationId),
      content: cleanContent(content, ROSSUM_MESSAGE_LIMIT),
      type,
    };
    return this.parse(noteSchema, await this.request({ method: 'POST', path: '/v1/notes', body }), 'POST', '/v1/notes');
  }

  /** Notes on one annotation (`GET /v1/notes?annotation=ID`, first page), e.g. to check a note was already posted. */
  async listNotes(annotationId: number): Promise<RossumNote[]> {
    const path = `/v1/notes?annotation=${annotationId}`;
    const page = this.parse(
      z.looseObject({ results: z.array(noteSchema) }),
      await this.request({ method: 'GET', path }),
      'GET',
      path,
    );
    return page.results;
  }

  /**
   * The schema of a queue (`GET /v1/queues/{id}`, then the queue's `schema` URL), as Rossum returns it.
   * The schema URL must lie under this API root: credentials are never sent elsewhere.
   */
  async getQueueSchema(queueId: number): Promise<unknown> {
    const queuePath = `/v1/queues/${queueId}`;
    const queue = this.parse(
      z.looseObject({ schema: z.string() }),
      await this.request({ method: 'GET', path: queuePath }),
      'GET',
      queuePath,
    );
    const prefix = `${this.apiRoot}/`;
    if (!queue.schema.startsWith(prefix)) {
      throw this.error(
        'ROSSUM_BAD_RESPONSE',
        `Queue ${queueId} names its schema at ${queue.schema}, outside ${this.apiRoot}`,
        { statusCode: 200, method: 'GET', path: queuePath, permanent: true },
      );
    }
    const schemaPath = queue.schema.slice(this.apiRoot.length);
    return this.request({ method: 'GET', path: schemaPath });
  }

  private async performLogin(): Promise<string> {
    const path = '/v1/auth/login';
    const reply = await this.send(
      { method: 'POST', path, body: { username: this.config.username, password: this.config.password } },
      undefined,
    );
    const parsed = z.looseObject({ key: z.string().min(1) }).safeParse(reply);
    if (!parsed.success)
      throw this.error('ROSSUM_BAD_RESPONSE', 'Rossum login answered without a key', {
        statusCode: 200,
        method: 'POST',
        path,
        permanent: true,
      });
    this.key = parsed.data.key;
    return parsed.data.key;
  }

  /** An authenticated call: logs in when needed and once more after a 401. */
  private async request(spec: RequestSpec): Promise<unknown> {
    let key = this.key ?? (await this.login());
    try {
      return await this.send(spec, key);
    } catch (error) {
      if (!(error instanceof RossumApiError) || error.statusCode !== 401 || !this.canLogin) throw error;
      // The key expired or was revoked: one fresh login, unless another call already renewed it.
      key = this.key !== key && this.key !== undefined ? this.key : await this.login();
      return this.send(spec, key);
    }
  }

  /** One logical call with retries for 408/429/5xx and connection errors. */
  private async send(spec: RequestSpec, key: string | undefined): Promise<unknown> {
    const { attempts } = this.config.retry;
    for (let attempt = 1; ; attempt++) {
      let failure: RossumApiError;
      let waitMs: number | undefined;
      try {
        return await this.once(spec, key);
      } catch (error) {
        if (!(error instanceof RetryableFailure)) throw error;
        failure = error.error;
        waitMs = error.retryAfterMs;
      }
      if (attempt >= attempts) throw failure;
      const delay = waitMs ?? this.backoff(attempt);
      if (delay > this.maxRetryAfterMs) throw failure;
      this.logger?.warn(
        {
          method: spec.method,
          path: spec.path,
          status: failure.statusCode,
          code: failure.code,
          attempt,
          delayMs: delay,
        },
        'Rossum API call failed; retrying',
      );
      await this.sleep(delay);
    }
  }

  private async once(spec: RequestSpec, key: string | undefined): Promise<unknown> {
    const url = `${this.apiRoot}${spec.path}`;
    const host = new URL(url).host;
    const headers: Record<string, string> = { accept: 'application/json' };
    if (key !== undefined) headers.authorization = `${this.config.authScheme} ${key}`;
    if (spec.body !== undefined) headers['content-type'] = 'application/json';
    const details = { method: spec.method, path: spec.path, host };
    const timeout = AbortSignal.timeout(this.config.timeoutMs);
    let response: Response;
    let text: string;
    try {
      response = await fetch(url, {
        method: spec.method,
        headers,
        body: spec.body === undefined ? undefined : JSON.stringify(spec.body),
        signal: timeout,
        redirect: 'manual',
      });
      text = await response.text();
    } catch (error) {
      if (timeout.aborted) {
        throw new RetryableFailure(
          this.error(
            'ROSSUM_TIMEOUT',
            `Rossum did not answer ${spec.method} ${spec.path} within ${this.config.timeoutMs} ms`,
            { ...details, statusCode: null, permanent: false },
          ),
        );
      }
      const cause = error instanceof Error && error.cause instanceof Error ? error.cause : error;
      throw new RetryableFailure(
        this.error(
          'ROSSUM_UNREACHABLE',
          `Rossum unreachable (${host}) for ${spec.method} ${spec.path}: ${describeError(cause)}`,
          { ...details, statusCode: null, permanent: false },
        ),
      );
    }

    const status = response.status;
    if (status >= 200 && status < 300) {
      if (text.trim() === '') return undefined;
      try {
        return JSON.parse(text) as unknown;
      } catch {
        throw this.error(
          'ROSSUM_BAD_RESPONSE',
          `Rossum answered ${spec.method} ${spec.path} with non-JSON (HTTP ${status})`,
          { ...details, statusCode: status, permanent: false },
        );
      }
    }
    const summary = `Rossum answered ${spec.method} ${spec.path} with HTTP ${status}${detailOf(text)}`;
    if (status === 401) {
      const code = spec.path === '/v1/auth/login' ? 'ROSSUM_LOGIN_FAILED' : 'ROSSUM_UNAUTHORIZED';
      throw this.error(code, summary, { ...details, statusCode: status, permanent: true });
    }
    if (status === 429) {
      const retryAfterMs = parseRetryAfter(response.headers.get('retry-after'), this.now());
      throw new RetryableFailure(
        this.error('ROSSUM_RATE_LIMITED', summary, { ...details, statusCode: status, permanent: false }),
        retryAfterMs,
      );
    }
    if (TRANSIENT_STATUSES.has(status) || status >= 500) {
      throw new RetryableFailure(
        this.error('ROSSUM_SERVER_ERROR', summary, { ...details, statusCode: status, permanent: false }),
      );
    }
    if (status >= 300 && status < 400) {
      const where = response.headers.get('location');
      throw this.error(
        'ROSSUM_REQUEST_REJECTED',
        `${summary}${where ? ` (redirect to ${where})` : ''}; check that the base URL is the API root ending in /api`,
        { ...details, statusCode: status, permanent: true },
      );
    }
    throw this.error('ROSSUM_REQUEST_REJECTED', summary, { ...details, statusCode: status, permanent: true });
  }

  /** Exponential backoff with equal jitter: half fixed, half random, so waits never collapse to zero. */
  private backoff(attempt: number): number {
    const { minDelayMs, maxDelayMs } = this.config.retry;
    const ceiling = Math.min(maxDelayMs, minDelayMs * 2 ** (attempt - 1));
    return Math.round(ceiling / 2 + this.random() * (ceiling / 2));
  }

  private parse<T>(schema: z.ZodType<T>, value: unknown, method: string, path: string): T {
    const parsed = schema.safeParse(value);
    if (parsed.success) return parsed.data;
    throw this.error(
      'ROSSUM_BAD_RESPONSE',
      `Unexpected Rossum reply to ${method} ${path}: ${parsed.error.issues[0]?.message ?? 'invalid'}`,
      { statusCode: 200, method, path, permanent: true },
    );
  }

  /** Builds an error whose message is scrubbed of every credential this client knows. */
  private error(
    code: RossumApiErrorCode,
    message: string,
    details: { statusCode: number | null; method: string; path: string; permanent: boolean; host?: string },
  ): RossumApiError {
    return new RossumApiError(code, redact(message, [this.config.token, this.config.password, this.key]), details);
  }
}

/** Carries a retryable failure (and a server-requested wait) from one attempt to the retry loop. */
class RetryableFailure extends Error {
  constructor(
    readonly error: RossumApiError,
    readonly retryAfterMs?: number,
  ) {
    super(error.message);
  }
}

/** `Retry-After` as delay-seconds or an HTTP date; `undefined` when absent or unreadable. */
export function parseRetryAfter(value: string | null, nowMs: number): number | undefined {
  if (value === null) return undefined;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  const date = Date.parse(trimmed);
  if (Number.isNaN(date)) return undefined;
  return Math.max(0, date - nowMs);
}

function detailOf(text: string): string {
  const trimmed = text.trim();
  if (trimmed === '') return '';
  let detail = trimmed;
  try {
    const json = JSON.parse(trimmed) as unknown;
    if (typeof json === 'object' && json !== null && 'detail' in json && typeof json.detail === 'string')
      detail = json.detail;
    else detail = JSON.stringify(json);
  } catch {
    // plain text: shown as is
  }
  return `: ${truncateContent(detail.replace(/\s+/g, ' '), 300)}`;
}

function redact(message: string, secrets: ReadonlyArray<string | undefined>): string {
  let result = message;
  for (const secret of secrets)
    if (secret !== undefined && secret.length >= 4) result = result.split(secret).join('[redacted]');
  return result;
}
