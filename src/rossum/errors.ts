import { BridgeError } from '../errors.ts';

export type RossumApiErrorCode =
  | 'ROSSUM_UNAUTHORIZED'
  | 'ROSSUM_LOGIN_FAILED'
  | 'ROSSUM_RATE_LIMITED'
  | 'ROSSUM_SERVER_ERROR'
  | 'ROSSUM_UNREACHABLE'
  | 'ROSSUM_TIMEOUT'
  | 'ROSSUM_REQUEST_REJECTED'
  | 'ROSSUM_BAD_RESPONSE'
  | 'ROSSUM_CONFIG_INVALID'
  | 'ROSSUM_HOST_NOT_ALLOWED';

/**
 * A failed Rossum API call. `transient` means a later try may succeed (the ack loop keeps the outcome
 * pending); permanent ones need a human. Messages never contain the token or the password.
 */
export class RossumApiError extends BridgeError {
  override readonly code: RossumApiErrorCode;
  readonly statusCode: number | null;
  readonly method: string;
  readonly path: string;

  constructor(
    code: RossumApiErrorCode,
    message: string,
    details: {
      statusCode: number | null;
      method: string;
      path: string;
      permanent: boolean;
      host?: string;
      cause?: unknown;
    },
  ) {
    super(code, message, {
      permanent: details.permanent,
      location: details.host === undefined ? {} : { host: details.host },
      cause: details.cause,
    });
    this.code = code;
    this.statusCode = details.statusCode;
    this.method = details.method;
    this.path = details.path;
  }

  get transient(): boolean {
    return !this.permanent;
  }
}
