import { randomBytes, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { callHook, type ShownMessage, type HookCallOptions, type HookCallOutcome } from '../../src/rossum/hook-call.ts';
import { serveDocumentBody, type DocumentFault } from './document-content.ts';

/**
 * A simulated Rossum: a real HTTP server on 127.0.0.1 serving the API calls the bridge makes, plus
 * Rossum's side of the export webhook (via `callHook()`, the documented hook call semantics).
 * API paths are served under both `/api/v1/...` (what `base_url` + `/api` gives) and `/v1/...`.
 */

// Kept apart from the client's list on purpose: the simulator is the oracle the client is checked against.
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
export type SimulatedStatus = (typeof ANNOTATION_STATUSES)[number];

export interface SimulatedNote {
  id: number;
  type: string;
  content: string;
  annotation: string;
  createdAt: string;
}

export interface StatusChange {
  status: SimulatedStatus;
  /** `api` = a PATCH through the API; `export` = Rossum's own export flow. */
  by: 'api' | 'export' | 'setup' | 'operator';
  at: string;
}

export interface SimulatedAnnotation {
  id: number;
  status: SimulatedStatus;
  /** Messages of the last export call, as the operator sees them. */
  messages: ShownMessage[];
  metadata: Record<string, unknown>;
  notes: SimulatedNote[];
  history: StatusChange[];
  /** Every export hook call's outcome, oldest first. */
  exports: HookCallOutcome[];
}

export interface RecordedCall {
  method: string;
  path: string;
  /** Parsed JSON when the body was JSON, else the raw text (`undefined` without a body). */
  body: unknown;
  /** Whether an Authorization header was sent; the token itself is never recorded. */
  authorized: boolean;
  authScheme: string | null;
  status: number;
  /** Set when the reply came from the fault queue. */
  injected: boolean;
}

export interface Fault {
  status: number;
  /** `Retry-After` header value (seconds or HTTP date), sent as given. */
  retryAfter?: string;
  body?: unknown;
  /** Only calls matching this method / path prefix consume the fault (default: any API call). */
  method?: string;
  pathPrefix?: string;
}

export interface SimulatorOptions {
  users?: Record<string, string>;
  /** Schemes accepted in `Authorization` (Rossum accepts both). */
  acceptedSchemes?: Array<'Bearer' | 'Token'>;
  /** API requests allowed per second before 429 + `Retry-After` (Rossum: 10). `0` = unlimited. */
  requestsPerSecond?: number;
  /** Default lifetime of tokens from login and `/v1/auth/token` (Rossum: 162 h, also the maximum). */
  tokenLifetimeMs?: number;
  /** Notes per page of `GET /v1/notes` (Rossum: 20). */
  notesPageSize?: number;
}

/** Rossum's limits, as documented. */
export const ROSSUM_RULES = {
  metadataBytes: 4096,
  maxTokenLifetimeS: 583_200,
  requestsPerSecond: 10,
  notesPageSize: 20,
} as const;

export type HookConfig = Omit<HookCallOptions, 'url' | 'body' | 'secret'> & {
  hookUrl: string;
  /**
   * How long Rossum takes, after the hook's final answer, to leave `exporting`. A status PATCHed in that
   * window is overwritten when the export finishes, as in real Rossum.
   */
  processingDelayMs?: number;
  secret?: string;
  /**
   * Put a fresh API token into the payload, as Rossum does for hooks with a token owner. Default true.
   * It is "valid for 10 minutes or until Rossum receives a response from the Webhook".
   */
  tokenOwner?: boolean;
  /** `hook.token_lifetime_s` (default 600). */
  tokenLifetimeS?: number;
  /** Point `base_url` and `annotation.url` at this simulator. Default true. */
  useSimulatorBaseUrl?: boolean;
};

/** Short, test-friendly hook timings; everything else follows Rossum's defaults. */
export const FAST_HOOK_TIMINGS = { retryDelayS: 0.01, pollIntervalS: 0.01 } as const;

export class RossumSimulator {
  readonly calls: RecordedCall[] = [];
  readonly users: Record<string, string>;
  private readonly server: Server;
  private readonly annotations = new Map<number, SimulatedAnnotation>();
  /** token → expiry (epoch ms), `null` = no expiry. */
  private readonly tokens = new Map<string, number | null>();
  private readonly faults: Fault[] = [];
  /** Original documents (`GET /v1/documents/{id}/content`) and the faults planned for their downloads. */
  private readonly documentContents = new Map<number, Buffer>();
  private readonly documentFaults = new Map<number, DocumentFault & { kind: string }>();
  /** Every download of document content that reached a document: the fault it got, if any. */
  readonly documentDownloads: Array<{ documentId: number; fault: string | null }> = [];
  private readonly acceptedSchemes: ReadonlyArray<string>;
  private nextNoteId = 1;
  private port = 0;
  /** Last export per annotation, so `PATCH status=exporting` can retry it as Rossum does. */
  private readonly lastExports = new Map<number, { payload: Record<string, unknown>; config: HookConfig }>();
  private readonly background = new Set<Promise<unknown>>();
  private readonly requestsPerSecond: number;
  private readonly tokenLifetimeMs: number;
  private readonly notesPageSize: number;
  /** Arrival times of the API requests served in the last second (for the rate limit). */
  private recent: number[] = [];

  private constructor(options: SimulatorOptions) {
    this.users = options.users ?? { 'bridge@example.com': 'correct horse battery staple' };
    this.acceptedSchemes = options.acceptedSchemes ?? ['Bearer', 'Token'];
    this.requestsPerSecond = options.requestsPerSecond ?? ROSSUM_RULES.requestsPerSecond;
    this.tokenLifetimeMs = options.tokenLifetimeMs ?? ROSSUM_RULES.maxTokenLifetimeS * 1000;
    this.notesPageSize = options.notesPageSize ?? ROSSUM_RULES.notesPageSize;
    this.server = createServer((req, res) => {
      void this.handle(req, res);
    });
  }

  static async start(options: SimulatorOptions = {}): Promise<RossumSimulator> {
    const simulator = new RossumSimulator(options);
    await new Promise<void>((resolve, reject) => {
      simulator.server.once('error', reject);
      simulator.server.listen(0, '127.0.0.1', () => resolve());
    });
    simulator.port = (simulator.server.address() as AddressInfo).port;
    return simulator;
  }

  /** What goes into a payload's `base_url`. */
  get baseUrl(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** The API root a client is configured with (`base_url` + `/api`). */
  get apiUrl(): string {
    return `${this.baseUrl}/api`;
  }

  annotationUrl(id: number): string {
    return `${this.apiUrl}/v1/annotations/${id}`;
  }

  /** Resolves when exports triggered through the API (PATCH to `exporting`) have finished. */
  async settled(): Promise<void> {
    while (this.background.size > 0) await Promise.allSettled([...this.background]);
  }

  async close(): Promise<void> {
    await this.settled();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  // ── state ────────────────────────────────────────────────────────────────

  addAnnotation(
    id: number,
    init: { status?: SimulatedStatus; metadata?: Record<string, unknown> } = {},
  ): SimulatedAnnotation {
    const status = init.status ?? 'confirmed';
    const annotation: SimulatedAnnotation = {
      id,
      status,
      messages: [],
      metadata: structuredClone(init.metadata ?? {}),
      notes: [],
      history: [{ status, by: 'setup', at: new Date().toISOString() }],
      exports: [],
    };
    this.annotations.set(id, annotation);
    return annotation;
  }

  /** Live view of one annotation; throws when unknown so a test typo is loud. */
  annotation(id: number): SimulatedAnnotation {
    const found = this.annotations.get(id);
    if (!found) throw new Error(`simulator: no annotation ${id}`);
    return found;
  }

  hasAnnotation(id: number): boolean {
    return this.annotations.has(id);
  }

  /** A valid API token, as if configured by an admin; `lifetimeMs` makes it expire like a hook's token. */
  issueToken(lifetimeMs?: number): string {
    const token = randomBytes(20).toString('hex');
    this.tokens.set(token, lifetimeMs === undefined ? null : Date.now() + lifetimeMs);
    return token;
  }

  /** Every API token handed out so far (login or issueToken), e.g. to prove none reached a log. */
  issuedTokens(): string[] {
    return [...this.tokens.keys()];
  }

  expireToken(token: string): void {
    this.tokens.delete(token);
  }

  expireAllTokens(): void {
    this.tokens.clear();
  }

  /** Whether Rossum would accept this token now. */
  tokenValid(token: string): boolean {
    const expiry = this.tokens.get(token);
    return expiry === null || (expiry !== undefined && expiry > Date.now());
  }

  /** An operator (or another system) moves the annotation in the UI: no API call, no hook. */
  operatorSets(id: number, status: SimulatedStatus): void {
    this.setStatus(this.annotation(id), status, 'operator');
  }

  /** The annotation is deleted for good: the API answers 404 from now on. */
  removeAnnotation(id: number): void {
    this.annotations.delete(id);
  }

  /** Rossum starts an export and holds the annotation in `exporting` until `finishExport` (our webhook reply not processed yet). */
  beginExport(id: number): void {
    this.setStatus(this.annotation(id), 'exporting', 'export');
  }

  /** Rossum processed the hook's reply: the export's result overwrites whatever was PATCHed meanwhile. */
  finishExport(id: number, status: 'exported' | 'failed_export' = 'exported'): void {
    this.setStatus(this.annotation(id), status, 'export');
  }

  /** The next matching API calls get these replies instead of being served, one fault per call. */
  injectFaults(...faults: Fault[]): void {
    this.faults.push(...faults);
  }

  /** Stores an original document; returns the payload's `document` object (its `content` URL is on this API). */
  addDocument(id: number, bytes: Buffer, originalFileName = `scan_${id}.pdf`): Record<string, unknown> {
    this.documentContents.set(id, bytes);
    const url = `${this.apiUrl}/v1/documents/${id}`;
    return { id, url, mime_type: 'application/pdf', original_file_name: originalFileName, content: `${url}/content` };
  }

  /** The document's next `times` downloads (default: all) fail as `fault` says; `kind` names it in `documentDownloads`. */
  failDocument(id: number, fault: DocumentFault & { kind: string }): void {
    this.documentFaults.set(id, { ...fault });
  }

  pendingFaults(): number {
    return this.faults.length;
  }

  /** Calls to one path pattern, e.g. `callsTo('PATCH', '/v1/annotations/7')` (the `/api` prefix is ignored). */
  callsTo(method: string, path: string): RecordedCall[] {
    return this.calls.filter((c) => c.method === method && stripApi(c.path) === path);
  }

  // ── hook side ────────────────────────────────────────────────────────────

  /**
   * Rossum's export flow: the annotation goes to `exporting`, the hook is called with the documented
   * hook call semantics, and the annotation ends `exported` or `failed_export` with the reply's messages.
   */
  async exportAnnotation(
    payload: Record<string, unknown> | string,
    config: HookConfig,
  ): Promise<{ outcome: HookCallOutcome; annotation: SimulatedAnnotation }> {
    const {
      hookUrl,
      secret,
      tokenOwner = true,
      useSimulatorBaseUrl = true,
      tokenLifetimeS = 600,
      ...hookSettings
    } = config;
    const object: Record<string, unknown> =
      typeof payload === 'string' ? (JSON.parse(payload) as Record<string, unknown>) : structuredClone(payload);
    const annotationPart = object.annotation;
    if (
      typeof annotationPart !== 'object' ||
      annotationPart === null ||
      typeof (annotationPart as { id?: unknown }).id !== 'number'
    ) {
      throw new Error('simulator: payload has no annotation.id');
    }
    const id = (annotationPart as { id: number }).id;
    const annotation = this.annotations.get(id) ?? this.addAnnotation(id, { metadata: metadataOf(annotationPart) });
    if (annotation.status !== 'exporting') this.setStatus(annotation, 'exporting', 'export');
    this.lastExports.set(id, { payload: structuredClone(object), config });

    const hookToken = tokenOwner ? this.issueToken(tokenLifetimeS * 1000) : undefined;
    const body =
      typeof payload === 'string' && !useSimulatorBaseUrl && !tokenOwner
        ? payload
        : this.preparePayload(object, id, { hookToken, useSimulatorBaseUrl });
    const options: HookCallOptions = { ...hookSettings, url: hookUrl, body };
    if (secret !== undefined) options.secret = secret;
    let outcome: HookCallOutcome;
    try {
      outcome = await callHook(options);
    } finally {
      // Lenient for async hooks: the token lives until the final answer, not just the 202.
      if (hookToken !== undefined) this.expireToken(hookToken);
    }
    if (config.processingDelayMs) await new Promise((resolve) => setTimeout(resolve, config.processingDelayMs));
    annotation.messages = outcome.messages;
    annotation.exports.push(outcome);
    this.setStatus(annotation, outcome.annotationStatus, 'export');
    return { outcome, annotation };
  }

  /** Export again with the last payload and hook config (what `PATCH status=exporting` triggers). */
  async reexport(id: number): Promise<{ outcome: HookCallOutcome; annotation: SimulatedAnnotation }> {
    const last = this.lastExports.get(id);
    if (!last) throw new Error(`simulator: annotation ${id} was never exported`);
    return this.exportAnnotation(last.payload, last.config);
  }

  private preparePayload(
    object: Record<string, unknown>,
    id: number,
    options: { hookToken: string | undefined; useSimulatorBaseUrl: boolean },
  ): string {
    const annotation = object.annotation as Record<string, unknown>;
    annotation.status = 'exporting';
    if (options.useSimulatorBaseUrl) {
      object.base_url = this.baseUrl;
      annotation.url = this.annotationUrl(id);
    }
    if (options.hookToken !== undefined) object.rossum_authorization_token = options.hookToken;
    else delete object.rossum_authorization_token;
    object.request_id = randomUUID();
    object.timestamp = new Date().toISOString().replace('Z', '000Z');
    return JSON.stringify(object);
  }

  private setStatus(annotation: SimulatedAnnotation, status: SimulatedStatus, by: StatusChange['by']): void {
    annotation.status = status;
    annotation.history.push({ status, by, at: new Date().toISOString() });
  }

  // ── API side ─────────────────────────────────────────────────────────────

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const method = req.method ?? 'GET';
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    const raw = await readBody(req);
    let body: unknown;
    if (raw !== '') {
      try {
        body = JSON.parse(raw);
      } catch {
        body = raw;
      }
    }
    const authHeader = req.headers.authorization;
    const scheme = authHeader ? (authHeader.split(' ')[0] ?? null) : null;
    const call: RecordedCall = {
      method,
      path,
      body,
      authorized: authHeader !== undefined,
      authScheme: scheme,
      status: 0,
      injected: false,
    };
    this.calls.push(call);

    const reply = (status: number, json?: unknown, headers: Record<string, string> = {}): void => {
      call.status = status;
      const text = json === undefined ? '' : JSON.stringify(json);
      res.writeHead(status, { ...(json === undefined ? {} : { 'content-type': 'application/json' }), ...headers });
      res.end(text);
    };

    const faultIndex = this.faults.findIndex(
      (f) => (!f.method || f.method === method) && (!f.pathPrefix || (stripApi(path) ?? path).startsWith(f.pathPrefix)),
    );
    if (faultIndex >= 0) {
      const [fault] = this.faults.splice(faultIndex, 1);
      if (fault) {
        call.injected = true;
        reply(
          fault.status,
          fault.body ?? { detail: `Injected fault ${fault.status}` },
          fault.retryAfter === undefined ? {} : { 'retry-after': fault.retryAfter },
        );
        return;
      }
    }

    const route = stripApi(path);
    if (route === null) return reply(404, { detail: 'Not found.' });
    if (this.requestsPerSecond > 0) {
      const now = Date.now();
      this.recent = this.recent.filter((at) => at > now - 1000);
      if (this.recent.length >= this.requestsPerSecond) {
        const waitS = Math.max(1, Math.ceil(((this.recent[0] ?? now) + 1000 - now) / 1000));
        return reply(
          429,
          { detail: `Request was throttled. Expected available in ${waitS} seconds.` },
          { 'retry-after': String(waitS) },
        );
      }
      this.recent.push(now);
    }
    if (method === 'POST' && route === '/v1/auth/login') return this.login(body, reply);

    if (!this.authenticated(authHeader)) return reply(401, { detail: 'Invalid token.' });
    if (method === 'POST' && route === '/v1/auth/token') return this.renewToken(body, reply);
    if (method === 'GET' && route === '/v1/auth/user')
      return reply(200, { id: 1, url: `${this.apiUrl}/v1/users/1`, username: Object.keys(this.users)[0] ?? 'api' });

    const contentMatch = /^\/v1\/documents\/(\d+)\/content$/.exec(route);
    if (contentMatch && method === 'GET') {
      const documentId = Number(contentMatch[1]);
      const bytes = this.documentContents.get(documentId);
      if (!bytes) return reply(404, { detail: 'Not found.' });
      const fault = this.documentFaults.get(documentId);
      if (fault && fault.times !== undefined && --fault.times <= 0) this.documentFaults.delete(documentId);
      this.documentDownloads.push({ documentId, fault: fault?.kind ?? null });
      if (fault?.hang) return;
      if (fault?.status) return reply(fault.status, { detail: `Injected document fault ${fault.status}` });
      call.status = 200;
      return serveDocumentBody(res, { bytes, mimeType: 'application/pdf' }, fault);
    }
    const annotationMatch = /^\/v1\/annotations\/(\d+)\/?$/.exec(route);
    if (annotationMatch) {
      const annotation = this.annotations.get(Number(annotationMatch[1]));
      if (!annotation) return reply(404, { detail: 'Not found.' });
      if (method === 'GET') return reply(200, this.serialize(annotation));
      if (method === 'PATCH') return this.patch(annotation, body, reply);
      return reply(405, { detail: `Method "${method}" not allowed.` });
    }
    if (route === '/v1/notes' || route === '/v1/notes/') {
      if (method === 'POST') return this.createNote(body, reply);
      if (method === 'GET') return this.listNotes(new URL(req.url ?? '/', 'http://simulator').searchParams, reply);
      return reply(405, { detail: `Method "${method}" not allowed.` });
    }
    return reply(404, { detail: 'Not found.' });
  }

  private login(body: unknown, reply: (status: number, json?: unknown) => void): void {
    const { username, password } = (typeof body === 'object' && body !== null ? body : {}) as Record<string, unknown>;
    if (typeof username !== 'string' || typeof password !== 'string')
      return reply(400, { username: ['This field is required.'], password: ['This field is required.'] });
    if (this.users[username] !== password) return reply(401, { detail: 'Unable to log in with provided credentials.' });
    const key = this.issueToken(this.lifetimeFor(body));
    reply(200, { key, domain: '127.0.0.1' });
  }

  /** `POST /v1/auth/token`: a valid token gets a new one (`max_token_lifetime_s`, at most 162 h); the old one stays valid until it expires. */
  private renewToken(body: unknown, reply: (status: number, json?: unknown) => void): void {
    const key = this.issueToken(this.lifetimeFor(body));
    reply(200, { key, domain: '127.0.0.1', scope: 'default' });
  }

  private lifetimeFor(body: unknown): number {
    const asked =
      typeof body === 'object' && body !== null ? (body as Record<string, unknown>).max_token_lifetime_s : undefined;
    const askedMs =
      typeof asked === 'number' && asked > 0
        ? Math.min(asked, ROSSUM_RULES.maxTokenLifetimeS) * 1000
        : Number.POSITIVE_INFINITY;
    return Math.min(askedMs, this.tokenLifetimeMs);
  }

  private authenticated(header: string | undefined): boolean {
    if (!header) return false;
    const [scheme, token, ...rest] = header.split(' ');
    if (rest.length > 0 || scheme === undefined || !this.acceptedSchemes.includes(scheme) || token === undefined)
      return false;
    return this.tokenValid(token);
  }

  private patch(annotation: SimulatedAnnotation, body: unknown, reply: (status: number, json?: unknown) => void): void {
    if (typeof body !== 'object' || body === null || Array.isArray(body))
      return reply(400, { non_field_errors: ['Invalid data. Expected a dictionary.'] });
    const { status, metadata, ...rest } = body as Record<string, unknown>;
    const unknownKeys = Object.keys(rest);
    if (unknownKeys.length > 0)
      return reply(400, Object.fromEntries(unknownKeys.map((k) => [k, ['Not a writable field in this simulator.']])));
    if (status !== undefined && !(ANNOTATION_STATUSES as ReadonlyArray<unknown>).includes(status)) {
      return reply(400, { status: [`"${String(status)}" is not a valid choice.`] });
    }
    if (metadata !== undefined && (typeof metadata !== 'object' || metadata === null || Array.isArray(metadata))) {
      return reply(400, { metadata: ['Expected a dictionary.'] });
    }
    if (annotation.status === 'purged') return reply(409, { detail: 'A purged annotation cannot be changed.' });
    if (metadata !== undefined && Buffer.byteLength(JSON.stringify(metadata)) > ROSSUM_RULES.metadataBytes) {
      return reply(400, { metadata: [`Metadata can have at most ${ROSSUM_RULES.metadataBytes} bytes.`] });
    }
    // Rossum replaces `metadata` as a whole; merging is the caller's job.
    if (metadata !== undefined) annotation.metadata = structuredClone(metadata as Record<string, unknown>);
    if (status !== undefined) this.setStatus(annotation, status as SimulatedStatus, 'api');
    reply(200, this.serialize(annotation));
    // "Patching annotation status to exporting state triggers an export retry."
    if (status === 'exporting' && this.lastExports.has(annotation.id)) {
      const run = this.reexport(annotation.id).catch(() => undefined);
      this.background.add(run);
      void run.finally(() => this.background.delete(run));
    }
  }

  private createNote(body: unknown, reply: (status: number, json?: unknown) => void): void {
    const { annotation, content, type } = (typeof body === 'object' && body !== null ? body : {}) as Record<
      string,
      unknown
    >;
    const errors: Record<string, string[]> = {};
    if (typeof content !== 'string' || content === '') errors.content = ['This field is required.'];
    else if (Array.from(content).length > 4096)
      errors.content = ['Ensure this field has no more than 4096 characters.'];
    if (type !== undefined && type !== 'rejection') errors.type = [`"${String(type)}" is not a valid choice.`];
    const id = typeof annotation === 'string' ? /\/annotations\/(\d+)\/?$/.exec(annotation)?.[1] : undefined;
    const target = id === undefined ? undefined : this.annotations.get(Number(id));
    if (!target) errors.annotation = ['Invalid hyperlink - Object does not exist.'];
    if (Object.keys(errors).length > 0 || !target) return reply(400, errors);
    const note: SimulatedNote = {
      id: this.nextNoteId++,
      type: typeof type === 'string' ? type : 'rejection',
      content: content as string,
      annotation: annotation as string,
      createdAt: new Date().toISOString(),
    };
    target.notes.push(note);
    reply(201, {
      id: note.id,
      url: `${this.apiUrl}/v1/notes/${note.id}`,
      type: note.type,
      content: note.content,
      annotation: note.annotation,
      created_at: note.createdAt,
    });
  }

  /** `GET /v1/notes?annotation=ID&page=N`: pages of `notesPageSize` (20), linked by `pagination.next`. */
  private listNotes(query: URLSearchParams, reply: (status: number, json?: unknown) => void): void {
    const annotationId = query.get('annotation');
    const page = Math.max(1, Number.parseInt(query.get('page') ?? '1', 10) || 1);
    const annotations =
      annotationId === null
        ? [...this.annotations.values()]
        : [this.annotations.get(Number(annotationId))].filter((a): a is SimulatedAnnotation => a !== undefined);
    const results = annotations.flatMap((annotation) =>
      annotation.notes.map((note) => ({
        id: note.id,
        url: `${this.apiUrl}/v1/notes/${note.id}`,
        type: note.type,
        content: note.content,
        annotation: note.annotation,
        created_at: note.createdAt,
      })),
    );
    const from = (page - 1) * this.notesPageSize;
    const link = (n: number): string => {
      const next = new URLSearchParams(query);
      next.set('page', String(n));
      return `${this.apiUrl}/v1/notes?${next.toString()}`;
    };
    reply(200, {
      pagination: {
        total: results.length,
        total_pages: Math.max(1, Math.ceil(results.length / this.notesPageSize)),
        next: from + this.notesPageSize < results.length ? link(page + 1) : null,
        previous: page > 1 ? link(page - 1) : null,
      },
      results: results.slice(from, from + this.notesPageSize),
    });
  }

  private serialize(annotation: SimulatedAnnotation): Record<string, unknown> {
    return {
      id: annotation.id,
      url: this.annotationUrl(annotation.id),
      status: annotation.status,
      metadata: structuredClone(annotation.metadata),
      messages: annotation.messages.map(({ origin: _origin, ...m }) => m),
    };
  }
}

function stripApi(path: string): string | null {
  if (path.startsWith('/api/v1/')) return path.slice(4);
  if (path.startsWith('/v1/')) return path;
  return null;
}

function metadataOf(annotation: object): Record<string, unknown> {
  const metadata = (annotation as { metadata?: unknown }).metadata;
  return typeof metadata === 'object' && metadata !== null && !Array.isArray(metadata)
    ? (metadata as Record<string, unknown>)
    : {};
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}
