import { BridgeError } from '../errors.ts';

export type TransportErrorCode =
  | 'CONNECT_FAILED'
  | 'CONNECT_TIMEOUT'
  | 'CONNECTION_LOST'
  | 'HOST_KEY_MISMATCH'
  | 'HOST_KEY_UNKNOWN'
  | 'AUTH_REJECTED'
  | 'CREDENTIALS_MISSING'
  | 'CREDENTIALS_INVALID'
  | 'PERMISSION_DENIED'
  | 'NOT_FOUND'
  | 'TARGET_EXISTS'
  | 'PATH_ESCAPE'
  | 'SIZE_MISMATCH'
  | 'OPERATION_TIMEOUT'
  | 'ABORTED'
  | 'TARGET_CLOSED'
  | 'UNSUPPORTED'
  | 'IO_FAILED'
  /** A read found a symlink, folder, device or a different file than the one listed: never followed. */
  | 'ACK_FILE_NOT_REGULAR'
  /** A read was asked for at most `maxBytes` and the file is longer. */
  | 'ACK_FILE_TOO_LARGE';

export interface TransportErrorOptions {
  permanent: boolean;
  /** `host:port` for sftp, `localhost` for file targets. */
  host: string;
  /** Remote path the operation was about, relative to the target folder when known. */
  path?: string;
  cause?: unknown;
}

/** A transport failure: `location.host` says where, `permanent` says whether Rossum should retry. */
export class TransportError extends BridgeError {
  declare readonly code: TransportErrorCode;
  readonly path: string | undefined;

  constructor(code: TransportErrorCode, message: string, options: TransportErrorOptions) {
    super(code, message, { permanent: options.permanent, location: { host: options.host }, cause: options.cause });
    this.path = options.path;
  }
}

export function isTransportError(value: unknown): value is TransportError {
  return value instanceof TransportError;
}

/** SFTP status codes (draft-ietf-secsh-filexfer-02) as ssh2 reports them in `error.code`. */
export const SFTP_STATUS = {
  EOF: 1,
  NO_SUCH_FILE: 2,
  PERMISSION_DENIED: 3,
  FAILURE: 4,
  BAD_MESSAGE: 5,
  NO_CONNECTION: 6,
  CONNECTION_LOST: 7,
  OP_UNSUPPORTED: 8,
} as const;

const CONNECTION_CODES = new Set<string | number>([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ERR_NOT_CONNECTED',
  'ERR_GENERIC_CLIENT',
  SFTP_STATUS.NO_CONNECTION,
  SFTP_STATUS.CONNECTION_LOST,
]);

const CONNECTION_MESSAGES =
  /no sftp connection|unexpected (end|close)|no response from server|not connected|channel (open|closed)|connection (lost|reset|closed)|socket (hang up|closed)|write after end|this socket has been ended/i;

export function errorCodeOf(error: unknown): string | number | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' || typeof code === 'number' ? code : undefined;
}

/** True when the connection itself is gone (so the pooled connection must be discarded). */
export function isConnectionLevel(error: unknown): boolean {
  if (error instanceof TransportError)
    return error.code === 'CONNECTION_LOST' || error.code === 'OPERATION_TIMEOUT' || error.code === 'CONNECT_FAILED';
  const code = errorCodeOf(error);
  if (code !== undefined && CONNECTION_CODES.has(code)) return true;
  return error instanceof Error && CONNECTION_MESSAGES.test(error.message);
}

/** Strips library prefixes like `_put: Write stream error:` that mean nothing to an operator. */
export function rawMessage(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.replace(/^(?:[_a-zA-Z]+(?:->|: ))+/, '').replace(/^(Write|Read) stream error: /, '');
}

export interface ClassifyContext {
  host: string;
  /** What we were doing, e.g. `upload`, `rename`, `list`. */
  operation: string;
  path?: string;
}

/** Turns anything an SFTP or fs call threw into a TransportError with the right code and permanence. */
export function classifyError(error: unknown, context: ClassifyContext): TransportError {
  if (error instanceof TransportError) return error;
  const { host, operation, path } = context;
  const where = path === undefined ? host : `${host} (${path})`;
  const code = errorCodeOf(error);
  const detail = rawMessage(error);
  const base = { host, path, cause: error };
  if (code === SFTP_STATUS.NO_SUCH_FILE || code === 'ENOENT') {
    return new TransportError('NOT_FOUND', `${operation} failed on ${where}: no such file or folder`, {
      ...base,
      permanent: true,
    });
  }
  if (code === SFTP_STATUS.PERMISSION_DENIED || code === 'EACCES' || code === 'EPERM') {
    return new TransportError(
      'PERMISSION_DENIED',
      `${operation} failed on ${where}: permission denied — check that the target user may write to this folder`,
      {
        ...base,
        // A folder can become writable again once someone fixes it: let Rossum retry.
        permanent: false,
      },
    );
  }
  if (code === SFTP_STATUS.OP_UNSUPPORTED) {
    return new TransportError(
      'UNSUPPORTED',
      `${operation} failed on ${where}: the server does not support this operation (${detail})`,
      { ...base, permanent: false },
    );
  }
  if (code === 'ETIMEDOUT' || /timed out/i.test(detail)) {
    return new TransportError('CONNECT_TIMEOUT', `${operation} failed on ${where}: timed out (${detail})`, {
      ...base,
      permanent: false,
    });
  }
  if (code === 'ECONNREFUSED') {
    return new TransportError(
      'CONNECT_FAILED',
      `${operation} failed: ${host} refused the connection — is the SFTP server running?`,
      { ...base, permanent: false },
    );
  }
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') {
    return new TransportError('CONNECT_FAILED', `${operation} failed: cannot resolve the host of ${host}`, {
      ...base,
      permanent: false,
    });
  }
  if (isConnectionLevel(error)) {
    return new TransportError('CONNECTION_LOST', `${operation} failed on ${where}: connection lost (${detail})`, {
      ...base,
      permanent: false,
    });
  }
  return new TransportError('IO_FAILED', `${operation} failed on ${where}: ${detail}`, { ...base, permanent: false });
}
