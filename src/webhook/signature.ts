import { createHmac, timingSafeEqual } from 'node:crypto';

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

/** Constant-time by construction: crypto's compare, exported so a test pins it (and may observe it via the parameter below). */
export const compareDigests: DigestCompare = timingSafeEqual;

/** Verifies Rossum's HMAC of the raw body with a timing-safe compare. */
export function verifySignature(rawBody: Buffer, headers: Record<string, HeaderValue>, settings: SignatureSettings, compare: DigestCompare = compareDigests): SignatureCheck {
  if (settings.secret === null) return { ok: true, scheme: 'none' };
  const sha256Header = single(headers['x-rossum-signature-sha256']);
  if (sha256Header !== undefined) return check(rawBody, sha256Header, 'sha256', settings.secret, compare);
  const sha1Header = single(headers['x-elis-signature']);
  if (sha1Header !== undefined) {
    if (!settings.allowLegacySha1) {
      return { ok: false, reason: 'Only the legacy X-Elis-Signature (sha1) header was sent and sha1 signatures are disabled; send X-Rossum-Signature-SHA256' };
    }
    return check(rawBody, sha1Header, 'sha1', settings.secret, compare);
  }
  return { ok: false, reason: 'Missing X-Rossum-Signature-SHA256 header: set hook.config.secret in Rossum to the bridge secret' };
}

function check(rawBody: Buffer, header: string, algorithm: 'sha256' | 'sha1', secret: string, compare: DigestCompare): SignatureCheck {
  const headerName = algorithm === 'sha256' ? 'X-Rossum-Signature-SHA256' : 'X-Elis-Signature';
  const separator = header.indexOf('=');
  const prefix = separator === -1 ? '' : header.slice(0, separator);
  const hex = separator === -1 ? header : header.slice(separator + 1);
  if (prefix !== algorithm) return { ok: false, reason: `${headerName} must look like ${algorithm}=<hex digest>` };
  const expected = createHmac(algorithm, secret).update(rawBody).digest();
  // Buffer.from(hex) silently drops a trailing odd digit and stops at the first non-hex one: accept only exact digests.
  const presented = /^(?:[0-9a-fA-F]{2})+$/.test(hex) ? Buffer.from(hex, 'hex') : Buffer.alloc(0);
  // Length is not secret (it is fixed per algorithm); compare only equal-length buffers.
  if (presented.length !== expected.length) return { ok: false, reason: `${headerName} has the wrong length for ${algorithm}` };
  if (!compare(presented, expected)) return { ok: false, reason: `${headerName} does not match the body: wrong secret, or the body was changed in transit` };
  return { ok: true, scheme: algorithm };
}

function single(value: HeaderValue): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}
