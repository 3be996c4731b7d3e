import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * Rossum's set-up API as `doctor` and `hook` meet it: login, `/v1/auth/user`, `/v1/queues/{id}`,
 * `/v1/hooks` (paginated list, create, patch, get). A real HTTP server on 127.0.0.1, served under
 * `/api/v1/...` and `/v1/...` like the main simulator (test/support/rossum-simulator.ts), kept apart
 * so either can change without the other; `handle()` can be mounted into another server.
 *
 * Rules followed (Rossum API docs): page_size default 20, max 100, `pagination.next` an absolute
 * URL; hook `config.timeout_s` 0–60 and `retry_count` 0–4; a webhook needs `config.url`; PATCH
 * replaces the fields it names (`config` as a whole).
 */

export interface SimulatedHook {
  id: number;
  name: string;
  type: string;
  active: boolean;
  events: string[];
  queues: string[];
  config: Record<string, unknown>;
  token_owner: string | null;
  metadata: Record<string, unknown>;
}

export interface HooksApiCall {
  method: string;
  /** Path with query, without the `/api` prefix. */
  path: string;
  body: unknown;
  status: number;
}

export interface HooksApiOptions {
  users?: Record<string, string>;
  queues?: Record<number, string>;
  /** Queues that exist but the API user may not see (403, as for a user without access). */
  forbiddenQueues?: number[];
  /** Whether GET returns `config.secret` (default true; set false to act as if Rossum withheld it). */
  revealSecrets?: boolean;
}

const WRITABLE = new Set([
  'name',
  'type',
  'active',
  'events',
  'queues',
  'config',
  'token_owner',
  'metadata',
  'run_after',
  'sideload',
  'settings',
  'description',
]);

export class RossumHooksApi {
  readonly calls: HooksApiCall[] = [];
  readonly hooks = new Map<number, SimulatedHook>();
  private readonly users: Record<string, string>;
  private readonly queues: Record<number, string>;
  private readonly forbiddenQueues: Set<number>;
  private readonly revealSecrets: boolean;
  private readonly tokens = new Map<string, string>();
  private readonly server: Server;
  private nextHookId = 100;
  private port = 0;

  private constructor(options: HooksApiOptions) {
    this.users = options.users ?? { 'admin@example.com': 'admin password 123' };
    this.queues = options.queues ?? { 11: 'Invoices DE', 12: 'Invoices AT' };
    this.forbiddenQueues = new Set(options.forbiddenQueues ?? []);
    this.revealSecrets = options.revealSecrets ?? true;
    this.server = createServer((req, res) => void this.serve(req, res));
  }

  static async start(options: HooksApiOptions = {}): Promise<RossumHooksApi> {
    const api = new RossumHooksApi(options);
    await new Promise<void>((resolve, reject) => {
      api.server.once('error', reject);
      api.server.listen(0, '127.0.0.1', () => resolve());
    });
    api.port = (api.server.address() as AddressInfo).port;
    return api;
  }

  get apiUrl(): string {
    return `http://127.0.0.1:${this.port}/api`;
  }

  queueUrl(id: number): string {
    return `${this.apiUrl}/v1/queues/${id}`;
  }

  /** A valid token of the first user (as an admin would hand out). */
  issueToken(username = Object.keys(this.users)[0] ?? 'admin@example.com'): string {
    const token = randomBytes(20).toString('hex');
    this.tokens.set(token, username);
    return token;
  }

  /** A hook as if someone had created it in Rossum's UI. */
  addHook(init: Partial<Omit<SimulatedHook, 'id'>> & { name: string }): SimulatedHook {
    const hook: SimulatedHook = {
      id: this.nextHookId++,
      type: 'webhook',
      active: true,
      events: ['annotation_content.export'],
      queues: [],
      config: {},
      token_owner: null,
      metadata: {},
      ...structuredClone(init),
    };
    this.hooks.set(hook.id, hook);
    return hook;
  }

  callsTo(method: string, pathPrefix: string): HooksApiCall[] {
    return this.calls.filter((call) => call.method === method && call.path.startsWith(pathPrefix));
  }

  /** Writes (POST, PATCH, PUT, DELETE) received so far. */
  writes(): HooksApiCall[] {
    return this.calls.filter((call) => call.method !== 'GET');
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private async serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const raw = Buffer.concat(chunks).toString('utf8');
    let body: unknown;
    try {
      body = raw === '' ? undefined : JSON.parse(raw);
    } catch {
      body = raw;
    }
    const { status, json } = this.handle(req.method ?? 'GET', req.url ?? '/', body, req.headers.authorization);
    res.writeHead(status, json === undefined ? {} : { 'content-type': 'application/json' });
    res.end(json === undefined ? '' : JSON.stringify(json));
  }

  /** One API call; `url` is the request path with query. */
  handle(
    method: string,
    url: string,
    body: unknown,
    authorization: string | undefined,
  ): { status: number; json?: unknown } {
    const parsed = new URL(url, 'http://127.0.0.1');
    const route = parsed.pathname.startsWith('/api/v1/') ? parsed.pathname.slice(4) : parsed.pathname;
    const call: HooksApiCall = { method, path: `${route}${parsed.search}`, body, status: 0 };
    this.calls.push(call);
    const reply = (status: number, json?: unknown): { status: number; json?: unknown } => {
      call.status = status;
      return { status, json };
    };
    if (!route.startsWith('/v1/')) return reply(404, { detail: 'Not found.' });
    if (method === 'POST' && route === '/v1/auth/login') return this.login(body, reply);
    const user = this.userOf(authorization);
    if (user === undefined) return reply(401, { detail: 'Invalid token.' });

    if (method === 'GET' && route === '/v1/auth/user')
      return reply(200, { id: 7, url: `${this.apiUrl}/v1/users/7`, username: user, email: user });
    const queue = /^\/v1\/queues\/(\d+)\/?$/.exec(route);
    if (queue && method === 'GET') {
      const id = Number(queue[1]);
      if (this.forbiddenQueues.has(id))
        return reply(403, { detail: 'You do not have permission to perform this action.' });
      const name = this.queues[id];
      return name === undefined
        ? reply(404, { detail: 'Not found.' })
        : reply(200, { id, url: this.queueUrl(id), name });
    }
    if (route === '/v1/hooks' || route === '/v1/hooks/') {
      if (method === 'GET') return this.list(parsed.searchParams, reply);
      if (method === 'POST') return this.create(body, reply);
      return reply(405, { detail: `Method "${method}" not allowed.` });
    }
    const hookMatch = /^\/v1\/hooks\/(\d+)\/?$/.exec(route);
    if (hookMatch) {
      const hook = this.hooks.get(Number(hookMatch[1]));
      if (!hook) return reply(404, { detail: 'Not found.' });
      if (method === 'GET') return reply(200, this.serialize(hook));
      if (method === 'PATCH') return this.patch(hook, body, reply);
      return reply(405, { detail: `Method "${method}" not allowed.` });
    }
    return reply(404, { detail: 'Not found.' });
  }

  private login(
    body: unknown,
    reply: (status: number, json?: unknown) => { status: number; json?: unknown },
  ): { status: number; json?: unknown } {
    const { username, password } = (typeof body === 'object' && body !== null ? body : {}) as Record<string, unknown>;
    if (typeof username !== 'string' || typeof password !== 'string' || this.users[username] !== password) {
      return reply(401, { detail: 'Unable to log in with provided credentials.' });
    }
    return reply(200, { key: this.issueToken(username), domain: '127.0.0.1' });
  }

  private userOf(header: string | undefined): string | undefined {
    const [scheme, token] = (header ?? '').split(' ');
    if ((scheme !== 'Bearer' && scheme !== 'Token') || token === undefined) return undefined;
    return this.tokens.get(token);
  }

  private list(
    query: URLSearchParams,
    reply: (status: number, json?: unknown) => { status: number; json?: unknown },
  ): { status: number; json?: unknown } {
    const pageSize = Math.min(100, Math.max(1, Number(query.get('page_size') ?? 20) || 20));
    const page = Math.max(1, Number(query.get('page') ?? 1) || 1);
    const all = [...this.hooks.values()].sort((a, b) => a.id - b.id);
    const totalPages = Math.max(1, Math.ceil(all.length / pageSize));
    const link = (n: number): string => `${this.apiUrl}/v1/hooks?page=${n}&page_size=${pageSize}`;
    return reply(200, {
      pagination: {
        total: all.length,
        total_pages: totalPages,
        next: page < totalPages ? link(page + 1) : null,
        previous: page > 1 ? link(page - 1) : null,
      },
      results: all.slice((page - 1) * pageSize, page * pageSize).map((hook) => this.serialize(hook)),
    });
  }

  private create(
    body: unknown,
    reply: (status: number, json?: unknown) => { status: number; json?: unknown },
  ): { status: number; json?: unknown } {
    if (typeof body !== 'object' || body === null || Array.isArray(body))
      return reply(400, { non_field_errors: ['Invalid data. Expected a dictionary.'] });
    const fields = body as Record<string, unknown>;
    const errors = this.validate(fields, true);
    if (Object.keys(errors).length > 0) return reply(400, errors);
    const hook = this.addHook({
      name: fields.name as string,
      type: (fields.type as string | undefined) ?? 'webhook',
      active: (fields.active as boolean | undefined) ?? true,
      events: fields.events as string[],
      queues: (fields.queues as string[] | undefined) ?? [],
      config: (fields.config as Record<string, unknown> | undefined) ?? {},
      token_owner: (fields.token_owner as string | null | undefined) ?? null,
    });
    return reply(201, this.serialize(hook));
  }

  private patch(
    hook: SimulatedHook,
    body: unknown,
    reply: (status: number, json?: unknown) => { status: number; json?: unknown },
  ): { status: number; json?: unknown } {
    if (typeof body !== 'object' || body === null || Array.isArray(body))
      return reply(400, { non_field_errors: ['Invalid data. Expected a dictionary.'] });
    const fields = body as Record<string, unknown>;
    const errors = this.validate({ ...this.serialize(hook, true), ...fields }, false);
    for (const key of Object.keys(fields)) if (!WRITABLE.has(key)) errors[key] = ['This field is read-only.'];
    if (Object.keys(errors).length > 0) return reply(400, errors);
    Object.assign(hook, structuredClone(fields));
    return reply(200, this.serialize(hook));
  }

  private validate(fields: Record<string, unknown>, creating: boolean): Record<string, string[]> {
    const errors: Record<string, string[]> = {};
    if (creating && typeof fields.name !== 'string') errors.name = ['This field is required.'];
    if (!Array.isArray(fields.events) || fields.events.some((event) => typeof event !== 'string'))
      errors.events = ['Expected a list of items.'];
    if (
      fields.queues !== undefined &&
      (!Array.isArray(fields.queues) ||
        fields.queues.some((queue) => typeof queue !== 'string' || !/\/queues\/\d+$/.test(queue)))
    ) {
      errors.queues = ['Invalid hyperlink - Incorrect URL match.'];
    }
    const config = (fields.config ?? {}) as Record<string, unknown>;
    if ((fields.type ?? 'webhook') === 'webhook' && typeof config.url !== 'string')
      errors.config = ['config.url is required for a webhook.'];
    const timeout = config.timeout_s;
    if (timeout !== undefined && (typeof timeout !== 'number' || timeout < 0 || timeout > 60))
      errors.config = ['timeout_s must be between 0 and 60.'];
    const retries = config.retry_count;
    if (retries !== undefined && (typeof retries !== 'number' || retries < 0 || retries > 4))
      errors.config = ['retry_count must be between 0 and 4.'];
    return errors;
  }

  private serialize(hook: SimulatedHook, withSecret = this.revealSecrets): Record<string, unknown> {
    const { secret, ...config } = hook.config;
    return {
      ...structuredClone(hook),
      url: `${this.apiUrl}/v1/hooks/${hook.id}`,
      config: withSecret && secret !== undefined ? { ...config, secret } : config,
    };
  }
}
