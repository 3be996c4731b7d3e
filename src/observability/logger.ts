import { pino } from 'pino';

export type Logger = pino.Logger;

/** Keys whose values are secrets wherever they appear in a log object (hook secret, SFTP password/key/passphrase, Rossum tokens, hook `secrets`). */
const SECRET_KEYS = [
  'secret',
  'password',
  'passphrase',
  'privateKey',
  'token',
  'authorization',
  'rossum_authorization_token',
  'secrets',
  'sessionSecret',
  'passwordHash',
  'x-rossum-signature-sha256',
  'x-elis-signature',
];

/**
 * Paths pino blanks out (the top level and one level down); `redactNested` blanks the same keys at every
 * depth, so a whole config object logged at once, or a bare headers object, leaks nothing either.
 */
export const REDACTED_PATHS = [
  ...SECRET_KEYS.filter((key) => !key.includes('-')).flatMap((key) => [key, `*.${key}`]),
  'req.headers.authorization',
  'req.headers["x-rossum-signature-sha256"]',
  'req.headers["x-elis-signature"]',
  // URLs stay readable; only a password inside them (postgres://user:PASSWORD@host) is blanked, by the censor below.
  'url',
  '*.url',
];

const CENSOR = '[redacted]';

function censor(value: unknown, path: string[]): unknown {
  if (path[path.length - 1] === 'url' && typeof value === 'string') return withoutUrlPassword(value);
  return CENSOR;
}

/** `scheme://user:secret@host/...` → `scheme://user:[redacted]@host/...`, wherever it starts in the string; other strings unchanged. */
export function withoutUrlPassword(url: string): string {
  return url.replace(/(:\/\/[^/?#@:]*):[^/?#]*@/g, `$1:${CENSOR}@`);
}

const SECRET_KEY_SET = new Set(SECRET_KEYS);

/**
 * The log object with every secret key blanked, however deep (plain objects and arrays; class instances such as
 * errors are left to their own serializers).
 * Returns the same object when there is nothing to blank, so ordinary log lines cost a walk, not a copy.
 * No depth limit (a limit would be a place for a secret to hide); a cycle is walked once.
 */
export function redactNested(value: Record<string, unknown>): Record<string, unknown> {
  // A node met again gets what it became the first time; one met inside itself (a cycle) is cut there,
  // since returning the original would carry its secrets past the copy.
  const done = new Map<object, unknown>();
  const inProgress = new Set<object>();
  const walk = (node: unknown): unknown => {
    if (node === null || typeof node !== 'object') return node;
    if (!Array.isArray(node) && Object.getPrototypeOf(node) !== Object.prototype) return node;
    if (done.has(node)) return done.get(node);
    if (inProgress.has(node)) return '[Circular]';
    inProgress.add(node);
    let copy: Record<string, unknown> | unknown[] | undefined;
    for (const [key, child] of Object.entries(node)) {
      const replaced = SECRET_KEY_SET.has(key) || key === 'url' ? censor(child, [key]) : walk(child);
      if (replaced !== child) {
        copy ??= Array.isArray(node) ? [...node] : { ...node };
        (copy as Record<string, unknown>)[key] = replaced;
      }
    }
    inProgress.delete(node);
    const result = copy ?? node;
    done.set(node, result);
    return result;
  };
  return walk(value) as Record<string, unknown>;
}

export interface LoggerOptions {
  level?: string;
  /** Write to this stream instead of stdout (tests capture everything the process wrote). */
  destination?: NodeJS.WritableStream;
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const level = options.level ?? process.env.LOG_LEVEL ?? 'info';
  const settings = {
    level,
    redact: { paths: REDACTED_PATHS, censor },
    formatters: { log: redactNested },
    base: { service: 'rossum-sftp-bridge' },
  };
  return options.destination ? pino(settings, options.destination) : pino(settings);
}

/** A logger that drops everything, for library callers and unit tests that do not care. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
