import { pino } from 'pino';

export type Logger = pino.Logger;

/**
 * Paths pino blanks out wherever they appear in a log object: secrets must never reach logs
 * (hook secret, SFTP password/key/passphrase, Rossum tokens, hook `secrets`).
 */
export const REDACTED_PATHS = [
  'secret',
  'password',
  'passphrase',
  'privateKey',
  'token',
  'authorization',
  'rossum_authorization_token',
  'secrets',
  '*.secret',
  '*.password',
  '*.passphrase',
  '*.privateKey',
  '*.token',
  '*.authorization',
  '*.rossum_authorization_token',
  '*.secrets',
  'sessionSecret',
  '*.sessionSecret',
  'passwordHash',
  '*.passwordHash',
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
    base: { service: 'rossum-sftp-bridge' },
  };
  return options.destination ? pino(settings, options.destination) : pino(settings);
}

/** A logger that drops everything, for library callers and unit tests that do not care. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
