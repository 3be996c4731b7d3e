import { chmodSync, mkdirSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Writable } from 'node:stream';
import { createLogger } from '../../src/observability/logger.ts';
import { createTarget } from '../../src/transport/index.ts';
import { ensurePasswordUser, type PasswordUser, type SshdInstance } from '../support/sshd.ts';
import { failure, sftpTarget, uniqueFolder, withSshd } from './helpers.ts';

describe('authentication', () => {
  let sshd: SshdInstance;
  let user: PasswordUser;
  let cleanup: () => Promise<void>;

  beforeAll(async () => {
    // Creating the local account needs root; if that is impossible these tests fail with the reason.
    user = await ensurePasswordUser();
    ({ sshd, cleanup } = await withSshd({ passwordUser: user }));
  });
  afterAll(async () => {
    await cleanup?.();
  });

  it('password auth uploads as the password user', async () => {
    const target = sftpTarget(sshd, 'inbound', {
      url: `sftp://${user.username}@127.0.0.1:${sshd.port}/~/inbound`,
      privateKey: undefined,
      password: user.password,
    });
    try {
      await target.upload({ relativePath: 'pw.xml', bytes: Buffer.from('<pw/>'), onExisting: 'overwrite' });
      expect(readFileSync(join(sshd.inboundDir, 'pw.xml'), 'utf8')).toBe('<pw/>');
    } finally {
      await target.close();
    }
  });

  it('a folder the user may not write to is a transient PERMISSION_DENIED; once writable the upload succeeds', async () => {
    const folder = join(sshd.inboundDir, 'readonly');
    mkdirSync(folder, { recursive: true });
    chmodSync(folder, 0o555);
    const target = sftpTarget(sshd, 'inbound', {
      url: `sftp://${user.username}@127.0.0.1:${sshd.port}/~/inbound`,
      privateKey: undefined,
      password: user.password,
    });
    try {
      const error = await failure(
        target.upload({ relativePath: 'readonly/a.xml', bytes: Buffer.from('a'), onExisting: 'fail' }),
      );
      expect(error).toMatchObject({ code: 'PERMISSION_DENIED', permanent: false });
      expect(error.message).toContain('readonly');
      chmodSync(folder, 0o777);
      await target.upload({ relativePath: 'readonly/a.xml', bytes: Buffer.from('a'), onExisting: 'fail' });
      expect(readdirSync(folder)).toEqual(['a.xml']);
    } finally {
      await target.close();
    }
  });

  it('a wrong password is reported as rejected credentials (transient) without revealing the password', async () => {
    const wrong = 'not-the-password-123';
    const target = sftpTarget(sshd, 'inbound', {
      url: `sftp://${user.username}@127.0.0.1:${sshd.port}/~/inbound`,
      privateKey: undefined,
      password: wrong,
      retry: { attempts: 1 },
    });
    try {
      const error = await failure(target.check());
      expect(error.code).toBe('AUTH_REJECTED');
      expect(error.permanent).toBe(false);
      expect(error.message).toMatch(/rejected the credentials/);
      expect(error.message).not.toContain(wrong);
    } finally {
      await target.close();
    }
  });

  it('logs never contain the password, key or passphrase; accepting any host key is logged loudly', async () => {
    const lines: string[] = [];
    const destination = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        lines.push(chunk.toString());
        callback();
      },
    });
    const logger = createLogger({ level: 'debug', destination });
    const wrong = createTarget(
      'erp',
      {
        url: `sftp://${user.username}@127.0.0.1:${sshd.port}/~/inbound`,
        insecureAcceptAnyHostKey: true,
        password: `${user.password}-wrong`,
        retry: { attempts: 1 },
      },
      { logger },
    );
    const keyed = createTarget(
      'erp2',
      {
        url: sshd.url('inbound'),
        hostKey: sshd.hostKeyFingerprint,
        privateKey: sshd.encryptedPrivateKey,
        passphrase: sshd.passphrase,
      },
      { logger },
    );
    try {
      await failure(wrong.check());
      await keyed.check();
    } finally {
      await wrong.close();
      await keyed.close();
    }
    const text = lines.join('');
    expect(text).toMatch(/INSECURE/);
    expect(text).not.toContain(user.password);
    expect(text).not.toContain(sshd.passphrase);
    expect(text).not.toContain(sshd.encryptedPrivateKey.split('\n')[1] as string);
  });

  it('an encrypted private key works with its passphrase', async () => {
    const folder = uniqueFolder('enc');
    const target = sftpTarget(sshd, folder, {
      privateKey: undefined,
      privateKeyPath: sshd.encryptedPrivateKeyPath,
      passphrase: sshd.passphrase,
    });
    try {
      await target.upload({ relativePath: 'k.xml', bytes: Buffer.from('<k/>'), onExisting: 'fail' });
      expect(readFileSync(join(sshd.root, folder, 'k.xml'), 'utf8')).toBe('<k/>');
    } finally {
      await target.close();
    }
  });

  it('an encrypted private key with a wrong passphrase is a permanent credentials error', async () => {
    const target = sftpTarget(sshd, uniqueFolder('enc-bad'), {
      privateKey: sshd.encryptedPrivateKey,
      passphrase: 'wrong passphrase',
    });
    try {
      const error = await failure(target.check());
      expect(error.code).toBe('CREDENTIALS_INVALID');
      expect(error.permanent).toBe(true);
      expect(error.message).not.toContain('wrong passphrase');
    } finally {
      await target.close();
    }
  });

  it('hookSecrets: credentials come from the hook call, with a pool per credential set', async () => {
    const folder = uniqueFolder('hook');
    const target = sftpTarget(sshd, folder, { privateKey: undefined, credentials: 'hookSecrets' });
    try {
      const missing = await failure(
        target.upload({ relativePath: 'h.xml', bytes: Buffer.from('x'), onExisting: 'fail' }),
      );
      expect(missing.code).toBe('CREDENTIALS_MISSING');
      expect(missing.permanent).toBe(true);

      await target.upload(
        { relativePath: 'h1.xml', bytes: Buffer.from('1'), onExisting: 'fail' },
        { credentials: { privateKey: sshd.privateKey } },
      );
      await target.upload(
        { relativePath: 'h2.xml', bytes: Buffer.from('2'), onExisting: 'fail' },
        { credentials: { privateKey: sshd.encryptedPrivateKey, passphrase: sshd.passphrase } },
      );
      expect(readFileSync(join(sshd.root, folder, 'h1.xml'), 'utf8')).toBe('1');
      expect(readFileSync(join(sshd.root, folder, 'h2.xml'), 'utf8')).toBe('2');
      const stats = target.stats() as ReturnType<typeof target.stats> & { pools: number };
      expect(stats.pools).toBe(2);
    } finally {
      await target.close();
    }
  });
});
