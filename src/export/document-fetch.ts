import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { Agent, interceptors, request, type Dispatcher } from 'undici';
import { BridgeError, describeError, isBridgeError } from '../errors.ts';
import { DEFAULT_ALLOWED_HOSTS, parseRetryAfter, trustedPayloadRoot } from '../rossum/index.ts';
import type { DocumentSettings } from '../mapping/index.ts';

/** The original document of one delivery, as far as the payload tells (plain data). */
export interface PreparedDocument {
  settings: DocumentSettings;
  /** Rossum's content URL: `document.content`, else `annotation.document` + `/content`; null when the payload names none. */
  url: string | null;
  /** `document 314621 (invoice.pdf)`, for messages. */
  label: string;
  originalFileName: string | null;
  /** The webhook's short-lived `rossum_authorization_token`, when the hook has a token owner. */
  webhookToken: string | null;
}

/** How the bridge may fetch documents when the webhook brings no token, and where tokens may go. */
export interface DocumentFetchSettings {
  /** Configured API root (`rossum.baseUrl`): documents are fetched from its origin only. */
  apiRoot?: string;
  /** Hosts a payload may name when no API root is configured (default: Rossum's cloud domains). */
  allowedHosts?: readonly string[];
  /** Configured long-lived token (`rossum.token`), used when the webhook carries none. */
  token?: string;
  authScheme?: 'Bearer' | 'Token';
  /** No answer, or no further bytes of the document, for this long fails the download (transient). */
  timeoutMs?: number;
}

/**
 * undici's `request` rather than `fetch`: a Node stream instead of WHATWG streams costs half the CPU
 * per document (measured: 1.3 against 2.5 ms for 300 kB on loopback). Redirects are followed as
 * fetch would; undici drops the Authorization header when one leaves the origin.
 */
const downloads: Dispatcher = new Agent().compose(interceptors.redirect({ maxRedirections: 3 }));

/** What the size and hash of a download came to, once its last byte was read. */
export interface DocumentDigest {
  sha256: string;
  bytes: number;
}

/**
 * A document that fit `document.buffer_bytes` is held whole (`whole`); a larger one is handed on as a
 * stream read once, while it is uploaded (`stream`): its size limit is enforced and its hash computed
 * as the bytes pass, and `digest()` answers once the stream has ended. `close()` gives the connection
 * back whether or not the stream was read (safe to call twice).
 */
export type FetchedDocument =
  | { kind: 'whole'; bytes: Buffer; sha256: string; close(): void }
  | { kind: 'stream'; stream: AsyncIterable<Buffer>; digest(): DocumentDigest; close(): void };

export function unavailable(
  document: PreparedDocument,
  reason: string,
  permanent: boolean,
  cause?: unknown,
): BridgeError {
  return new BridgeError('DOCUMENT_UNAVAILABLE', `The original ${document.label} could not be fetched: ${reason}`, {
    permanent,
    ...(cause === undefined ? {} : { cause }),
  });
}

/** Only the configured API's origin, or (without one) an allow-listed https host, ever gets a token. */
function trustedUrl(document: PreparedDocument, url: string, settings: DocumentFetchSettings): URL {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw unavailable(document, `the payload's document URL is not a URL: ${JSON.stringify(url.slice(0, 200))}`, true);
  }
  const refuse = (why: string): BridgeError =>
    new BridgeError(
      'DOCUMENT_NOT_TRUSTED',
      `Refusing to fetch the original ${document.label} from ${parsed.origin}: ${why}`,
      {
        permanent: true,
      },
    );
  if (settings.apiRoot) {
    if (parsed.origin !== new URL(settings.apiRoot).origin)
      throw refuse(`it is not rossum.baseUrl (${new URL(settings.apiRoot).origin})`);
    return parsed;
  }
  try {
    trustedPayloadRoot(parsed.origin, settings.allowedHosts ?? DEFAULT_ALLOWED_HOSTS);
  } catch (error) {
    throw refuse(`the host is not in rossum.allowedHosts, or not https (${describeError(error)})`);
  }
  return parsed;
}

/**
 * Fetches the document: up to `document.buffer_bytes` it is read whole; beyond, the bytes read so far
 * and the rest of the body become a stream (see FetchedDocument), so a 300 MB scan is never held.
 * The timeout is an idle one (the answer, then each next chunk): a large document arriving steadily
 * is not cut off, a stalled one is.
 */
export async function fetchDocument(
  document: PreparedDocument,
  settings: DocumentFetchSettings,
  signal?: AbortSignal,
): Promise<FetchedDocument> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fetchDocumentOnce(document, settings, signal);
    } catch (error) {
      if (!(error instanceof Throttled)) throw error;
      // Rossum throttles its API (10 requests a second): a short Retry-After is waited out within the deadline.
      if (attempt >= THROTTLED_TRIES || error.waitMs > THROTTLED_WAIT_LIMIT_MS) throw error.failure;
      try {
        await sleep(error.waitMs, undefined, signal ? { signal } : {});
      } catch {
        throw error.failure;
      }
    }
  }
}

/** A 429 waited out at most this many times per download, and only when its Retry-After is this short. */
const THROTTLED_TRIES = 4;
const THROTTLED_WAIT_LIMIT_MS = 5_000;

/** Rossum's 429: the failure to report if it is not waited out, and how long Rossum asked to wait. */
class Throttled extends Error {
  constructor(
    readonly waitMs: number,
    readonly failure: BridgeError,
  ) {
    super(failure.message);
  }
}

async function fetchDocumentOnce(
  document: PreparedDocument,
  settings: DocumentFetchSettings,
  signal?: AbortSignal,
): Promise<FetchedDocument> {
  if (!document.url) throw unavailable(document, 'the export payload names no document (annotation.document)', true);
  const url = trustedUrl(document, document.url, settings);
  const token = document.webhookToken ?? settings.token;
  if (!token)
    throw unavailable(
      document,
      'no token: the hook has no token_owner (no rossum_authorization_token in the call) and rossum.token is not set',
      true,
    );
  const timeoutMs = settings.timeoutMs ?? 30_000;
  const controller = new AbortController();
  let idleTimer: NodeJS.Timeout | undefined;
  let idle = false;
  const armIdleTimer = (): void => {
    clearTimeout(idleTimer);
    idleTimer = setTimeout(() => {
      idle = true;
      controller.abort(new Error(`no data within ${timeoutMs} ms`));
    }, timeoutMs);
  };
  let ended = false;
  // The caller's signal (the export's deadline) is forwarded into our own controller rather than combined
  // with AbortSignal.any, whose composite signal nothing here would keep referenced.
  const forwardAbort = (): void => controller.abort(signal?.reason);
  const close = (): void => {
    clearTimeout(idleTimer);
    signal?.removeEventListener('abort', forwardAbort);
    // Only a download still running is cut off: aborting a finished one would cost its kept-alive connection.
    if (!ended && !controller.signal.aborted) controller.abort(new Error('the download is no longer needed'));
  };
  if (signal?.aborted) forwardAbort();
  else signal?.addEventListener('abort', forwardAbort, { once: true });
  armIdleTimer();
  let response: Dispatcher.ResponseData;
  try {
    response = await request(url, {
      dispatcher: downloads,
      headers: { authorization: `${settings.authScheme ?? 'Bearer'} ${token}` },
      signal: controller.signal,
    });
    clearTimeout(idleTimer);
  } catch (error) {
    close();
    const reason = idle ? `no answer within ${timeoutMs} ms` : describeError(error);
    throw unavailable(document, reason, false, error);
  }
  const status = response.statusCode;
  if (status < 200 || status > 299) {
    close();
    await response.body.dump().catch(() => undefined);
    const failure = unavailable(document, describeStatus(status), isPermanentStatus(status));
    if (status === 429) {
      const retryAfter = response.headers['retry-after'];
      throw new Throttled(
        parseRetryAfter(typeof retryAfter === 'string' ? retryAfter : null, Date.now()) ?? 1_000,
        failure,
      );
    }
    throw failure;
  }
  const { maxBytes, bufferBytes } = document.settings;
  const tooLarge = (size: string): BridgeError =>
    new BridgeError(
      'DOCUMENT_TOO_LARGE',
      `The original ${document.label} is ${size}, more than the mapping's document.max_bytes (${maxBytes})`,
      { permanent: true },
    );
  const declared = Number(response.headers['content-length'] ?? Number.NaN);
  if (declared > maxBytes) {
    close();
    response.body.destroy();
    throw tooLarge(`${declared} bytes`);
  }

  const body = (response.body as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
  const hash = createHash('sha256');
  let total = 0;
  /** The next chunk, counted against max_bytes and hashed; null at the end of the body. */
  const nextChunk = async (): Promise<Buffer | null> => {
    let result: IteratorResult<Buffer>;
    // Only while waiting for Rossum: a wait for the SFTP side (a connection being set up) is not a stall.
    armIdleTimer();
    try {
      result = await body.next();
    } catch (error) {
      close();
      const why = idle
        ? `the download stalled after ${total} bytes (no data within ${timeoutMs} ms)`
        : `the download broke off after ${total} bytes (${describeError(error)})`;
      throw unavailable(document, why, false, error);
    }
    clearTimeout(idleTimer);
    if (result.done) {
      ended = true;
      return null;
    }
    const chunk = result.value;
    total += chunk.length;
    if (total > maxBytes) {
      close();
      throw tooLarge(`over ${maxBytes} bytes`);
    }
    hash.update(chunk);
    return chunk;
  };

  const head: Buffer[] = [];
  let headBytes = 0;
  try {
    while (headBytes <= bufferBytes) {
      const chunk = await nextChunk();
      if (!chunk) {
        const bytes = Buffer.concat(head, headBytes);
        return { kind: 'whole', bytes, sha256: hash.digest('hex'), close };
      }
      head.push(chunk);
      headBytes += chunk.length;
    }
  } catch (error) {
    close();
    if (isBridgeError(error)) throw error;
    throw unavailable(document, describeError(error), false, error);
  }

  async function* rest(): AsyncGenerator<Buffer> {
    try {
      // The head is given up chunk by chunk, so it is not held once written.
      for (let chunk = head.shift(); chunk; chunk = head.shift()) yield chunk;
      for (let chunk = await nextChunk(); chunk; chunk = await nextChunk()) yield chunk;
    } finally {
      if (!ended) close();
    }
  }
  let sha256: string | undefined;
  return {
    kind: 'stream',
    stream: rest(),
    digest() {
      if (!ended) throw new Error(`the download of ${document.label} has not ended`);
      sha256 ??= hash.digest('hex');
      return { sha256, bytes: total };
    },
    close,
  };
}

function isPermanentStatus(status: number): boolean {
  return status === 404 || status === 410 || (status >= 400 && status < 500 && ![401, 403, 408, 429].includes(status));
}

function describeStatus(status: number): string {
  if (status === 401 || status === 403)
    return `HTTP ${status} (the token was refused; Rossum's retry brings a fresh one)`;
  if (status === 404 || status === 410) return `HTTP ${status} (Rossum no longer has it)`;
  return `HTTP ${status}`;
}
