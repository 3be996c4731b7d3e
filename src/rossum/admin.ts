import { z } from 'zod';
import { RossumClient } from './client.ts';
import { rossumApiConfigSchema, type RossumApiConfigInput } from './config.ts';
import { RossumApiError } from './errors.ts';

/** A Rossum hook object (`/v1/hooks`), the fields the bridge reads or sets; the rest is kept as is. */
export const rossumHookSchema = z.looseObject({
  id: z.number().int(),
  url: z.string(),
  name: z.string(),
  type: z.string().default('webhook'),
  active: z.boolean().default(true),
  events: z.array(z.string()).default([]),
  queues: z.array(z.string()).default([]),
  config: z.record(z.string(), z.unknown()).default({}),
  token_owner: z.string().nullable().optional(),
});
export type RossumHook = z.infer<typeof rossumHookSchema>;

const userSchema = z.looseObject({
  id: z.number().int(),
  url: z.string().optional(),
  username: z.string().optional(),
  email: z.string().optional(),
});
export type RossumUser = z.infer<typeof userSchema>;

const queueSchema = z.looseObject({ id: z.number().int(), url: z.string().optional(), name: z.string().optional() });
export type RossumQueue = z.infer<typeof queueSchema>;

const pageSchema = z.looseObject({
  pagination: z.looseObject({ next: z.string().nullable().optional() }).optional(),
  results: z.array(z.unknown()),
});

/** Pages followed at most when listing hooks (100 per page): an organisation with more is a mistake to report, not to loop on. */
const MAX_PAGES = 50;

/**
 * The set-up side of the Rossum API (who am I, queues, hooks) for `doctor` and `hook`. One attempt
 * per call (an operator is watching), a fresh login after a 401 when username/password are set,
 * credentials only ever sent to the configured API root, every known secret scrubbed from messages.
 */
export class RossumAdminApi {
  readonly apiRoot: string;
  private readonly config: z.output<typeof rossumApiConfigSchema>;
  private readonly client: RossumClient;
  private readonly secrets: string[];

  /** `apiRoot` is the API root ending in `/api` (`rossum.baseUrl`); `extraSecrets` are scrubbed from messages too (the hook secret). */
  constructor(options: { config: RossumApiConfigInput; apiRoot: string; extraSecrets?: string[] }) {
    this.client = new RossumClient({ config: options.config, baseUrl: options.apiRoot });
    this.config = rossumApiConfigSchema.parse(options.config);
    this.apiRoot = this.client.apiRoot;
    this.secrets = [this.config.token, this.config.password, ...(options.extraSecrets ?? [])].filter(
      (s): s is string => s !== undefined && s.length >= 4,
    );
  }

  /** How the key was obtained, for messages about its lifetime. */
  get authentication(): 'token' | 'login' {
    return this.config.token !== undefined ? 'token' : 'login';
  }

  queueUrl(id: number): string {
    return `${this.apiRoot}/v1/queues/${id}`;
  }

  /** `GET /v1/auth/user`: proves the credentials work and says whose they are. */
  async currentUser(): Promise<RossumUser> {
    return this.parse(userSchema, await this.call('GET', '/v1/auth/user'), 'GET', '/v1/auth/user');
  }

  async queue(id: number): Promise<RossumQueue> {
    const path = `/v1/queues/${id}`;
    return this.parse(queueSchema, await this.call('GET', path), 'GET', path);
  }

  /** Every hook of the organisation, following `pagination.next` (only within the API root). */
  async listHooks(): Promise<RossumHook[]> {
    const hooks: RossumHook[] = [];
    let path: string | null = '/v1/hooks?page_size=100';
    for (let page = 0; path !== null; page++) {
      if (page === MAX_PAGES)
        throw this.error(
          'ROSSUM_BAD_RESPONSE',
          `more than ${MAX_PAGES} pages of hooks; stopped listing`,
          null,
          'GET',
          '/v1/hooks',
          true,
        );
      const body = this.parse(pageSchema, await this.call('GET', path), 'GET', path);
      for (const item of body.results) hooks.push(this.parse(rossumHookSchema, item, 'GET', path));
      path = this.nextPath(body.pagination?.next ?? null);
    }
    return hooks;
  }

  async createHook(body: Record<string, unknown>): Promise<RossumHook> {
    return this.parse(rossumHookSchema, await this.call('POST', '/v1/hooks', body), 'POST', '/v1/hooks');
  }

  async patchHook(id: number, body: Record<string, unknown>): Promise<RossumHook> {
    const path = `/v1/hooks/${id}`;
    return this.parse(rossumHookSchema, await this.call('PATCH', path, body), 'PATCH', path);
  }

  /** `pagination.next` is an absolute URL; our key goes only to our API root. */
  private nextPath(next: string | null): string | null {
    if (next === null || next === '') return null;
    if (!next.startsWith(`${this.apiRoot}/`)) {
      throw this.error(
        'ROSSUM_BAD_RESPONSE',
        `Rossum's next page ${next} is outside the API root ${this.apiRoot}; not following it`,
        null,
        'GET',
        '/v1/hooks',
        true,
      );
    }
    return next.slice(this.apiRoot.length);
  }

  /** One attempt through the client; its messages are scrubbed of the client's credentials, and here of the hook secret too. */
  private async call(method: 'GET' | 'POST' | 'PATCH', path: string, body?: unknown): Promise<unknown> {
    try {
      return await this.client.callOnce(method, path, body);
    } catch (error) {
      if (!(error instanceof RossumApiError)) throw error;
      throw this.error(error.code, error.message, error.statusCode, error.method, error.path, error.permanent);
    }
  }

  private parse<T>(schema: z.ZodType<T>, value: unknown, method: string, path: string): T {
    const parsed = schema.safeParse(value);
    if (parsed.success) return parsed.data;
    const issue = parsed.error.issues[0];
    throw this.error(
      'ROSSUM_BAD_RESPONSE',
      `Unexpected Rossum reply to ${method} ${path}: ${issue ? `${issue.path.join('.') || '(root)'}: ${issue.message}` : 'invalid'}`,
      200,
      method,
      path,
      true,
    );
  }

  private error(
    code: RossumApiError['code'],
    message: string,
    statusCode: number | null,
    method: string,
    path: string,
    permanent: boolean,
  ): RossumApiError {
    let scrubbed = message;
    for (const secret of this.secrets)
      if (secret !== undefined && secret.length >= 4) scrubbed = scrubbed.split(secret).join('[redacted]');
    return new RossumApiError(code, scrubbed, {
      statusCode,
      method,
      path,
      permanent,
      host: new URL(this.apiRoot).host,
    });
  }
}
