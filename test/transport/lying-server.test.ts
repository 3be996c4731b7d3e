import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLyingSftpServer, type LyingSftpServer } from '../support/lying-sftp-server.ts';
import { failure, lyingTarget } from './helpers.ts';

describe('a server that stores short files', () => {
  let server: LyingSftpServer;
  beforeAll(async () => {
    server = await startLyingSftpServer({ offerPosixRename: true, shortWriteBytes: 3 });
  });
  afterAll(async () => server.stop());

  it('fails the upload with SIZE_MISMATCH before the rename and leaves nothing under the final name (nor a temp file)', async () => {
    const target = lyingTarget(server, 'short');
    try {
      const bytes = Buffer.from('INVOICE;INV-1;100.00\n'.repeat(40));
      const error = await failure(target.upload({ relativePath: 'INV-1.csv', bytes, onExisting: 'fail' }));
      expect(error.code).toBe('SIZE_MISMATCH');
      expect(error.message).toContain(`stored ${bytes.length - 3} bytes of ${bytes.length}`);
      expect(server.renames).toEqual([]);
      expect(readdirSync(join(server.root, 'short'))).toEqual([]);
    } finally {
      await target.close();
    }
  });

  it('also refuses to overwrite an existing file with a short copy (the old file stays intact)', async () => {
    const target = lyingTarget(server, 'short-overwrite');
    try {
      writeFileSync(join(server.root, 'short-overwrite', 'INV-2.csv'), 'previous complete file\n');
      const error = await failure(
        target.upload({
          relativePath: 'INV-2.csv',
          bytes: Buffer.from('a newer, longer version of the file\n'),
          onExisting: 'overwrite',
        }),
      );
      expect(error.code).toBe('SIZE_MISMATCH');
      expect(readFileSync(join(server.root, 'short-overwrite', 'INV-2.csv'), 'utf8')).toBe('previous complete file\n');
      expect(readdirSync(join(server.root, 'short-overwrite'))).toEqual(['INV-2.csv']);
    } finally {
      await target.close();
    }
  });
});

describe('upload.mode', () => {
  it('is set before the file becomes visible: the file already has the mode when the server renames it', async () => {
    const server = await startLyingSftpServer({ offerPosixRename: true });
    const target = lyingTarget(server, 'mode', { upload: { mode: '0604' } });
    try {
      await target.upload({ relativePath: 'M.csv', bytes: Buffer.from('x;y\n'), onExisting: 'fail' });
      expect(server.renames).toHaveLength(1);
      expect(server.renames[0]).toMatchObject({ to: '/mode/M.csv', modeAtRename: 0o604 });
      expect(server.renames[0]?.from).not.toBe('/mode/M.csv');
    } finally {
      await target.close();
      await server.stop();
    }
  });
});

describe('rename request chosen by what the server offers (observed on the server)', () => {
  it('uses posix-rename@openssh.com when the server offers it', async () => {
    const server = await startLyingSftpServer({ offerPosixRename: true });
    const target = lyingTarget(server, 'offered');
    try {
      await target.upload({ relativePath: 'A.csv', bytes: Buffer.from('first\n'), onExisting: 'overwrite' });
      await target.upload({ relativePath: 'A.csv', bytes: Buffer.from('second\n'), onExisting: 'overwrite' });
      expect(server.renames.map((rename) => [rename.kind, rename.to])).toEqual([
        ['posix-rename', '/offered/A.csv'],
        ['posix-rename', '/offered/A.csv'],
      ]);
      expect(readFileSync(join(server.root, 'offered', 'A.csv'), 'utf8')).toBe('second\n');
    } finally {
      await target.close();
      await server.stop();
    }
  });

  it('falls back to plain rename (remove + rename on an existing file) when the server withholds it', async () => {
    const server = await startLyingSftpServer({ offerPosixRename: false });
    const target = lyingTarget(server, 'withheld');
    try {
      await target.upload({ relativePath: 'B.csv', bytes: Buffer.from('first\n'), onExisting: 'overwrite' });
      await target.upload({ relativePath: 'B.csv', bytes: Buffer.from('second\n'), onExisting: 'overwrite' });
      const kinds = server.renames.map((rename) => rename.kind);
      expect(kinds.length).toBeGreaterThanOrEqual(2);
      expect(new Set(kinds)).toEqual(new Set(['rename']));
      expect(readFileSync(join(server.root, 'withheld', 'B.csv'), 'utf8')).toBe('second\n');
      expect(readdirSync(join(server.root, 'withheld'))).toEqual(['B.csv']);
    } finally {
      await target.close();
      await server.stop();
    }
  });

  it('upload.rename: posix against a server without it fails as UNSUPPORTED and publishes nothing', async () => {
    const server = await startLyingSftpServer({ offerPosixRename: false });
    const target = lyingTarget(server, 'required', { upload: { rename: 'posix' } });
    try {
      const error = await failure(
        target.upload({ relativePath: 'C.csv', bytes: Buffer.from('x\n'), onExisting: 'overwrite' }),
      );
      expect(error.code).toBe('UNSUPPORTED');
      expect(server.renames).toEqual([]);
      expect(existsSync(join(server.root, 'required', 'C.csv'))).toBe(false);
    } finally {
      await target.close();
      await server.stop();
    }
  });
});
