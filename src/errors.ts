/**
 * Errors are data: every failure the bridge reports carries a stable `code` callers branch on,
 * a message an operator understands, where it happened, and whether retrying can help.
 *
 * - permanent → Rossum gets `200` with an `error` message (annotation goes to `failed_export`, no retries)
 * - transient → Rossum gets `503` with an `error` message (Rossum retries; its last failure shows ours)
 */
import { ERROR_CATALOGUE } from './error-catalogue.ts';

export { ERROR_CATALOGUE, type CatalogueEntry, type Retry } from './error-catalogue.ts';

export type ErrorCode = keyof typeof ERROR_CATALOGUE;

export function isErrorCode(value: string): value is ErrorCode {
  return Object.hasOwn(ERROR_CATALOGUE, value);
}

export interface ErrorLocation {
  /** Rossum datapoint id the problem is about (the operator lands on that field). */
  datapointId?: number;
  /** `file:line:column` style location in a config or mapping file. */
  file?: string;
  line?: number;
  column?: number;
  /** Remote host (`host:port`) for transport problems. */
  host?: string;
}

export class BridgeError extends Error {
  readonly code: ErrorCode;
  readonly permanent: boolean;
  readonly location: ErrorLocation;

  constructor(
    code: ErrorCode,
    message: string,
    options: { permanent: boolean; location?: ErrorLocation; cause?: unknown },
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.permanent = options.permanent;
    this.location = options.location ?? {};
  }

  /** `file:line:column` prefix when known, for CLI output. */
  where(): string {
    const { file, line, column } = this.location;
    if (!file) return '';
    return line === undefined ? file : `${file}:${line}:${column ?? 1}`;
  }
}

export function isBridgeError(value: unknown): value is BridgeError {
  return value instanceof BridgeError;
}

/** The message of anything thrown, without stack traces. */
export function describeError(value: unknown): string {
  if (value instanceof Error) return value.message;
  return String(value);
}
