import { RossumApiError } from './errors.ts';

/**
 * Where a payload's `base_url` may point when no `rossum.baseUrl` is configured: Rossum's own cloud
 * domains. Our credentials (token, username/password) go nowhere else: a payload is data anyone who
 * can reach the webhook (or edit a hook) controls, and its URL must not decide where secrets go.
 */
export const DEFAULT_ALLOWED_HOSTS: readonly string[] = ['*.rossum.app', '*.rossum.ai'];

const LOOPBACK: ReadonlySet<string> = new Set(['127.0.0.1', 'localhost', '[::1]', '::1']);

/** `*.rossum.app` matches `acme.rossum.app` and `a.b.rossum.app`, not `rossum.app` nor `evilrossum.app`; other entries match exactly. */
export function hostAllowed(hostname: string, patterns: readonly string[]): boolean {
  const host = hostname.toLowerCase().replace(/\.$/, '');
  return patterns.some((raw) => {
    const pattern = raw.toLowerCase().trim();
    if (pattern.startsWith('*.')) return host.endsWith(pattern.slice(1)) && host.length > pattern.length - 1;
    return host === pattern;
  });
}

/**
 * The API root for a payload's `base_url`, or a permanent `ROSSUM_HOST_NOT_ALLOWED` error when the
 * host is not allow-listed (or the scheme is not https; plain http only to an allow-listed loopback host).
 */
export function trustedPayloadRoot(baseUrl: string, allowedHosts: readonly string[]): string {
  let url: URL;
  try {
    url = new URL(baseUrl);
  } catch {
    throw refusal(
      'ROSSUM_CONFIG_INVALID',
      `The payload's base_url is not a URL: ${JSON.stringify(baseUrl.slice(0, 200))}`,
    );
  }
  if (!hostAllowed(url.hostname, allowedHosts)) {
    throw refusal(
      'ROSSUM_HOST_NOT_ALLOWED',
      `Refusing to send Rossum credentials to ${url.origin} (named by the export payload's base_url): the host is not in rossum.allowedHosts (${allowedHosts.join(', ') || 'empty'}); set rossum.baseUrl or add the host`,
    );
  }
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && LOOPBACK.has(url.hostname))) {
    throw refusal(
      'ROSSUM_HOST_NOT_ALLOWED',
      `Refusing to send Rossum credentials to ${url.origin}: the payload's base_url must be https`,
    );
  }
  const trimmed = `${url.origin}${url.pathname}`.replace(/\/+$/, '');
  return trimmed.endsWith('/api') ? trimmed : `${trimmed}/api`;
}

function refusal(code: 'ROSSUM_CONFIG_INVALID' | 'ROSSUM_HOST_NOT_ALLOWED', message: string): RossumApiError {
  return new RossumApiError(code, message, { statusCode: null, method: '', path: '', permanent: true });
}
