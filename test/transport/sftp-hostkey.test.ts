import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fingerprintOfKey } from '../../src/transport/index.ts';
import type { SshdInstance } from '../support/sshd.ts';
import { failure, sftpTarget, tempDir, uniqueFolder, withSshd } from './helpers.ts';

describe('host key pinning', () => {
  let sshd: SshdInstance;
  let cleanup: () => Promise<void>;
  const files = tempDir('bridge-knownhosts-');

  beforeAll(async () => {
    ({ sshd, cleanup } = await withSshd());
  });
  afterAll(async () => {
    await cleanup();
    files.remove();
  });

  it('computes the same SHA256 fingerprint as ssh-keygen -l', () => {
    expect(fingerprintOfKey(sshd.hostPublicKey)).toBe(sshd.hostKeyFingerprint);
    expect(fingerprintOfKey(Buffer.from(sshd.hostPublicKey.split(' ')[1] as string, 'base64'))).toBe(
      sshd.hostKeyFingerprint,
    );
  });

  it('a pinned fingerprint that does not match refuses the connection, naming both fingerprints', async () => {
    const pinned = `SHA256:${randomBytes(32).toString('base64').replace(/=+$/, '')}`;
    const folder = uniqueFolder('mismatch');
    const target = sftpTarget(sshd, folder, { hostKey: pinned, retry: { attempts: 1 } });
    try {
      const error = await failure(
        target.upload({ relativePath: 'a.xml', bytes: Buffer.from('x'), onExisting: 'fail' }),
      );
      expect(error.code).toBe('HOST_KEY_MISMATCH');
      expect(error.permanent).toBe(false);
      expect(error.message).toContain(pinned);
      expect(error.message).toContain(sshd.hostKeyFingerprint);
      expect(error.message).toContain(`127.0.0.1:${sshd.port}`);
      expect(error.location.host).toBe(`127.0.0.1:${sshd.port}`);
      expect(existsSync(join(sshd.root, folder))).toBe(false);
    } finally {
      await target.close();
    }
  });

  it('accepts the server when any of several pinned fingerprints matches', async () => {
    const other = `SHA256:${randomBytes(32).toString('base64').replace(/=+$/, '')}`;
    const target = sftpTarget(sshd, uniqueFolder('multi'), { hostKey: [other, sshd.hostKeyFingerprint] });
    try {
      await target.check();
    } finally {
      await target.close();
    }
  });

  it('accepts a plain known_hosts entry for [host]:port', async () => {
    const path = join(files.path, 'known_hosts_plain');
    writeFileSync(
      path,
      `# comment\n\nother.example ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDNWS0yTGj3Ol3lJVmE3dfsY6AwD1vbo9k5wUMIiCq1N\n${sshd.knownHostsLine}\n`,
    );
    const folder = uniqueFolder('kh-plain');
    const target = sftpTarget(sshd, folder, { hostKey: undefined, knownHosts: path });
    try {
      await target.upload({ relativePath: 'a.xml', bytes: Buffer.from('<a/>'), onExisting: 'fail' });
      expect(readFileSync(join(sshd.root, folder, 'a.xml'), 'utf8')).toBe('<a/>');
    } finally {
      await target.close();
    }
  });

  it('accepts a hashed known_hosts entry (ssh-keygen -H)', async () => {
    const path = join(files.path, 'known_hosts_hashed');
    writeFileSync(path, `${sshd.knownHostsLine}\n`);
    execFileSync('ssh-keygen', ['-H', '-f', path], { stdio: 'ignore' });
    expect(readFileSync(path, 'utf8')).toMatch(/^\|1\|/);
    const target = sftpTarget(sshd, uniqueFolder('kh-hashed'), { hostKey: undefined, knownHosts: path });
    try {
      await target.check();
    } finally {
      await target.close();
    }
  });

  it('a known_hosts entry with another key for the host refuses with both fingerprints', async () => {
    const path = join(files.path, 'known_hosts_wrong');
    const wrongKey = 'AAAAC3NzaC1lZDI1NTE5AAAAIDNWS0yTGj3Ol3lJVmE3dfsY6AwD1vbo9k5wUMIiCq1N';
    writeFileSync(path, `[127.0.0.1]:${sshd.port} ssh-ed25519 ${wrongKey}\n`);
    const target = sftpTarget(sshd, uniqueFolder('kh-wrong'), {
      hostKey: undefined,
      knownHosts: path,
      retry: { attempts: 1 },
    });
    try {
      const error = await failure(target.check());
      expect(error.code).toBe('HOST_KEY_MISMATCH');
      expect(error.message).toContain(fingerprintOfKey(wrongKey));
      expect(error.message).toContain(sshd.hostKeyFingerprint);
    } finally {
      await target.close();
    }
  });

  it('a host missing from known_hosts is refused as unknown, showing the presented fingerprint', async () => {
    const path = join(files.path, 'known_hosts_other_port');
    writeFileSync(path, `[127.0.0.1]:1 ${sshd.hostPublicKey}\n`);
    const target = sftpTarget(sshd, uniqueFolder('kh-unknown'), {
      hostKey: undefined,
      knownHosts: path,
      retry: { attempts: 1 },
    });
    try {
      const error = await failure(target.check());
      expect(error.code).toBe('HOST_KEY_UNKNOWN');
      expect(error.message).toContain(sshd.hostKeyFingerprint);
    } finally {
      await target.close();
    }
  });

  it('an @revoked known_hosts entry refuses the key even if it is also listed', async () => {
    const path = join(files.path, 'known_hosts_revoked');
    writeFileSync(path, `${sshd.knownHostsLine}\n@revoked * ${sshd.hostPublicKey}\n`);
    const target = sftpTarget(sshd, uniqueFolder('kh-revoked'), {
      hostKey: undefined,
      knownHosts: path,
      retry: { attempts: 1 },
    });
    try {
      const error = await failure(target.check());
      expect(error.code).toBe('HOST_KEY_MISMATCH');
      expect(error.message).toContain('@revoked');
    } finally {
      await target.close();
    }
  });
});
