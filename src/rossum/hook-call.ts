import { createHmac } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { BridgeError, describeError } from '../errors.ts';
import { truncateContent } from './limits.ts';
import { type HookMessage, parseReply } from './hook-reply.ts';
import { realSleep, type Sleep } from './sleep.ts';

export { type HookMessage, type HookMessageType, parseReply } from './hook-reply.ts';

/**
 * Rossum's side of a non-interactive webhook call (`annotation_content.export`), as documented in
 * "Timeouts and retries", "Asynchronous webhooks", "Validating payloads" and the connector `save`
 * section. Used by the `send` and `dev` commands and by the test simulator, so both behave like Rossum.
 * Wording: a "hook call" is Rossum calling us; us telling Rossum an ack outcome is an "outcome delivery"
 * (`src/ack/outcome-delivery.ts`). The service itself never imports this module; only the `send` and
 * `dev` commands and the tests do.
 */

export type ExportAnnotationStatus = 'exported' | 'failed_export';

/** A message as the operator would see it; `origin: 'rossum'` marks text Rossum itself shows (timeouts, bare HTTP errors). */
export interface ShownMessage extends HookMessage {
  origin: 'hook' | 'rossum';
}

export interface PollRecord {
  poll: number;
  url: string;
  statusCode: number | null;
  durationMs: number;
  bodyExcerpt: string;
  error?: string;
  /** done = 201 received; keep-polling = 408/429/5xx or a 2xx other than 201; failed = polling failure. */
  verdict: 'done' | 'keep-polling' | 'failed';
}

export interface AttemptRecord {
  /** 1-based; at most `retryCount + 1`. */
  attempt: number;
  /** Status of the webhook call itself (202 for async calls). `null` on timeout or connection failure. */
  statusCode: number | null;
  /** The status that decided this attempt: the 201 of a finished poll, or `statusCode`. */
  resultStatusCode: number | null;
  /** Wall-clock time of the call, including any polling. */
  durationMs: number;
  /** First characters of the body that decided this attempt. */
  bodyExcerpt: string;
  error?: string;
  polls: PollRecord[];
  verdict: 'success' | 'retry' | 'failed';
  /** Set when `verdict` is `retry`: the delay before the next attempt. */
  retryInMs?: number;
}

export interface HookCallOutcome {
  annotationStatus: ExportAnnotationStatus;
  attempts: AttemptRecord[];
  /** What the operator sees on the annotation. */
  messages: ShownMessage[];
  /** Status of the response that decided the outcome (201 for a finished async call); `null` after a timeout or connection failure. */
  finalStatusCode: number | null;
  /** `operations` of a successful JSON reply, passed through untouched. */
  operations: unknown[];
}

export interface HookCallOptions {
  url: string;
  /** Sent byte for byte; the signature is computed over exactly these bytes. */
  body: Buffer | string;
  /** `hook.config.secret`; without it no signature header is sent (as Rossum does for hooks without a secret). */
  secret?: string;
  /** Also send the legacy `X-Elis-Signature: sha1=<hex>` header. */
  legacySha1Signature?: boolean;
  /** `hook.config.timeout_s`, 0–60; applies to each request (call or poll). Default 30. */
  timeoutS?: number;
  /** `hook.config.retry_count`, 0–4; attempts = retryCount + 1. Default 4. */
  retryCount?: number;
  /** `hook.config.retry_on_any_non_2xx`. Default false: only 408, 429, 500, 502, 503, 504, timeouts and connection errors are retried. */
  retryOnAnyNon2xx?: boolean;
  /** Delay before a retry ("retried within 30 seconds"). Default 30. */
  retryDelayS?: number;
  /** Interval between polls of an async (202 + Location) call. Default 30. */
  pollIntervalS?: number;
  /** `hook.config.max_polling_time_s`; 300 for export events. */
  maxPollingTimeS?: number;
  /** `hook.config.retry_after_polling_failure`. Default true. */
  retryAfterPollingFailure?: boolean;
  /** Extra request headers (never signature headers; those come from `secret`). */
  headers?: Record<string, string>;
  /** Cancels the whole hook call (in-flight request and waits). */
  signal?: AbortSignal;
  /** Injectable for tests; defaults to a real timer. */
  sleep?: Sleep;
  /** Clock for the polling deadline; defaults to `Date.now`. */
  now?: () => number;
  onAttempt?: (record: AttemptRecord) => void;
  onPoll?: (attempt: number, record: PollRecord) => void;
}

export const SIGNATURE_HEADER = 'X-Rossum-Signature-SHA256';
export const LEGACY_SIGNATURE_HEADER = 'X-Elis-Signature';
/** Statuses Rossum retries when `retry_on_any_non_2xx` is false, and keeps polling on. */
export const RETRYABLE_STATUSES: ReadonlySet<number> = new Set([408, 429, 500, 502, 503, 504]);
const EXCERPT_LIMIT = 500;

export const HOOK_CALL_DEFAULTS = {
  timeoutS: 30,
  retryCount: 4,
  retryOnAnyNon2xx: false,
  retryDelayS: 30,
  pollIntervalS: 30,
  maxPollingTimeS: 300,
  retryAfterPollingFailure: true,
} as const;

export function signSha256(body: Buffer | string, secret: string): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}

export function signSha1(body: Buffer | string, secret: string): string {
  return `sha1=${createHmac('sha1', secret).update(body).digest('hex')}`;
}

type Exchange =
  | { kind: 'response'; status: number; text: string; location: string | null; durationMs: number }
  | { kind: 'failure'; error: string; timedOut: boolean; durationMs: number };

type PollResult =
  | { kind: 'done'; status: number; text: string }
  | { kind: 'failed'; reason: string; status: number | null; text: string };

interface Settings {
  timeoutS: number;
  retryCount: number;
  retryOnAnyNon2xx: boolean;
  retryDelayS: number;
  pollIntervalS: number;
  maxPollingTimeS: number;
  retryAfterPollingFailure: boolean;
}

export async function callHook(options: HookCallOptions): Promise<HookCallOutcome> {
  const settings = resolveSettings(options);
  const sleep = options.sleep ?? realSleep;
  const now = options.now ?? Date.now;
  const body = typeof options.body === 'string' ? Buffer.from(options.body, 'utf8') : options.body;
  const headers: Record<string, string> = { 'content-type': 'application/json', ...options.headers };
  if (options.secret !== undefined) {
    headers[SIGNATURE_HEADER] = signSha256(body, options.secret);
    if (options.legacySha1Signature) headers[LEGACY_SIGNATURE_HEADER] = signSha1(body, options.secret);
  }

  const attempts: AttemptRecord[] = [];
  const maxAttempts = settings.retryCount + 1;
  for (let attempt = 1; ; attempt++) {
    const started = performance.now();
    const call = await exchange(options.url, { method: 'POST', headers, body }, settings.timeoutS, options.signal);
    const polls: PollRecord[] = [];
    // What decides this attempt: the call's reply, or for 202 + Location, the polling result.
    let decisive: Exchange | PollResult = call;
    if (call.kind === 'response' && call.status === 202 && call.location !== null) {
      const pollUrl = new URL(call.location, options.url).toString();
      decisive = await poll(pollUrl, settings, sleep, now, options, attempt, polls);
    }

    const record: AttemptRecord = {
      attempt,
      statusCode: call.kind === 'response' ? call.status : null,
      resultStatusCode: decisiveStatus(decisive),
      durationMs: Math.round(performance.now() - started),
      bodyExcerpt: excerpt(decisiveText(decisive)),
      polls,
      verdict: 'failed',
    };
    const error = decisiveError(decisive);
    if (error !== undefined) record.error = error;

    const succeeded = isSuccess(decisive);
    const retryable = !succeeded && isRetryable(decisive, settings);
    if (succeeded) record.verdict = 'success';
    else if (retryable && attempt < maxAttempts) {
      record.verdict = 'retry';
      record.retryInMs = Math.round(settings.retryDelayS * 1000);
    }
    attempts.push(record);
    options.onAttempt?.(record);

    if (record.verdict === 'retry') {
      await sleep(record.retryInMs ?? 0, options.signal);
      continue;
    }
    return interpret(decisive, attempts, settings);
  }
}

function resolveSettings(options: HookCallOptions): Settings {
  const settings: Settings = {
    timeoutS: options.timeoutS ?? HOOK_CALL_DEFAULTS.timeoutS,
    retryCount: options.retryCount ?? HOOK_CALL_DEFAULTS.retryCount,
    retryOnAnyNon2xx: options.retryOnAnyNon2xx ?? HOOK_CALL_DEFAULTS.retryOnAnyNon2xx,
    retryDelayS: options.retryDelayS ?? HOOK_CALL_DEFAULTS.retryDelayS,
    pollIntervalS: options.pollIntervalS ?? HOOK_CALL_DEFAULTS.pollIntervalS,
    maxPollingTimeS: options.maxPollingTimeS ?? HOOK_CALL_DEFAULTS.maxPollingTimeS,
    retryAfterPollingFailure: options.retryAfterPollingFailure ?? HOOK_CALL_DEFAULTS.retryAfterPollingFailure,
  };
  // Rossum's documented bounds: timeout_s 0–60, retry_count 0–4.
  if (!(settings.timeoutS >= 0 && settings.timeoutS <= 60))
    invalid(`timeoutS must be between 0 and 60 (got ${settings.timeoutS})`);
  if (!Number.isInteger(settings.retryCount) || settings.retryCount < 0 || settings.retryCount > 4) {
    invalid(`retryCount must be an integer between 0 and 4 (got ${settings.retryCount})`);
  }
  for (const key of ['retryDelayS', 'pollIntervalS', 'maxPollingTimeS'] as const) {
    if (!(settings[key] >= 0) || !Number.isFinite(settings[key]))
      invalid(`${key} must be a non-negative number (got ${settings[key]})`);
  }
  let parsed: URL | undefined;
  try {
    parsed = new URL(options.url);
  } catch {
    invalid(`not a valid URL: ${options.url}`);
  }
  if (parsed && parsed.protocol !== 'http:' && parsed.protocol !== 'https:')
    invalid(`URL must be http(s): ${options.url}`);
  return settings;
}

function invalid(message: string): never {
  throw new BridgeError('HOOK_CALL_OPTIONS_INVALID', message, { permanent: true });
}

async function exchange(
  url: string,
  init: { method: 'POST' | 'GET'; headers?: Record<string, string>; body?: Buffer },
  timeoutS: number,
  outer: AbortSignal | undefined,
): Promise<Exchange> {
  const started = performance.now();
  const timeout = AbortSignal.timeout(Math.max(1, Math.round(timeoutS * 1000)));
  const signal = outer ? AbortSignal.any([outer, timeout]) : timeout;
  try {
    const response = await fetch(url, {
      method: init.method,
      headers: init.headers,
      body: init.body,
      signal,
      // Rossum judges the hook's own answer; a redirect is a non-2xx answer, not something to follow.
      redirect: 'manual',
    });
    // The timeout covers the whole reply, body included.
    const text = await response.text();
    return {
      kind: 'response',
      status: response.status,
      text,
      location: response.headers.get('location'),
      durationMs: performance.now() - started,
    };
  } catch (error) {
    if (outer?.aborted) throw outer.reason;
    const durationMs = performance.now() - started;
    if (timeout.aborted)
      return { kind: 'failure', error: `no response within ${timeoutS} s`, timedOut: true, durationMs };
    return { kind: 'failure', error: `connection failed: ${networkErrorText(error)}`, timedOut: false, durationMs };
  }
}

function networkErrorText(error: unknown): string {
  const cause = error instanceof Error ? error.cause : undefined;
  if (cause instanceof Error) {
    const code = (cause as NodeJS.ErrnoException).code;
    return code && !cause.message.includes(code) ? `${code} ${cause.message}` : cause.message;
  }
  return describeError(error);
}

async function poll(
  url: string,
  settings: Settings,
  sleep: Sleep,
  now: () => number,
  options: HookCallOptions,
  attempt: number,
  polls: PollRecord[],
): Promise<PollResult> {
  const started = now();
  const limitMs = settings.maxPollingTimeS * 1000;
  for (let n = 1; ; n++) {
    await sleep(settings.pollIntervalS * 1000, options.signal);
    if (now() - started > limitMs) {
      return {
        kind: 'failed',
        reason: `no final answer within the maximum polling time of ${settings.maxPollingTimeS} s`,
        status: null,
        text: '',
      };
    }
    const reply = await exchange(url, { method: 'GET' }, settings.timeoutS, options.signal);
    const record: PollRecord = {
      poll: n,
      url,
      statusCode: reply.kind === 'response' ? reply.status : null,
      durationMs: Math.round(reply.durationMs),
      bodyExcerpt: reply.kind === 'response' ? excerpt(reply.text) : '',
      verdict: 'keep-polling',
    };
    if (reply.kind === 'failure') record.error = reply.error;
    let result: PollResult | undefined;
    if (reply.kind === 'response') {
      if (reply.status === 201) result = { kind: 'done', status: 201, text: reply.text };
      else if (reply.status >= 300 && !RETRYABLE_STATUSES.has(reply.status)) {
        result = {
          kind: 'failed',
          reason: `polling ${url} failed with HTTP ${reply.status}`,
          status: reply.status,
          text: reply.text,
        };
      }
      // Other 2xx are not a result yet (only 201 is), and 408/429/500/502/503/504 are documented as "keep polling".
    }
    // Timeouts and connection errors on a poll: the contract lists only status codes; we keep polling (see report).
    if (result) record.verdict = result.kind === 'done' ? 'done' : 'failed';
    polls.push(record);
    options.onPoll?.(attempt, record);
    if (result) return result;
  }
}

function isSuccess(decisive: Exchange | PollResult): boolean {
  if (decisive.kind === 'done') return true;
  return decisive.kind === 'response' && decisive.status >= 200 && decisive.status < 300;
}

function isRetryable(decisive: Exchange | PollResult, settings: Settings): boolean {
  switch (decisive.kind) {
    case 'failure':
      return true;
    case 'failed':
      return settings.retryAfterPollingFailure;
    case 'response':
      return settings.retryOnAnyNon2xx || RETRYABLE_STATUSES.has(decisive.status);
    case 'done':
      return false;
  }
}

function decisiveStatus(decisive: Exchange | PollResult): number | null {
  if (decisive.kind === 'response' || decisive.kind === 'done' || decisive.kind === 'failed') return decisive.status;
  return null;
}

function decisiveText(decisive: Exchange | PollResult): string {
  return decisive.kind === 'failure' ? '' : decisive.text;
}

function decisiveError(decisive: Exchange | PollResult): string | undefined {
  if (decisive.kind === 'failure') return decisive.error;
  if (decisive.kind === 'failed') return decisive.reason;
  return undefined;
}

/** The last answer decides, exactly as Rossum reads an `annotation_content.export` reply. */
function interpret(decisive: Exchange | PollResult, attempts: AttemptRecord[], settings: Settings): HookCallOutcome {
  const finalStatusCode = decisiveStatus(decisive);
  if (isSuccess(decisive)) {
    const text = decisiveText(decisive);
    const parsed = parseReply(text);
    const messages = parsed.messages.map((m): ShownMessage => ({ ...m, origin: 'hook' }));
    const failed = messages.some((m) => m.type === 'error');
    return {
      annotationStatus: failed ? 'failed_export' : 'exported',
      attempts,
      messages,
      finalStatusCode,
      operations: failed ? [] : parsed.operations,
    };
  }

  const messages: ShownMessage[] = [];
  if (decisive.kind === 'failure') {
    messages.push(
      rossumMessage(
        decisive.timedOut
          ? `Webhook call timed out (no response within ${settings.timeoutS} s)`
          : `Webhook call failed: ${decisive.error}`,
      ),
    );
  } else {
    // "Parsable error response": the same messages format with a non-2xx status (operations are not considered).
    const parsed = parseReply(decisive.text);
    if (parsed.hasMessages) messages.push(...parsed.messages.map((m): ShownMessage => ({ ...m, origin: 'hook' })));
    else if (decisive.text.trim() !== '')
      messages.push({ type: 'error', content: truncateContent(decisive.text.trim()), origin: 'hook' });
    if (messages.length === 0) {
      const reason = decisive.kind === 'failed' ? decisive.reason : `HTTP ${decisive.status}`;
      messages.push(rossumMessage(`Webhook call failed: ${reason}`));
    }
  }
  return { annotationStatus: 'failed_export', attempts, messages, finalStatusCode, operations: [] };
}

function rossumMessage(content: string): ShownMessage {
  return { type: 'error', content, origin: 'rossum' };
}

function excerpt(text: string): string {
  return truncateContent(text, EXCERPT_LIMIT);
}
