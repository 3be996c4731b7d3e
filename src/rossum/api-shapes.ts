/** What the Rossum API client sends and reads: statuses, reply shapes, options, and its pure helpers (retry timing, redaction). */
import { z } from 'zod';
import type { Logger } from '../observability/index.ts';
import type { RossumApiConfigInput } from './config.ts';
import type { RossumApiError } from './errors.ts';
import { truncateContent } from './limits.ts';
import type { Sleep } from './sleep.ts';

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

export interface RequestSpec extends WriteOptions {
  method: 'GET' | 'POST' | 'PATCH';
  path: string;
  body?: unknown;
  /** Attempts for this call (default `retry.attempts`): 1 for an operator's tool, where a retry only hides why. */
  attempts?: number;
}

export interface WriteOptions {
  /**
   * Runs right before each attempt is sent (retries included), inside the attempt's rate-limit slot, so
   * nothing waits between it and the send. Whatever it throws fails the call as it is, unsent: the caller's
   * fence (say, its lease on the work was lost to another process).
   */
  beforeSend?: () => Promise<void>;
}

/** Carries what `beforeSend` threw past the transport error handling, unchanged. */
export class SendWithheld {
  constructor(readonly reason: unknown) {}
}

/** A runaway `next` chain must not keep a delivery busy forever (20 a page: 10,000 notes). */
export const MAX_NOTE_PAGES = 500;
export const TOKEN_REFUSED_HINT =
  ' — the API token expired or was revoked: put a valid one in rossum.token and restart or send SIGHUP, or configure rossum.username/password so the bridge logs in by itself';

export const TRANSIENT_STATUSES: ReadonlySet<number> = new Set([408, 429, 500, 502, 503, 504]);

export const notePageSchema = z.looseObject({
  results: z.array(noteSchema),
  pagination: z.looseObject({ next: z.string().nullable().optional() }).optional(),
});

/** Carries a retryable failure (and a server-requested wait) from one attempt to the retry loop. */
export class RetryableFailure extends Error {
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

export function detailOf(text: string): string {
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

export function redact(message: string, secrets: ReadonlyArray<string | undefined>): string {
  let result = message;
  for (const secret of secrets)
    if (secret !== undefined && secret.length >= 4) result = result.split(secret).join('[redacted]');
  return result;
}

/** Exponential backoff with equal jitter: half fixed, half random, so waits never collapse to zero. */
export function backoffDelay(
  retry: { minDelayMs: number; maxDelayMs: number },
  attempt: number,
  random: () => number,
): number {
  const ceiling = Math.min(retry.maxDelayMs, retry.minDelayMs * 2 ** (attempt - 1));
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}
