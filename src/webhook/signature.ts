import { createHmac, timingSafeEqual, type Hmac } from 'node:crypto';

export interface SignatureSettings {
  /** Shared secret from the Rossum hook's `config.secret`; null only in explicit insecure mode. */
  secret: string | null;
  /** Accept the legacy `X-Elis-Signature: sha1=...` header as well. */
  allowLegacySha1: boolean;
}

export type SignatureCheck = { ok: true; scheme: 'sha256' | 'sha1' | 'none' } | { ok: false; reason: string };

type HeaderValue = string | string[] | undefined;

/** Compares the presented digest with the expected one (both the same length). */
export type DigestCompare = (presented: Buffer, expected: Buffer) => boolean;

/** Constant-time by construction: crypto's compare, exported so a test pins it (and may observe it via the parameters below). */
export const compareDigests: DigestCompare = timingSafeEqual;

/** What the headers promise, checked before any body byte is read: a call without a usable header is refused at once. */
export type SignatureHeader =
  | { ok: true; scheme: 'none' }
  | { ok: true; scheme: 'sha256' | 'sha1'; headerName: string; presented: Buffer }
  | { ok: false; reason: string };

export function readSignatureHeader(
  headers: Record<string, HeaderValue>,
  settings: SignatureSettings,
): SignatureHeader {
  if (settings.secret === null) return { ok: true, scheme: 'none' };
  const sha256Header = single(headers['x-rossum-signature-sha256']);
  if (sha256Header !== undefined) return parseHeader(sha256Header, 'sha256');
  const sha1Header = single(headers['x-elis-signature']);
  if (sha1Header !== undefined) {
    if (!settings.allowLegacySha1) {
      return {
        ok: false,
        reason:
          'Only the legacy X-Elis-Signature (sha1) header was sent and sha1 signatures are disabled; send X-Rossum-Signature-SHA256',
      };
    }
    return parseHeader(sha1Header, 'sha1');
  }
  return {
    ok: false,
    reason: 'Missing X-Rossum-Signature-SHA256 header: set hook.config.secret in Rossum to the bridge secret',
  };
}

/** HMAC of the body fed chunk by chunk as it arrives, so nothing is buffered twice. */
export class BodySignatureCheck {
  private readonly hmac: Hmac | null;

  constructor(
    private readonly header: Extract<SignatureHeader, { ok: true }>,
    secret: string | null,
    private readonly compare: DigestCompare = compareDigests,
  ) {
    this.hmac = header.scheme === 'none' || secret === null ? null : createHmac(header.scheme, secret);
  }

  update(chunk: Buffer): void {
    this.hmac?.update(chunk);
  }

  verdict(): SignatureCheck {
    const { header } = this;
    if (header.scheme === 'none' || this.hmac === null) return { ok: true, scheme: 'none' };
    const expected = this.hmac.digest();
    // Length is not secret (it is fixed per algorithm); compare only equal-length buffers.
    if (header.presented.length !== expected.length)
      return { ok: false, reason: `${header.headerName} has the wrong length for ${header.scheme}` };
    if (!this.compare(header.presented, expected))
      return {
        ok: false,
        reason: `${header.headerName} does not match the body: wrong secret, or the body was changed in transit`,
      };
    return { ok: true, scheme: header.scheme };
  }
}

/** Verifies Rossum's HMAC of a whole raw body with a timing-safe compare. */
export function verifySignature(
  rawBody: Buffer,
  headers: Record<string, HeaderValue>,
  settings: SignatureSettings,
  compare: DigestCompare = compareDigests,
): SignatureCheck {
  const header = readSignatureHeader(headers, settings);
  if (!header.ok) return header;
  const check = new BodySignatureCheck(header, settings.secret, compare);
  check.update(rawBody);
  return check.verdict();
}

function parseHeader(header: string, algorithm: 'sha256' | 'sha1'): SignatureHeader {
  const headerName = algorithm === 'sha256' ? 'X-Rossum-Signature-SHA256' : 'X-Elis-Signature';
  const separator = header.indexOf('=');
  const prefix = separator === -1 ? '' : header.slice(0, separator);
  const hex = separator === -1 ? header : header.slice(separator + 1);
  if (prefix !== algorithm) return { ok: false, reason: `${headerName} must look like ${algorithm}=<hex digest>` };
  // Buffer.from(hex) silently drops a trailing odd digit and stops at the first non-hex one: accept only exact digests.
  const presented = /^(?:[0-9a-fA-F]{2})+$/.test(hex) ? Buffer.from(hex, 'hex') : Buffer.alloc(0);
  const expectedLength = algorithm === 'sha256' ? 32 : 20;
  if (presented.length !== expectedLength)
    return { ok: false, reason: `${headerName} has the wrong length for ${algorithm}` };
  return { ok: true, scheme: algorithm, headerName, presented };
}

function single(value: HeaderValue): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}
