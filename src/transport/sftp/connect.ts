import { createConnection } from 'node:net';
import type { Algorithms, ConnectConfig, SFTPWrapper } from 'ssh2';
import SftpClient from 'ssh2-sftp-client';
import type { TargetConfig } from '../config.ts';
import { classifyError, TransportError } from '../errors.ts';
import { knownKeyTypes, verifyHostKey, type HostKeyPolicy, type HostKeyVerdict } from '../hostkey.ts';
import type { Connection, Credentials, TargetContext } from './context.ts';
import { delay, withTimeout } from './operations.ts';
import { isOpenSshServer, offersExtension, rawClient, socketBatcher } from './ssh2-internals.ts';

/** Connects with backoff; host-key, credential and abort failures are not retried. */
export async function connectWithRetry(
  context: TargetContext,
  credentials: Credentials,
  operation: string,
  signal: AbortSignal | undefined,
): Promise<Connection> {
  const { retry } = context.config;
  let lastError: TransportError | undefined;
  for (let attempt = 1; attempt <= retry.attempts; attempt++) {
    if (signal?.aborted) break;
    try {
      return await context.handshakes.add(() => connectOnce(context, credentials), signal ? { signal } : {});
    } catch (error) {
      lastError =
        error instanceof TransportError
          ? error
          : classifyError(error, { host: context.hostLabel, operation: 'connect' });
      if (NOT_RETRIED.has(lastError.code) || attempt === retry.attempts) break;
      const backoff = Math.min(retry.maxDelayMs, retry.minDelayMs * 2 ** (attempt - 1));
      await delay(backoff / 2 + Math.random() * (backoff / 2), signal);
    }
  }
  if (lastError) throw lastError;
  throw new TransportError('ABORTED', `${operation} on ${context.hostLabel} was cancelled while connecting`, {
    permanent: false,
    host: context.hostLabel,
  });
}

async function connectOnce(context: TargetContext, credentials: Credentials): Promise<Connection> {
  const { config, policy, host, port, hostLabel, counters, logger, hooks, name } = context;
  const id = counters.nextId++;
  let verdict: HostKeyVerdict | undefined;
  let rawError: (Error & { level?: string }) | undefined;
  let alive = true;
  const client = new SftpClient(`${name}#${id}`, {
    // The library's defaults print to the console; we track state ourselves instead.
    error: () => undefined,
    end: () => undefined,
    close: () => undefined,
  });
  const ssh = rawClient(client);
  const markDead = (): void => {
    alive = false;
    if (conn) conn.alive = false;
  };
  let conn: Connection | undefined;
  ssh.on('error', (error: Error & { level?: string }) => {
    rawError ??= error;
  });
  ssh.on('close', markDead);
  ssh.on('end', markDead);

  const connectConfig: ConnectConfig = {
    host,
    port,
    // SFTP requests are small and often sent back to back: Nagle would hold each behind the previous answer's ACK.
    sock: createConnection({ host, port, noDelay: true }),
    username: credentials.username,
    readyTimeout: config.pool.connectTimeoutMs,
    keepaliveInterval: config.pool.keepaliveMs,
    keepaliveCountMax: 3,
    hostVerifier: (key: Buffer) => {
      verdict = verifyHostKey(policy, host, port, key);
      return verdict.ok;
    },
    ...(credentials.password !== undefined ? { password: credentials.password } : {}),
    ...(credentials.privateKey !== undefined ? { privateKey: credentials.privateKey } : {}),
    ...(credentials.passphrase !== undefined ? { passphrase: credentials.passphrase } : {}),
  };
  const algorithms = algorithmsFor(config, policy, host, port);
  if (algorithms) connectConfig.algorithms = algorithms;

  const started = Date.now();
  counters.handshakesInFlight++;
  context.changed();
  try {
    const sftp = await withTimeout(client.connect(connectConfig), config.pool.connectTimeoutMs + 1_000, () => client, {
      host: hostLabel,
      what: 'connect',
    });
    if (!alive)
      throw new TransportError('CONNECTION_LOST', `${hostLabel} closed the connection right after login`, {
        permanent: false,
        host: hostLabel,
      });
    sftp.on('close', markDead);
    conn = {
      id,
      client,
      sftp,
      alive: true,
      lastUsedAt: Date.now(),
      posixRename: offersExtension(sftp, 'posix-rename@openssh.com'),
      writesInFlight: writesInFlightFor(config.upload.writesInFlight, sftp),
      batch: socketBatcher(ssh),
    };
    counters.connects++;
    hooks.onConnect?.({ target: name, ok: true, durationMs: Date.now() - started });
    logger.debug({ connection: id, ms: Date.now() - started }, 'sftp connected');
    return conn;
  } catch (error) {
    ssh.destroy();
    counters.connectFailures++;
    const failure = describeConnectFailure(context, credentials, error, verdict, rawError);
    hooks.onConnect?.({ target: name, ok: false, durationMs: Date.now() - started, code: failure.code });
    logger.warn({ code: failure.code, err: failure.message }, 'sftp connect failed');
    throw failure;
  } finally {
    counters.handshakesInFlight--;
    context.changed();
  }
}

/** An operator-readable reason: host key, credentials, timeout, or what the socket said. */
function describeConnectFailure(
  context: TargetContext,
  credentials: Credentials,
  error: unknown,
  verdict: HostKeyVerdict | undefined,
  rawError: (Error & { level?: string }) | undefined,
): TransportError {
  const { hostLabel, name, policy } = context;
  const base = { permanent: false, host: hostLabel, cause: error };
  if (verdict && !verdict.ok) {
    if (verdict.reason === 'unknown') {
      const source = policy.knownHosts
        ? `no entry for ${hostLabel} in ${policy.knownHosts.source}`
        : 'no hostKey configured';
      return new TransportError(
        'HOST_KEY_UNKNOWN',
        `host key of ${hostLabel} is not known (${source}); it presented ${verdict.presented} (${verdict.keyType}). Verify it with the server's administrator, then add it to target "${name}" (hostKey or knownHosts).`,
        base,
      );
    }
    const expected =
      verdict.reason === 'revoked' ? 'it is marked @revoked' : `expected ${verdict.expected.join(' or ')}`;
    return new TransportError(
      'HOST_KEY_MISMATCH',
      `host key mismatch for ${hostLabel}: server presented ${verdict.presented} (${verdict.keyType}), ${expected}. Connection refused. If the server's key changed on purpose, confirm the new fingerprint with its administrator and update hostKey/knownHosts of target "${name}"; otherwise someone may be intercepting the connection.`,
      base,
    );
  }
  const message = rawError?.message ?? (error instanceof Error ? error.message : String(error));
  if (rawError?.level === 'client-authentication' || /authentication methods failed/i.test(message)) {
    return new TransportError(
      'AUTH_REJECTED',
      `${hostLabel} rejected the credentials of user "${credentials.username}" for target "${name}" — check the password or key configured for it`,
      base,
    );
  }
  if (/privateKey|private key|passphrase/i.test(message) && !(error instanceof TransportError)) {
    return new TransportError(
      'CREDENTIALS_INVALID',
      `target "${name}": the private key cannot be used (${message.replace(/^[a-zA-Z]+: /, '')}) — check privateKey and passphrase`,
      {
        ...base,
        permanent: true,
      },
    );
  }
  if (error instanceof TransportError) return error;
  if (rawError?.level === 'client-timeout' || /timed out/i.test(message)) {
    return new TransportError(
      'CONNECT_TIMEOUT',
      `connecting to ${hostLabel} timed out (SSH handshake not finished in ${context.config.pool.connectTimeoutMs} ms)`,
      base,
    );
  }
  return classifyError(rawError ?? error, { host: hostLabel, operation: 'connect' });
}

const NOT_RETRIED = new Set([
  'HOST_KEY_MISMATCH',
  'HOST_KEY_UNKNOWN',
  'AUTH_REJECTED',
  'CREDENTIALS_INVALID',
  'CREDENTIALS_MISSING',
  'ABORTED',
]);

/** The algorithms to offer: the configured ones, asking first for the host key types known_hosts can verify. */
export function algorithmsFor(
  config: TargetConfig,
  policy: HostKeyPolicy,
  host: string,
  port: number,
): Algorithms | undefined {
  // zod's shape matches ssh2's; its typings demand all of append/prepend/remove at once.
  const algorithms = config.algorithms ? ({ ...config.algorithms } as Algorithms) : undefined;
  if (algorithms?.serverHostKey) return algorithms;
  // Like OpenSSH: ask for the key type known_hosts can verify, not whatever the server prefers.
  const types = knownKeyTypes(policy, host, port).flatMap((type) =>
    type === 'ssh-rsa' ? ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'] : [type],
  );
  if (types.length === 0) return algorithms;
  return { ...(algorithms ?? {}), serverHostKey: { prepend: types, append: [], remove: [] } } as Algorithms;
}

/** OpenSSH's sftp-server works through a handle's requests one by one, in order; others may not. */
const OPENSSH_WRITES_IN_FLIGHT = 16;

function writesInFlightFor(setting: number | 'auto', sftp: SFTPWrapper): number {
  if (setting !== 'auto') return setting;
  return isOpenSshServer(sftp) ? OPENSSH_WRITES_IN_FLIGHT : 1;
}
