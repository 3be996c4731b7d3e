import type { Readable } from 'node:stream';
import { BodySignatureCheck, type SignatureHeader } from './signature.ts';

/** How a webhook body may arrive before its signature is known. */
export interface BodyGuardSettings {
  /** Largest body accepted (413 above it). */
  limitBytes: number;
  /** Longest pause between two chunks of a body before the call is dropped (408). */
  idleMs: number;
  /** Seconds a caller refused for lack of room is told to wait (Retry-After of the 503). */
  retryAfterS: number;
}

/** A call refused while its body was arriving: answered, then its connection is closed. */
export class BodyRefusal extends Error {
  constructor(
    readonly statusCode: 401 | 408 | 413 | 503,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = 'BodyRefusal';
  }
}

/**
 * Bytes held for bodies whose signature is not verified yet, across all connections. Anyone can send
 * such bytes, so their sum is bounded; a body counts until its HMAC checks out or it is dropped.
 */
export class UnverifiedBytes {
  private held = 0;

  constructor(readonly budgetBytes: number) {}

  get inFlight(): number {
    return this.held;
  }

  tryHold(bytes: number): boolean {
    if (this.held + bytes > this.budgetBytes) return false;
    this.held += bytes;
    return true;
  }

  release(bytes: number): void {
    this.held = Math.max(0, this.held - bytes);
  }
}

/**
 * Reads a body while hashing it, within the byte budget, the size limit and the idle timeout. Resolves
 * with the raw bytes only when the signature matches; every other end is a BodyRefusal.
 */
export function readSignedBody(
  stream: Readable,
  header: Extract<SignatureHeader, { ok: true }>,
  secret: string | null,
  settings: BodyGuardSettings,
  unverified: UnverifiedBytes,
): Promise<Buffer> {
  return new Promise<Buffer>((resolve, reject) => {
    const check = new BodySignatureCheck(header, secret);
    const chunks: Buffer[] = [];
    let held = 0;
    let settled = false;
    let idleTimer: NodeJS.Timeout | undefined;

    const finish = (outcome: { body: Buffer } | { refusal: Error }): void => {
      if (settled) return;
      settled = true;
      clearTimeout(idleTimer);
      unverified.release(held);
      held = 0;
      stream.off('data', onData);
      stream.off('end', onEnd);
      stream.off('error', onError);
      stream.off('close', onClose);
      if ('body' in outcome) return resolve(outcome.body);
      // Stop reading: the refusal closes the connection, whatever the caller still sends.
      stream.pause();
      chunks.length = 0;
      reject(outcome.refusal);
    };
    const armIdle = (): void => {
      clearTimeout(idleTimer);
      idleTimer = setTimeout(
        () => finish({ refusal: new BodyRefusal(408, `Body stalled: no data for ${settings.idleMs} ms`) }),
        settings.idleMs,
      );
    };
    const onData = (chunk: Buffer): void => {
      if (held + chunk.length > settings.limitBytes) {
        return finish({
          refusal: new BodyRefusal(413, `Body larger than the configured limit of ${settings.limitBytes} bytes`),
        });
      }
      if (!unverified.tryHold(chunk.length)) {
        return finish({
          refusal: new BodyRefusal(
            503,
            `Too many unverified request bytes in flight (${unverified.budgetBytes} bytes across all connections); retry in ${settings.retryAfterS} s`,
            { 'retry-after': String(settings.retryAfterS) },
          ),
        });
      }
      held += chunk.length;
      check.update(chunk);
      chunks.push(chunk);
      armIdle();
    };
    const onEnd = (): void => {
      const verdict = check.verdict();
      if (!verdict.ok) return finish({ refusal: new BodyRefusal(401, verdict.reason) });
      finish({ body: chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, held) });
    };
    const onError = (error: Error): void => finish({ refusal: error });
    const onClose = (): void =>
      finish({ refusal: new Error('the caller closed the connection before the body was complete') });

    stream.on('data', onData);
    stream.on('end', onEnd);
    stream.on('error', onError);
    stream.on('close', onClose);
    armIdle();
  });
}
