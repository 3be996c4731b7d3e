import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Logger } from '../../observability/index.ts';
import type { TargetConfig } from '../config.ts';
import type { HookCredentials } from '../contract.ts';
import { TransportError } from '../errors.ts';
import { parseKnownHosts, type HostKeyPolicy } from '../hostkey.ts';
import type { Credentials } from './context.ts';

/** Which host keys target `name` accepts: pinned fingerprints, a known_hosts file, or (tests only) any. */
export function hostKeyPolicyFor(name: string, config: TargetConfig, hostLabel: string, logger: Logger): HostKeyPolicy {
  const policy: HostKeyPolicy = {
    fingerprints: config.hostKey === undefined ? [] : Array.isArray(config.hostKey) ? config.hostKey : [config.hostKey],
    insecureAcceptAny: config.insecureAcceptAnyHostKey,
  };
  if (config.knownHosts) {
    let text: string;
    try {
      text = readFileSync(config.knownHosts, 'utf8');
    } catch (error) {
      throw new TransportError(
        'HOST_KEY_UNKNOWN',
        `target "${name}": cannot read knownHosts file ${config.knownHosts}: ${(error as Error).message}`,
        {
          permanent: true,
          host: hostLabel,
          cause: error,
        },
      );
    }
    policy.knownHosts = { entries: parseKnownHosts(text), source: config.knownHosts };
  }
  if (config.insecureAcceptAnyHostKey) {
    logger.warn(
      { insecureAcceptAnyHostKey: true },
      `INSECURE: target "${name}" accepts ANY host key from ${hostLabel}; anyone able to intercept the connection receives the exported files. Pin hostKey or knownHosts outside of tests.`,
    );
  }
  return policy;
}

/** The credentials of `credentials: config` (undefined when they come from the hook's secrets instead). */
export function configuredCredentials(
  name: string,
  config: TargetConfig,
  hostLabel: string,
  urlUsername: string | undefined,
): Credentials | undefined {
  if (config.credentials !== 'config') return undefined;
  let privateKey = config.privateKey;
  if (config.privateKeyPath) {
    try {
      privateKey = readFileSync(config.privateKeyPath, 'utf8');
    } catch (error) {
      throw new TransportError(
        'CREDENTIALS_INVALID',
        `target "${name}": cannot read privateKeyPath ${config.privateKeyPath}: ${(error as Error).message}`,
        {
          permanent: true,
          host: hostLabel,
          cause: error,
        },
      );
    }
  }
  return {
    username: urlUsername ?? '',
    ...(config.password !== undefined ? { password: config.password } : {}),
    ...(privateKey !== undefined ? { privateKey } : {}),
    ...(config.passphrase !== undefined ? { passphrase: config.passphrase } : {}),
  };
}

/** The credentials a hook call carried (`credentials: hookSecrets`), or a permanent error saying what is missing. */
export function hookCredentials(
  name: string,
  hostLabel: string,
  hook: HookCredentials | undefined,
  urlUsername: string | undefined,
): Credentials {
  if (!hook || (!hook.password && !hook.privateKey)) {
    throw new TransportError(
      'CREDENTIALS_MISSING',
      `target "${name}" (${hostLabel}) takes credentials from the hook's secrets, but the hook call carried no password or privateKey — set them in the Rossum hook's secrets`,
      { permanent: true, host: hostLabel },
    );
  }
  const username = hook.username ?? urlUsername;
  if (!username) {
    throw new TransportError(
      'CREDENTIALS_MISSING',
      `target "${name}" (${hostLabel}) has no username: put it in the URL or the hook's secrets`,
      {
        permanent: true,
        host: hostLabel,
      },
    );
  }
  return {
    username,
    ...(hook.password ? { password: hook.password } : {}),
    ...(hook.privateKey ? { privateKey: hook.privateKey } : {}),
    ...(hook.passphrase ? { passphrase: hook.passphrase } : {}),
  };
}

/** Pools are per credential set; the key is a digest, so no secret is kept as a map key. */
export function poolKey(credentials: Credentials): string {
  return createHash('sha256')
    .update(
      JSON.stringify([
        credentials.username,
        credentials.password ?? null,
        credentials.privateKey ?? null,
        credentials.passphrase ?? null,
      ]),
    )
    .digest('hex')
    .slice(0, 16);
}
