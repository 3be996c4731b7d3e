import { execFile, spawn } from 'node:child_process';
import { chown } from 'node:fs/promises';
import { promisify } from 'node:util';
import {
  startSshd as startDevSshd,
  type SshdInstance,
  type StartSshdOptions as DevSshdOptions,
} from '../../src/dev/index.ts';

export { freePort, type SshdInstance } from '../../src/dev/index.ts';

const run = promisify(execFile);

/** A local account with a known password, for password-auth tests. */
export interface PasswordUser {
  username: string;
  password: string;
}

export interface StartSshdOptions extends DevSshdOptions {
  /** Also allow password login for this local user (see `ensurePasswordUser`); it owns `inbound/` and `acks/`. */
  passwordUser?: PasswordUser;
}

/** The dev sshd, plus (for password-auth tests) a second local user who may log in with a password. */
export async function startSshd(options: StartSshdOptions): Promise<SshdInstance> {
  const { passwordUser, ...devOptions } = options;
  if (!passwordUser) return startDevSshd(devOptions);
  const { uid, gid } = await lookupUser(passwordUser.username);
  const sshd = await startDevSshd({
    ...devOptions,
    // AllowUsers lines add up; the Match block goes last, where sshd_config wants it.
    extraConfig: [
      ...(devOptions.extraConfig ?? []),
      `AllowUsers ${passwordUser.username}`,
      `Match User ${passwordUser.username}`,
      '  PasswordAuthentication yes',
    ],
  });
  await chown(sshd.inboundDir, uid, gid);
  await chown(sshd.acksDir, uid, gid);
  return sshd;
}

/**
 * Creates (or updates) a local account with a known password for password-auth tests.
 * Needs root; throws with the reason otherwise, so a test that needs it fails visibly.
 */
export async function ensurePasswordUser(
  username = 'bridgepw',
  password = 'bridge-test-password',
): Promise<PasswordUser> {
  if (process.getuid?.() !== 0) {
    throw new Error(
      `cannot create password-auth user "${username}": needs root (running as uid ${process.getuid?.()})`,
    );
  }
  try {
    await lookupUser(username);
  } catch {
    try {
      await run('useradd', [
        '--system',
        '--no-create-home',
        '--home-dir',
        '/nonexistent',
        '--shell',
        '/usr/sbin/nologin',
        username,
      ]);
    } catch (error) {
      throw new Error(`cannot create password-auth user "${username}" with useradd: ${(error as Error).message}`);
    }
  }
  await new Promise<void>((resolveChpasswd, reject) => {
    const proc = spawn('chpasswd', [], { stdio: ['pipe', 'ignore', 'pipe'] });
    let stderr = '';
    proc.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    proc.once('error', (error) =>
      reject(new Error(`cannot set the password of "${username}" with chpasswd: ${error.message}`)),
    );
    proc.once('exit', (code) =>
      code === 0
        ? resolveChpasswd()
        : reject(new Error(`cannot set the password of "${username}" with chpasswd (exit ${code}): ${stderr.trim()}`)),
    );
    proc.stdin.end(`${username}:${password}\n`);
  });
  return { username, password };
}

async function lookupUser(username: string): Promise<{ uid: number; gid: number }> {
  const { stdout: uid } = await run('id', ['-u', username]);
  const { stdout: gid } = await run('id', ['-g', username]);
  return { uid: Number(uid.trim()), gid: Number(gid.trim()) };
}
