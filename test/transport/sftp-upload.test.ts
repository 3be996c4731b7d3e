import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { sftpTarget, uniqueFolder, uploadWhileObserving, useSshd } from './helpers.ts';

describe('sftp upload', () => {
  const sshd = useSshd();

  it('lands the exact bytes under the final name and leaves no temporary file', async () => {
    const folder = uniqueFolder('exact');
    const target = sftpTarget(sshd(), folder);
    try {
      const bytes = Buffer.from('<?xml version="1.0"?>\n<invoice id="1">ü€\u0000binary</invoice>\n', 'utf8');
      const result = await target.upload({ relativePath: 'sub/dir/invoice-1.xml', bytes, onExisting: 'fail' });
      expect(result).toEqual({ remotePath: 'sub/dir/invoice-1.xml', bytes: bytes.length });
      const local = join(sshd().root, folder, 'sub/dir');
      expect(readFileSync(join(local, 'invoice-1.xml'))).toEqual(bytes);
      expect(readdirSync(local)).toEqual(['invoice-1.xml']);
    } finally {
      await target.close();
    }
  });

  it('uploads a large file (several SFTP packets) intact', async () => {
    const folder = uniqueFolder('large');
    const target = sftpTarget(sshd(), folder);
    try {
      const bytes = Buffer.alloc(3 * 1024 * 1024 + 17);
      for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 31 + 7) & 0xff;
      await target.upload({ relativePath: 'big.bin', bytes, onExisting: 'fail' });
      expect(readFileSync(join(sshd().root, folder, 'big.bin')).equals(bytes)).toBe(true);
    } finally {
      await target.close();
    }
  });

  it('sets the configured mode before the file becomes visible', async () => {
    const folder = uniqueFolder('mode');
    const target = sftpTarget(sshd(), folder, { upload: { mode: '0604' } });
    try {
      await target.upload({ relativePath: 'a.csv', bytes: Buffer.from('x;y\n'), onExisting: 'fail' });
      const { statSync } = await import('node:fs');
      expect(statSync(join(sshd().root, folder, 'a.csv')).mode & 0o777).toBe(0o604);
    } finally {
      await target.close();
    }
  });

  it('writes temporary files to the sibling tempDir when configured', async () => {
    const folder = uniqueFolder('tempdir');
    const target = sftpTarget(sshd(), folder, { upload: { tempDir: '.tmp' } });
    try {
      await target.upload({ relativePath: 'x/a.xml', bytes: Buffer.from('<a/>'), onExisting: 'fail' });
      expect(readFileSync(join(sshd().root, folder, 'x/a.xml'), 'utf8')).toBe('<a/>');
      expect(readdirSync(join(sshd().root, folder, '.tmp'))).toEqual([]);
    } finally {
      await target.close();
    }
  });

  it('an observer listing the folder during 60 uploads never reads a partial file under a final name', async () => {
    const folder = uniqueFolder('atomic');
    const target = sftpTarget(sshd(), folder, { pool: { size: 4 } });
    const local = join(sshd().root, folder);
    const expected = new Map<string, Buffer>();
    for (let i = 0; i < 60; i++) {
      // Sizes up to ~600 kB so writes span many packets and take observable time.
      const size = 1 + ((i * 7919) % 600_000);
      const bytes = Buffer.alloc(size, String.fromCharCode(97 + (i % 26)));
      expected.set(`file-${i}.xml`, bytes);
    }
    await target.check();
    try {
      const { violations, reads } = await uploadWhileObserving(target, local, expected);
      expect(violations).toEqual([]);
      expect(reads).toBeGreaterThan(0);
    } finally {
      await target.close();
    }
    expect(readdirSync(local).sort()).toEqual([...expected.keys()].sort());
  });
});
