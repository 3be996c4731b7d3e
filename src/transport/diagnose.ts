import { connect as tcpConnect } from 'node:net';
import { Client, type Algorithms, type ConnectConfig, type SFTPWrapper } from 'ssh2';
import { silentLogger } from '../observability/index.ts';
import { parseTargetUrl, type TargetConfig } from './config.ts';
import { rawMessage } from './errors.ts';
import { verifyHostKey, type HostKeyPolicy, type HostKeyVerdict } from './hostkey.ts';
import { algorithmsFor } from './sftp/connect.ts';
import { configuredCredentials, hostKeyPolicyFor } from './sftp/credentials.ts';

/** One step of reaching an SFTP server, as `doctor` reports it. */
export interface ConnectionStep {
  step: 'tcp' | 'host key' | 'login' | 'free space';
  status: 'ok' | 'fail' | 'skip';
  detail: string;
  /** What to do about a failure (or a skip that hides something). */
  fix?: string;
  /** Free bytes the server reported (`free space` step only). */
  freeBytes?: number;
}

/**
 * A full disk lets the SFTP server accept the open and fail the writes halfway; below this the
 * step fails so the operator hears it before the ERP's folder does.
 */
export const MIN_FREE_BYTES = 64 * 1024 * 1024;

/**
 * Walks the way an upload reaches an SFTP server one step at a time — TCP, the host key against the
 * pin, login, free space (`statvfs@openssh.com`) — so each failure names its own cause. Uses the
 * same host key policy as uploads; credentials are never sent to a server whose key does not match.
 */
export async function diagnoseSftpConnection(name: string, config: TargetConfig): Promise<ConnectionStep[]> {
  const parsed = parseTargetUrl(config.url);
  if (!parsed.ok || parsed.value.scheme !== 'sftp') throw new Error(`target "${name}" is not an sftp target`);
  const { host, port, username, dir } = parsed.value;
  const label = `${host.includes(':') ? `[${host}]` : host}:${port}`;
  const timeoutMs = config.pool.connectTimeoutMs;
  const steps: ConnectionStep[] = [];
  const skipRest = (reason: string): ConnectionStep[] => {
    for (const step of ['tcp', 'host key', 'login', 'free space'] as const) {
      if (!steps.some((done) => done.step === step))
        steps.push({ step, status: 'skip', detail: `not tried: ${reason}` });
    }
    return steps;
  };

  const tcp = await tcpProbe(host, port, timeoutMs);
  if (!tcp.ok) {
    steps.push({
      step: 'tcp',
      status: 'fail',
      detail: `cannot open a TCP connection to ${label}: ${tcp.reason}`,
      fix: `check that the SFTP server runs on ${label} and that a firewall lets this machine reach it (the host and port come from targets.${name}.url)`,
    });
    return skipRest('no TCP connection');
  }
  steps.push({ step: 'tcp', status: 'ok', detail: `${label} accepts connections (${tcp.ms} ms)` });

  let policy: HostKeyPolicy;
  try {
    // The insecure-any-key warning is for running processes; here the host key step says it.
    policy = hostKeyPolicyFor(name, config, label, silentLogger());
  } catch (error) {
    steps.push({
      step: 'host key',
      status: 'fail',
      detail: rawMessage(error),
      fix: `make targets.${name}.knownHosts a readable known_hosts file`,
    });
    return skipRest('no host key to compare with');
  }
  let credentials: Credentials | undefined;
  let unreadableKey: string | undefined;
  try {
    credentials = configuredCredentials(name, config, label, username);
  } catch (error) {
    // The handshake still shows the host key; the login step reports the key file.
    unreadableKey = rawMessage(error);
  }
  const session = await sshSession({
    host,
    port,
    username: username ?? '',
    timeoutMs,
    policy,
    algorithms: algorithmsFor(config, policy, host, port),
    credentials,
  });
  try {
    const verdict = session.verdict;
    if (!verdict) {
      steps.push({
        step: 'host key',
        status: 'fail',
        detail: `no SSH handshake with ${label}: ${session.error ?? 'the server closed the connection'}`,
        fix: `check that ${label} is an SSH server; old servers may need targets.${name}.algorithms (e.g. kex append diffie-hellman-group14-sha1)`,
      });
      return skipRest('no SSH handshake');
    }
    if (!verdict.ok) {
      steps.push(hostKeyFailure(name, label, verdict, policy));
      return skipRest('the host key does not match, so no credentials were sent');
    }
    steps.push({
      step: 'host key',
      status: config.insecureAcceptAnyHostKey ? 'skip' : 'ok',
      detail: config.insecureAcceptAnyHostKey
        ? `not checked (insecureAcceptAnyHostKey); the server presented ${verdict.presented}`
        : `${verdict.presented} matches the pin (hostKey / knownHosts)`,
      ...(config.insecureAcceptAnyHostKey
        ? {
            fix: `pin it: set targets.${name}.hostKey to ${verdict.presented} after confirming it with the server's administrator`,
          }
        : {}),
    });

    if (unreadableKey !== undefined) {
      steps.push({
        step: 'login',
        status: 'fail',
        detail: unreadableKey,
        fix: `make targets.${name}.privateKeyPath a private key file the bridge's user can read`,
      });
      return skipRest('not logged in');
    }
    if (!credentials) {
      steps.push({
        step: 'login',
        status: 'skip',
        detail:
          "credentials come from each hook call's secrets (credentials: hookSecrets); nothing to log in with here",
      });
      return skipRest('no login');
    }
    if (!session.sftp) {
      steps.push({
        step: 'login',
        status: 'fail',
        detail: `${label} did not accept user "${username ?? ''}": ${session.error ?? 'no SFTP session'}`,
        fix: `check the user in targets.${name}.url and its password / private key (and passphrase); the server's auth log says which method it refused`,
      });
      return skipRest('not logged in');
    }
    steps.push({ step: 'login', status: 'ok', detail: `logged in as "${username ?? ''}" with an SFTP session` });
    steps.push(await freeSpace(session.sftp, dir, name));
    return steps;
  } finally {
    session.client.end();
  }
}

function tcpProbe(
  host: string,
  port: number,
  timeoutMs: number,
): Promise<{ ok: true; ms: number } | { ok: false; reason: string }> {
  const started = Date.now();
  return new Promise((resolveProbe) => {
    const socket = tcpConnect({ host, port });
    socket.setTimeout(timeoutMs);
    socket.once('connect', () => {
      socket.destroy();
      resolveProbe({ ok: true, ms: Date.now() - started });
    });
    socket.once('timeout', () => {
      socket.destroy();
      resolveProbe({ ok: false, reason: `no answer within ${timeoutMs} ms` });
    });
    socket.once('error', (error: NodeJS.ErrnoException) =>
      resolveProbe({ ok: false, reason: error.code ?? error.message }),
    );
  });
}

interface Credentials {
  password?: string;
  privateKey?: string;
  passphrase?: string;
}

function hostKeyFailure(
  name: string,
  label: string,
  verdict: Extract<HostKeyVerdict, { ok: false }>,
  policy: HostKeyPolicy,
): ConnectionStep {
  const presented = `${verdict.presented} (${verdict.keyType})`;
  if (verdict.reason === 'unknown') {
    const where = policy.knownHosts ? `no entry for ${label} in ${policy.knownHosts.source}` : 'no hostKey configured';
    return {
      step: 'host key',
      status: 'fail',
      detail: `the server presented ${presented}, which is not known (${where})`,
      fix: `confirm the fingerprint with the server's administrator (ssh-keygen -l -f /etc/ssh/ssh_host_*_key.pub on the server), then set targets.${name}.hostKey to it`,
    };
  }
  const expected = verdict.reason === 'revoked' ? 'a key marked @revoked' : `pinned ${verdict.expected.join(' or ')}`;
  return {
    step: 'host key',
    status: 'fail',
    detail: `the server presented ${presented}, ${expected}; no credentials were sent`,
    fix: `if the server's key changed on purpose, confirm the new fingerprint with its administrator and update targets.${name}.hostKey/knownHosts; otherwise someone may be intercepting the connection — do not change the pin`,
  };
}

interface Session {
  client: Client;
  verdict: HostKeyVerdict | undefined;
  sftp: SFTPWrapper | undefined;
  error: string | undefined;
}

function sshSession(options: {
  host: string;
  port: number;
  username: string;
  timeoutMs: number;
  policy: HostKeyPolicy;
  algorithms: Algorithms | undefined;
  credentials: Credentials | undefined;
}): Promise<Session> {
  const client = new Client();
  const session: Session = { client, verdict: undefined, sftp: undefined, error: undefined };
  return new Promise((resolveSession) => {
    let settled = false;
    const settle = (error?: string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (error !== undefined) session.error = error;
      resolveSession(session);
    };
    const timer = setTimeout(() => {
      settle(`no answer within ${options.timeoutMs} ms`);
      client.destroy();
    }, options.timeoutMs + 1_000);
    client.on('ready', () => {
      client.sftp((error, sftp) => {
        if (error) return settle(rawMessage(error));
        session.sftp = sftp;
        settle();
      });
    });
    client.on('error', (error: Error & { level?: string }) => settle(rawMessage(error)));
    client.on('close', () => settle());
    const connectConfig: ConnectConfig = {
      host: options.host,
      port: options.port,
      username: options.username,
      readyTimeout: options.timeoutMs,
      hostVerifier: (key: Buffer) => {
        session.verdict = verifyHostKey(options.policy, options.host, options.port, key);
        return session.verdict.ok;
      },
      // Without credentials the handshake still shows the host key; login then fails, which is reported as skipped.
      ...(options.credentials ?? {}),
      ...(options.algorithms ? { algorithms: options.algorithms } : {}),
    };
    try {
      client.connect(connectConfig);
    } catch (error) {
      settle(rawMessage(error));
    }
  });
}

/** ssh2's statvfs reply: POSIX `f_*` fields, each a number, a bigint or a string depending on ssh2's 64-bit option. */
interface StatvfsReply {
  f_bsize?: unknown;
  f_frsize?: unknown;
  f_blocks?: unknown;
  f_bavail?: unknown;
}

function count(value: unknown): number {
  if (typeof value === 'number') return value;
  if (typeof value === 'bigint' || typeof value === 'string') return Number(value);
  return Number.NaN;
}

async function freeSpace(sftp: SFTPWrapper, dir: string, name: string): Promise<ConnectionStep> {
  // The target folder may not exist yet (createDirs): its file system is then the login folder's.
  let info: StatvfsReply | undefined;
  let lastError = '';
  for (const path of [dir, '.']) {
    try {
      info = await new Promise<StatvfsReply>((resolveInfo, rejectInfo) => {
        sftp.ext_openssh_statvfs(path, (error, fsInfo: StatvfsReply) =>
          error ? rejectInfo(error) : resolveInfo(fsInfo),
        );
      });
      break;
    } catch (error) {
      lastError = rawMessage(error);
      if (/does not support|not supported/i.test(lastError)) break;
    }
  }
  if (!info)
    return {
      step: 'free space',
      status: 'skip',
      detail: `the server does not report free space (statvfs@openssh.com: ${lastError})`,
    };
  const unit = count(info.f_frsize) || count(info.f_bsize);
  const freeBytes = count(info.f_bavail) * unit;
  const totalBytes = count(info.f_blocks) * unit;
  if (!Number.isFinite(freeBytes) || !Number.isFinite(totalBytes)) {
    return { step: 'free space', status: 'skip', detail: "the server's statvfs@openssh.com reply could not be read" };
  }
  const shown = `${formatBytes(freeBytes)} free of ${formatBytes(totalBytes)}`;
  if (freeBytes < MIN_FREE_BYTES) {
    return {
      step: 'free space',
      status: 'fail',
      freeBytes,
      detail: `only ${shown}`,
      fix: `free space on the server's file system of targets.${name} (under ${formatBytes(MIN_FREE_BYTES)}, uploads may fail halfway)`,
    };
  }
  return { step: 'free space', status: 'ok', freeBytes, detail: shown };
}

export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}
