import { timingSafeEqual } from 'node:crypto';
import type { BridgeConfig } from '../config/index.ts';
import { BridgeError } from '../errors.ts';
import type { RossumAdminApi, RossumHook } from '../rossum/index.ts';
import { WEBHOOK_PATH } from '../webhook/index.ts';

/** The only event the bridge answers: Rossum's export step. */
export const HOOK_EVENTS = ['annotation_content.export'] as const;
export const DEFAULT_HOOK_NAME = 'rossum-sftp-bridge';
/** Rossum allows 0–4 retries; the ledger makes a repeated call upload nothing twice, so use them all. */
const RETRY_COUNT = 4;

/** The hook as the bridge config wants it in Rossum. */
export interface HookSpec {
  name: string;
  url: string;
  secret: string;
  queueUrls: string[];
  timeoutS: number;
  retryCount: number;
  tokenOwner: string | undefined;
}

export interface HookSpecOptions {
  queues: number[];
  /** The webhook URL; default `server.publicUrl` + `/webhooks/rossum`. */
  url?: string;
  name?: string;
  /** User URL whose API token Rossum puts into each call (only for document downloads during the export). */
  tokenOwner?: string;
}

/** The webhook URL from `server.publicUrl`, or undefined when it is not set. */
export function webhookUrlOf(config: BridgeConfig): string | undefined {
  return config.server.publicUrl === undefined
    ? undefined
    : `${config.server.publicUrl.replace(/\/+$/, '')}${WEBHOOK_PATH}`;
}

/** Rossum's hook timeout must outlast the bridge's own deadline, which answers in time whatever the upload does. */
export function hookTimeoutS(config: BridgeConfig): number {
  return Math.min(60, Math.max(30, Math.ceil(config.server.deadlineMs / 1000) + 5));
}

export function hookSpec(config: BridgeConfig, api: RossumAdminApi, options: HookSpecOptions): HookSpec {
  const url = options.url ?? webhookUrlOf(config);
  if (url === undefined)
    throw new BridgeError('BAD_ARGUMENT', 'no webhook URL: set server.publicUrl in the config or pass --url', {
      permanent: true,
    });
  if (!/^https?:\/\//.test(url))
    throw new BridgeError('BAD_ARGUMENT', `--url "${url}" is not an http(s) URL`, { permanent: true });
  const secret = config.server.secret;
  if (secret === undefined) {
    throw new BridgeError(
      'CONFIG_INVALID',
      'server.secret is not set: the hook needs the secret the bridge checks signatures with (use ${ENV} interpolation)',
      { permanent: true },
    );
  }
  if (options.queues.length === 0)
    throw new BridgeError('BAD_ARGUMENT', 'no queue: pass --queue ID (or list queues in the routes of the config)', {
      permanent: true,
    });
  return {
    name: options.name ?? DEFAULT_HOOK_NAME,
    url,
    secret,
    queueUrls: [...new Set(options.queues)].sort((a, b) => a - b).map((id) => api.queueUrl(id)),
    timeoutS: hookTimeoutS(config),
    retryCount: RETRY_COUNT,
    tokenOwner: options.tokenOwner,
  };
}

/** Queue ids named by the routes (the fallback route names none). */
export function routeQueues(config: BridgeConfig): number[] {
  return [...new Set(config.routes.flatMap((route) => route.queues ?? []))].sort((a, b) => a - b);
}

/** Our hook: the one calling our URL, else one with our name (so a new URL updates it instead of adding a second). */
export function findHook(hooks: readonly RossumHook[], match: { url: string; name?: string }): RossumHook | undefined {
  const url = normalizeUrl(match.url);
  return (
    hooks.find((hook) => typeof hook.config.url === 'string' && normalizeUrl(hook.config.url) === url) ??
    (match.name === undefined ? undefined : hooks.find((hook) => hook.name === match.name))
  );
}

export type HookPlan =
  | { action: 'create'; body: Record<string, unknown> }
  | { action: 'update'; hook: RossumHook; body: Record<string, unknown>; changes: string[] }
  | { action: 'unchanged'; hook: RossumHook; notes: string[] };

/** What `hook install` has to send: everything for a new hook, only the differing fields for ours, nothing when it matches. */
export function planHook(spec: HookSpec, existing: RossumHook | undefined): HookPlan {
  const config = {
    url: spec.url,
    secret: spec.secret,
    timeout_s: spec.timeoutS,
    retry_count: spec.retryCount,
    retry_on_any_non_2xx: false,
  };
  if (!existing) {
    return {
      action: 'create',
      body: {
        name: spec.name,
        type: 'webhook',
        active: true,
        events: [...HOOK_EVENTS],
        queues: spec.queueUrls,
        config,
        ...(spec.tokenOwner !== undefined ? { token_owner: spec.tokenOwner } : {}),
      },
    };
  }
  const body: Record<string, unknown> = {};
  const changes: string[] = [];
  const notes: string[] = [];
  const change = (key: string, value: unknown): void => {
    body[key] = value;
    changes.push(key);
  };
  if (existing.name !== spec.name) change('name', spec.name);
  if (existing.active !== true) change('active', true);
  if (!sameSet(existing.events, HOOK_EVENTS)) change('events', [...HOOK_EVENTS]);
  if (!sameSet(existing.queues.map(queueKey), spec.queueUrls.map(queueKey))) change('queues', spec.queueUrls);
  if (spec.tokenOwner !== undefined && existing.token_owner !== spec.tokenOwner) change('token_owner', spec.tokenOwner);
  const configChanges: string[] = [];
  const current = existing.config;
  if (typeof current.url !== 'string' || normalizeUrl(current.url) !== normalizeUrl(spec.url))
    configChanges.push('config.url');
  const secret = secretState(existing, spec.secret);
  if (secret === 'differs' || secret === 'missing') configChanges.push('config.secret');
  if (secret === 'unreadable')
    notes.push(
      'Rossum did not return config.secret, so it could not be compared; it is sent with any other config change',
    );
  if (current.timeout_s !== spec.timeoutS) configChanges.push('config.timeout_s');
  if (current.retry_count !== spec.retryCount) configChanges.push('config.retry_count');
  if (current.retry_on_any_non_2xx === true) configChanges.push('config.retry_on_any_non_2xx');
  // Rossum replaces `config` as a whole: send what it has with our keys over it (the secret included, readable or not).
  if (configChanges.length > 0) {
    body.config = { ...current, ...config };
    changes.push(...configChanges);
  }
  if (changes.length === 0) return { action: 'unchanged', hook: existing, notes };
  return { action: 'update', hook: existing, body, changes };
}

export interface InstallResult {
  action: HookPlan['action'];
  hook: RossumHook;
  changes: string[];
  notes: string[];
}

/** Creates or updates the hook; a second run with the same config sends no write at all. */
export async function installHook(api: RossumAdminApi, spec: HookSpec): Promise<InstallResult> {
  const plan = planHook(spec, findHook(await api.listHooks(), { url: spec.url, name: spec.name }));
  if (plan.action === 'create')
    return { action: 'create', hook: await api.createHook(plan.body), changes: Object.keys(plan.body), notes: [] };
  if (plan.action === 'update')
    return { action: 'update', hook: await api.patchHook(plan.hook.id, plan.body), changes: plan.changes, notes: [] };
  return { action: 'unchanged', hook: plan.hook, changes: [], notes: plan.notes };
}

export type SecretState = 'matches' | 'differs' | 'missing' | 'unreadable';

/**
 * Rossum may not return `config.secret` (or return it masked); then it cannot be compared. The
 * comparison takes the same time whatever the secrets hold.
 */
export function secretState(hook: RossumHook, expected: string): SecretState {
  const secret = hook.config.secret;
  if (secret === null || secret === '') return 'missing';
  if (typeof secret !== 'string' || /^[*•]+$/.test(secret)) return 'unreadable';
  const a = Buffer.from(secret);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b) ? 'matches' : 'differs';
}

/** `hook show`: what Rossum has, the secret never printed. */
export function describeHook(hook: RossumHook, expectedSecret: string | undefined): Record<string, unknown> {
  const { secret, ...config } = hook.config;
  const secretShown =
    secret === undefined
      ? 'not returned by Rossum'
      : typeof secret !== 'string' || secret === ''
        ? 'not set'
        : `set (${secret.length} characters)${expectedSecret === undefined ? '' : `, ${secretState(hook, expectedSecret) === 'matches' ? 'matches' : 'differs from'} server.secret`}`;
  return {
    id: hook.id,
    url: hook.url,
    name: hook.name,
    type: hook.type,
    active: hook.active,
    events: hook.events,
    queues: hook.queues,
    token_owner: hook.token_owner ?? null,
    config: { ...config, secret: secretShown },
  };
}

function normalizeUrl(url: string): string {
  return url.replace(/\/+$/, '');
}

/** Queues compare by id: the same queue may be written with either API host spelling. */
function queueKey(url: string): string {
  return /\/queues\/(\d+)\/?$/.exec(url)?.[1] ?? url;
}

function sameSet(a: readonly string[], b: readonly string[]): boolean {
  const left = new Set(a);
  const right = new Set(b);
  return left.size === right.size && [...left].every((item) => right.has(item));
}
