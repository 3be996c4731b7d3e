import { createHmac } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hashPassword } from '../../src/console/index.ts';
import { bridgeConfigSchema, type BridgeConfig } from '../../src/config/index.ts';
import { consoleLedgerOf, type ConsoleLedger } from '../../src/ledger/index.ts';
import { startBridge, type RunningBridge } from '../../src/process/index.ts';
import { CapturedLog, fixture, repoRoot, TEST_SECRET, testTargetConfig } from '../support/bridge.ts';
import type { SshdInstance } from '../support/sshd.ts';
import { createLogger } from '../../src/observability/logger.ts';

export const OPERATOR = { name: 'olga', password: 'operator-password-1' };
export const VIEWER = { name: 'victor', password: 'viewer-password-12' };
export const ACCESS_TOKEN = 'console-access-token-0123456789abcdef';
export const SESSION_SECRET = 'console-session-secret-0123456789abcdef';

export interface ConsoleBridge {
  bridge: RunningBridge;
  config: BridgeConfig;
  /** `http://127.0.0.1:PORT/console` */
  consoleUrl: string;
  consoleLedger: ConsoleLedger;
  log: CapturedLog;
  /** Sends one signed export webhook for this annotation (document number `INV-<annotationId>`). */
  send(annotationId: number): Promise<number>;
  close(): Promise<void>;
}

let hashes: Promise<{ operator: string; viewer: string }> | undefined;

/** scrypt is slow on purpose: hash the two test passwords once per test file. */
function userHashes(): Promise<{ operator: string; viewer: string }> {
  hashes ??= Promise.all([hashPassword(OPERATOR.password), hashPassword(VIEWER.password)]).then(
    ([operator, viewer]) => ({ operator, viewer }),
  );
  return hashes;
}

function setDocumentId(payload: Record<string, unknown>, value: string): void {
  const walk = (node: {
    schema_id?: string;
    category?: string;
    children?: unknown[];
    content?: { value: string };
  }): void => {
    if (node.category === 'datapoint' && node.schema_id === 'document_id' && node.content) node.content.value = value;
    for (const child of (node.children ?? []) as Array<typeof node>) walk(child);
  };
  for (const section of (payload.annotation as { content: Array<Parameters<typeof walk>[0]> }).content) walk(section);
}

export async function startConsoleBridge(
  sshd: SshdInstance,
  options: { mapping?: string; console?: Record<string, unknown> } = {},
): Promise<ConsoleBridge> {
  const { operator, viewer } = await userHashes();
  const dir = mkdtempSync(join(tmpdir(), 'rsb-console-'));
  const config = bridgeConfigSchema.parse({
    server: { host: '127.0.0.1', port: 0, secret: TEST_SECRET },
    ledger: { url: `sqlite:${join(dir, 'ledger.db')}` },
    mappingsDir: join(repoRoot, 'mappings'),
    targets: { erp: testTargetConfig(sshd) },
    routes: [{ mapping: options.mapping ?? 'generic-xml', target: 'erp' }],
    console: {
      enabled: true,
      users: [
        { name: OPERATOR.name, passwordHash: operator, role: 'operator' },
        { name: VIEWER.name, passwordHash: viewer, role: 'viewer' },
      ],
      tokenEnv: 'BRIDGE_CONSOLE_TOKEN',
      sessionSecret: SESSION_SECRET,
      ...options.console,
    },
  });
  const log = new CapturedLog();
  const logger = createLogger({ level: 'debug', destination: log.stream });
  const bridge = await startBridge(config, { logger, env: { BRIDGE_CONSOLE_TOKEN: ACCESS_TOKEN } });
  const origin = new URL(bridge.url).origin;
  return {
    bridge,
    config,
    consoleUrl: `${origin}${config.console.pathPrefix}`,
    consoleLedger: consoleLedgerOf(bridge.ledger),
    log,
    async send(annotationId) {
      const payload = fixture('export-invoice.json');
      (payload.annotation as { id: number }).id = annotationId;
      payload.request_id = `req-${annotationId}-${Date.now()}`;
      setDocumentId(payload, `INV-${annotationId}`);
      const body = JSON.stringify(payload);
      const response = await fetch(bridge.url, {
        method: 'POST',
        body,
        headers: {
          'content-type': 'application/json',
          'x-rossum-signature-sha256': `sha256=${createHmac('sha256', TEST_SECRET).update(body).digest('hex')}`,
        },
      });
      await response.arrayBuffer();
      return response.status;
    },
    close: () => bridge.close(),
  };
}

/** A cookie jar just big enough for the console's two cookies. */
export class Session {
  private readonly cookies = new Map<string, string>();
  constructor(readonly baseUrl: string) {}

  async request(path: string, init: RequestInit = {}): Promise<Response> {
    const headers = new Headers(init.headers);
    if (this.cookies.size > 0)
      headers.set('cookie', [...this.cookies].map(([name, value]) => `${name}=${value}`).join('; '));
    const response = await fetch(`${this.baseUrl}${path}`, { ...init, headers, redirect: 'manual' });
    for (const line of response.headers.getSetCookie()) {
      const [pair] = line.split(';');
      const at = pair?.indexOf('=') ?? -1;
      if (!pair || at < 0) continue;
      const value = pair.slice(at + 1);
      if (value === '' || /expires=Thu, 01 Jan 1970/i.test(line)) this.cookies.delete(pair.slice(0, at));
      else this.cookies.set(pair.slice(0, at), value);
    }
    return response;
  }

  /** The CSRF token of the form on a page. */
  async csrfFrom(path: string): Promise<string> {
    const html = await (await this.request(path)).text();
    const match = /name="_csrf" value="([^"]+)"/.exec(html);
    if (!match?.[1]) throw new Error(`no CSRF token on ${path}`);
    return match[1];
  }

  post(path: string, form: Record<string, string>): Promise<Response> {
    return this.request(path, {
      method: 'POST',
      body: new URLSearchParams(form).toString(),
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
  }

  async signIn(name: string, password: string): Promise<Response> {
    const csrf = await this.csrfFrom('/login');
    return this.post('/login', { _csrf: csrf, name, password });
  }
}
