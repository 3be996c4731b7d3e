import PQueue from 'p-queue';
import { z } from 'zod';
import { describeError } from '../errors.ts';
import type { Logger } from '../observability/index.ts';
import { rossumApiConfigSchema, type RossumApiConfig } from './config.ts';
import { RossumApiError, type RossumApiErrorCode } from './errors.ts';
import { cleanContent, ROSSUM_MESSAGE_LIMIT } from './limits.ts';
import { realSleep, type Sleep } from './sleep.ts';
import { DEFAULT_ALLOWED_HOSTS, trustedPayloadRoot } from './trust.ts';
import {
  annotationSchema,
  backoffDelay,
  detailOf,
  MAX_NOTE_PAGES,
  notePageSchema,
  noteSchema,
  parseRetryAfter,
  redact,
  RetryableFailure,
  TOKEN_REFUSED_HINT,
  TRANSIENT_STATUSES,
  type AnnotationPatch,
  type AnnotationStatus,
  type RossumAnnotation,
  type RossumClientOptions,
  type RossumNote,
  type RequestSpec,
  SendWithheld,
  type WriteOptions,
} from './api-shapes.ts';

export class RossumClient {
  readonly apiRoot: string;
  private readonly config: RossumApiConfig;
  private readonly sleep: Sleep;
  private readonly random: () => number;
  private readonly now: () => number;
  private readonly maxRetryAfterMs: number;
  private readonly logger: Logger | undefined;
  private key: string | undefined;
  /** When the key should be renewed (token-only clients); `undefined` = not checked yet. */
  private renewAt: number | undefined;
  private loginInFlight: Promise<string> | undefined;
  private renewInFlight: Promise<string> | undefined;
  /** Rossum throttles at 10 requests/s: every attempt (retries and logins included) takes a slot. */
  private readonly limiter: PQueue;

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
    // Evenly spaced, not in bursts, and 10 % slower than the limit: Rossum counts arrivals, which network jitter bunches up.
    this.limiter = new PQueue({ intervalCap: 1, interval: Math.ceil(1_100 / this.config.requestsPerSecond) });
  }

  /** Token only: the client keeps its token alive itself through `POST /v1/auth/token`. */
  get renewsToken(): boolean {
    return !this.canLogin && this.config.renewToken;
  }

  /**
   * Proves the credentials work: logs in (username/password) or renews the token (token only), so a
   * refused token shows at start-up rather than at the first ERP verdict. Throws `ROSSUM_UNAUTHORIZED`
   * or `ROSSUM_LOGIN_FAILED` when Rossum refuses them.
   */
  async checkCredentials(): Promise<void> {
    if (this.canLogin) {
      await this.login();
      return;
    }
    if (this.renewsToken) await this.renew();
    else await this.request({ method: 'GET', path: '/v1/auth/user' });
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
  async patchAnnotation(id: number, patch: AnnotationPatch, options: WriteOptions = {}): Promise<RossumAnnotation> {
    const path = `/v1/annotations/${id}`;
    const reply = await this.request({ ...options, method: 'PATCH', path, body: patch });
    return this.parse(annotationSchema, reply, 'PATCH', path);
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
  async createNote(annotationId: number, content: string, options: WriteOptions = {}): Promise<RossumNote> {
    const body = {
      annotation: this.annotationUrl(annotationId),
      content: cleanContent(content, ROSSUM_MESSAGE_LIMIT),
      type: 'rejection',
    };
    const reply = await this.request({ ...options, method: 'POST', path: '/v1/notes', body });
    return this.parse(noteSchema, reply, 'POST', '/v1/notes');
  }

  /**
   * Every note on one annotation (`GET /v1/notes?annotation=ID`, following `pagination.next`: Rossum
   * pages by 20), e.g. to check a note was already posted. A `next` outside our API root is not followed.
   */
  async listNotes(annotationId: number): Promise<RossumNote[]> {
    const notes: RossumNote[] = [];
    let path: string | null = `/v1/notes?annotation=${annotationId}`;
    for (let page = 0; path !== null; page++) {
      if (page >= MAX_NOTE_PAGES)
        throw this.error(
          'ROSSUM_BAD_RESPONSE',
          `Rossum listed more than ${MAX_NOTE_PAGES} pages of notes for annotation ${annotationId}`,
          { statusCode: 200, method: 'GET', path, permanent: false },
        );
      const reply = this.parse(notePageSchema, await this.request({ method: 'GET', path }), 'GET', path);
      notes.push(...reply.results);
      path = this.pathOf(reply.pagination?.next ?? null, path);
    }
    return notes;
  }

  /** A `next` link as a path under our API root (credentials go nowhere else). */
  private pathOf(next: string | null, from: string): string | null {
    if (next === null || next === '') return null;
    const resolved = new URL(next, `${this.apiRoot}${from}`).toString();
    if (!resolved.startsWith(`${this.apiRoot}/`)) {
      throw this.error(
        'ROSSUM_BAD_RESPONSE',
        `Rossum's next page link leaves the API root (${new URL(resolved).origin}); not followed`,
        { statusCode: 200, method: 'GET', path: from, permanent: true },
      );
    }
    return resolved.slice(this.apiRoot.length);
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
    this.key = this.keyOf(reply, path, 'Rossum login answered without a key');
    return this.key;
  }

  private keyOf(reply: unknown, path: string, missing: string): string {
    const parsed = z.looseObject({ key: z.string().min(1) }).safeParse(reply);
    if (parsed.success) return parsed.data.key;
    throw this.error('ROSSUM_BAD_RESPONSE', missing, { statusCode: 200, method: 'POST', path, permanent: true });
  }

  /** Token only: renews the token when its renewal is due, even with no other call to make (an idle week must not let it expire). */
  async renewIfDue(): Promise<void> {
    if (this.renewsToken && this.renewAt !== undefined && this.now() >= this.renewAt) await this.currentKey();
  }

  /** `POST /v1/auth/token` with the current key → a new key with a known lifetime. Concurrent callers share one renewal. */
  private renew(): Promise<string> {
    this.renewInFlight ??= this.performRenew().finally(() => {
      this.renewInFlight = undefined;
    });
    return this.renewInFlight;
  }

  private async performRenew(): Promise<string> {
    const path = '/v1/auth/token';
    const reply = await this.send(
      { method: 'POST', path, body: { max_token_lifetime_s: this.config.tokenLifetimeS } },
      this.key,
    );
    this.key = this.keyOf(reply, path, 'Rossum answered the token renewal without a key');
    this.renewAt = this.now() + (this.config.tokenLifetimeS - this.config.tokenRenewBeforeS) * 1_000;
    this.logger?.info({ nextRenewalAt: new Date(this.renewAt).toISOString() }, 'Rossum API token renewed');
    return this.key;
  }

  /**
   * The key to send: logs in when there is none; a token-only client renews it when due. A configured
   * token's age is unknown, so its renewal schedule starts with `checkCredentials()` (a renewal).
   */
  private async currentKey(): Promise<string> {
    if (this.key === undefined) return this.login();
    if (!this.renewsToken || this.renewAt === undefined || this.now() < this.renewAt) return this.key;
    try {
      return await this.renew();
    } catch (error) {
      if (error instanceof RossumApiError && error.statusCode === 401) throw error;
      // Renewal is upkeep: while the current token still works, a Rossum that cannot renew it now is asked again later.
      this.renewAt = this.now() + Math.min(60_000, this.config.tokenRenewBeforeS * 500);
      this.logger?.warn(
        { err: describeError(error) },
        'could not renew the Rossum API token; using the current one and trying again later',
      );
      return this.key;
    }
  }

  /** One call as an operator's tool (`doctor`, `hook`) makes it: everything as usual, but a single attempt. */
  callOnce(method: RequestSpec['method'], path: string, body?: unknown): Promise<unknown> {
    return this.request({ method, path, body, attempts: 1 });
  }

  /** An authenticated call: logs in (or renews the token) when needed and logs in once more after a 401. */
  private async request(spec: RequestSpec): Promise<unknown> {
    let key = await this.currentKey();
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
    const attempts = spec.attempts ?? this.config.retry.attempts;
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
      const delay = waitMs ?? backoffDelay(this.config.retry, attempt, this.random);
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
      response = await this.limiter.add(async () => {
        await spec.beforeSend?.().catch((reason: unknown) => Promise.reject(new SendWithheld(reason)));
        return fetch(url, {
          method: spec.method,
          headers,
          body: spec.body === undefined ? undefined : JSON.stringify(spec.body),
          signal: timeout,
          redirect: 'manual',
        });
      });
      text = await response.text();
    } catch (error) {
      if (error instanceof SendWithheld) throw error.reason;
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
      throw this.error(code, `${summary}${this.canLogin ? '' : TOKEN_REFUSED_HINT}`, {
        ...details,
        statusCode: status,
        permanent: true,
      });
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
