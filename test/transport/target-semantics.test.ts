import { mkdirSync, readFileSync, readdirSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/observability/logger.ts';
import { createTarget, type RemoteEntry, type Target, type TargetConfigInput } from '../../src/transport/index.ts';
import type { SshdInstance } from '../support/sshd.ts';
import { failure, sftpTarget, tempDir, uniqueFolder, uploadWhileObserving, withSshd } from './helpers.ts';

interface Harness {
  /** A fresh target over an empty folder, and that folder on the local disk. */
  make(overrides?: Partial<TargetConfigInput>): { target: Target; local: string; outside: string };
}

function tree(dir: string): string[] {
  const out: string[] = [];
  const walk = (current: string, prefix: string): void => {
    for (const name of readdirSync(current).sort()) {
      const full = join(current, name);
      const rel = prefix ? `${prefix}/${name}` : name;
      out.push(rel);
      if (statSync(full).isDirectory()) walk(full, rel);
    }
  };
  walk(dir, '');
  return out;
}

let sshd: SshdInstance;
let cleanupSshd: () => Promise<void>;
const scratch = tempDir('bridge-file-target-');

beforeAll(async () => {
  ({ sshd, cleanup: cleanupSshd } = await withSshd());
});
afterAll(async () => {
  await cleanupSshd();
  scratch.remove();
});

let fileCounter = 0;
const harnesses: Array<[string, Harness]> = [
  [
    'sftp://',
    {
      make(overrides = {}) {
        const folder = uniqueFolder('sem');
        const local = join(sshd.root, folder);
        mkdirSync(local, { recursive: true });
        return { target: sftpTarget(sshd, folder, overrides), local, outside: sshd.root };
      },
    },
  ],
  [
    'file://',
    {
      make(overrides = {}) {
        fileCounter++;
        const outside = join(scratch.path, `case-${fileCounter}`);
        const local = join(outside, 'share', 'inbound');
        mkdirSync(local, { recursive: true });
        const target = createTarget('share', { url: `file://${local}`, ...overrides }, { logger: silentLogger() });
        return { target, local, outside };
      },
    },
  ],
];

describe.each(harnesses)('%s target', (_label, harness) => {
  it('uploads from a stream chunk by chunk; an error the stream throws reaches the caller unchanged and leaves no temp file', async () => {
    const { target, local } = harness.make();
    const chunks = (count: number, failAt?: number) =>
      (async function* () {
        for (let i = 0; i < count; i++) {
          if (i === failAt) throw new Error(`the source broke at chunk ${i}`);
          yield Buffer.alloc(50_000, i);
        }
      })();
    try {
      const result = await target.upload({ relativePath: 'big.pdf', stream: chunks(5), onExisting: 'fail' });
      expect(result).toEqual({ remotePath: 'big.pdf', bytes: 250_000 });
      const stored = readFileSync(join(local, 'big.pdf'));
      expect(stored.length).toBe(250_000);
      expect([stored[0], stored[50_000], stored[249_999]]).toEqual([0, 1, 4]);
      // Not relabelled as a transport failure: the caller sees the source's own error.
      const broken = target.upload({ relativePath: 'broken.pdf', stream: chunks(5, 3), onExisting: 'fail' });
      await expect(broken).rejects.toThrow(/^the source broke at chunk 3$/);
      await expect(broken).rejects.not.toHaveProperty('code');
      expect(readdirSync(local)).toEqual(['big.pdf']);
    } finally {
      await target.close();
    }
  });

  it('onExisting fail: refuses with a permanent TARGET_EXISTS, keeps the old file and leaves no temp file', async () => {
    const { target, local } = harness.make();
    try {
      await target.upload({ relativePath: 'inv.xml', bytes: Buffer.from('first'), onExisting: 'fail' });
      const error = await failure(
        target.upload({ relativePath: 'inv.xml', bytes: Buffer.from('second'), onExisting: 'fail' }),
      );
      expect(error).toMatchObject({ code: 'TARGET_EXISTS', permanent: true });
      expect(error.message).toContain('inv.xml');
      expect(readFileSync(join(local, 'inv.xml'), 'utf8')).toBe('first');
      expect(readdirSync(local)).toEqual(['inv.xml']);
    } finally {
      await target.close();
    }
  });

  it('onExisting overwrite: replaces the file', async () => {
    const { target, local } = harness.make();
    try {
      await target.upload({ relativePath: 'inv.xml', bytes: Buffer.from('first'), onExisting: 'overwrite' });
      const result = await target.upload({
        relativePath: 'inv.xml',
        bytes: Buffer.from('second!'),
        onExisting: 'overwrite',
      });
      expect(result).toEqual({ remotePath: 'inv.xml', bytes: 7 });
      expect(readFileSync(join(local, 'inv.xml'), 'utf8')).toBe('second!');
      expect(readdirSync(local)).toEqual(['inv.xml']);
    } finally {
      await target.close();
    }
  });

  it('onExisting overwrite with plain rename (remove + rename) also replaces the file', async () => {
    const { target, local } = harness.make({ upload: { rename: 'plain' } });
    try {
      await target.upload({ relativePath: 'inv.xml', bytes: Buffer.from('first'), onExisting: 'overwrite' });
      await target.upload({ relativePath: 'inv.xml', bytes: Buffer.from('second'), onExisting: 'overwrite' });
      expect(readFileSync(join(local, 'inv.xml'), 'utf8')).toBe('second');
    } finally {
      await target.close();
    }
  });

  it('onExisting version: picks stem_v2.ext, _v3, ... and returns the name; concurrent uploads get distinct names', async () => {
    const { target, local } = harness.make();
    try {
      expect(
        (await target.upload({ relativePath: 'd/inv.xml', bytes: Buffer.from('v1'), onExisting: 'version' }))
          .remotePath,
      ).toBe('d/inv.xml');
      expect(
        (await target.upload({ relativePath: 'd/inv.xml', bytes: Buffer.from('v2'), onExisting: 'version' }))
          .remotePath,
      ).toBe('d/inv_v2.xml');
      const results = await Promise.all(
        Array.from({ length: 8 }, (_, i) =>
          target.upload({ relativePath: 'd/inv.xml', bytes: Buffer.from(`c${i}`), onExisting: 'version' }),
        ),
      );
      const names = results.map((r) => r.remotePath);
      expect(new Set(names).size).toBe(8);
      expect(names.sort()).toEqual(Array.from({ length: 8 }, (_, i) => `d/inv_v${i + 3}.xml`).sort());
      for (const [i, result] of results.entries())
        expect(readFileSync(join(local, result.remotePath), 'utf8')).toBe(`c${i}`);
      expect(readdirSync(join(local, 'd'))).toHaveLength(10);
    } finally {
      await target.close();
    }
  });

  it.each([
    ['../x.xml'],
    ['/etc/passwd'],
    ['a/../../b.xml'],
    ['..'],
    ['a\u0000b.xml'],
    ['a\nb.xml'],
    ['a\u001bb.xml'],
    ['..\\x.xml'],
    ['C:\\x.xml'],
    ['~/x.xml'],
    [''],
  ])('refuses path %j with a permanent PATH_ESCAPE and writes nothing', async (relativePath) => {
    const { target, outside } = harness.make();
    const before = tree(outside);
    const passwd = statSync('/etc/passwd').mtimeMs;
    try {
      const error = await failure(target.upload({ relativePath, bytes: Buffer.from('evil'), onExisting: 'overwrite' }));
      expect(error).toMatchObject({ code: 'PATH_ESCAPE', permanent: true });
      for (const operation of [
        target.readFile(relativePath),
        target.remove(relativePath),
        target.move('x', relativePath),
      ]) {
        expect(await failure(operation)).toMatchObject({ code: 'PATH_ESCAPE' });
      }
      expect(tree(outside)).toEqual(before);
      expect(statSync('/etc/passwd').mtimeMs).toBe(passwd);
    } finally {
      await target.close();
    }
  });

  it('removes the temporary file after a failed upload', async () => {
    const { target, local } = harness.make();
    try {
      await target.upload({ relativePath: 'x.xml', bytes: Buffer.from('1'), onExisting: 'fail' });
      await failure(target.upload({ relativePath: 'x.xml', bytes: Buffer.alloc(100_000, 2), onExisting: 'fail' }));
      expect(readdirSync(local)).toEqual(['x.xml']);
    } finally {
      await target.close();
    }
  });

  it('stat, readFile, list, move and remove work inside the folder', async () => {
    const { target, local } = harness.make({ pool: { size: 1 } });
    try {
      mkdirSync(join(local, 'acks'));
      for (let i = 0; i < 250; i++)
        writeFileSync(join(local, 'acks', `ack-${String(i).padStart(3, '0')}.ok`), `ok ${i}`);
      mkdirSync(join(local, 'acks', 'sub'));
      const entries: RemoteEntry[] = [];
      for await (const entry of target.list('acks')) entries.push(entry);
      expect(entries).toHaveLength(251);
      const first = entries.find((e) => e.name === 'ack-007.ok');
      expect(first).toMatchObject({ path: 'acks/ack-007.ok', size: 4, isFile: true });
      expect(first?.mtimeMs).toBeGreaterThan(0);
      expect(entries.find((e) => e.name === 'sub')).toMatchObject({ isFile: false });

      // Stopping early releases the connection (the next call would hang otherwise with pool size 1).
      for await (const entry of target.list('acks')) {
        expect(entry.name).toBeTruthy();
        break;
      }

      expect(await target.stat('acks/ack-001.ok')).toMatchObject({ size: 4 });
      expect(await target.stat('acks/missing.ok')).toBeNull();
      expect((await target.readFile('acks/ack-002.ok')).toString()).toBe('ok 2');
      await target.move('acks/ack-003.ok', 'archive/2026/ack-003.ok');
      expect(readFileSync(join(local, 'archive/2026/ack-003.ok'), 'utf8')).toBe('ok 3');
      expect(await failure(target.move('acks/ack-004.ok', 'archive/2026/ack-003.ok'))).toMatchObject({
        code: 'TARGET_EXISTS',
        permanent: true,
      });
      await target.move('acks/ack-004.ok', 'archive/2026/ack-003.ok', { overwrite: true });
      expect(readFileSync(join(local, 'archive/2026/ack-003.ok'), 'utf8')).toBe('ok 4');
      await target.remove('acks/ack-005.ok');
      await target.remove('acks/ack-005.ok');
      expect(await target.stat('acks/ack-005.ok')).toBeNull();
      expect(await failure(target.readFile('acks/missing.ok'))).toMatchObject({ code: 'NOT_FOUND' });
      await target.check();
    } finally {
      await target.close();
    }
  });
});

describe('file:// target specifics', () => {
  it('refuses to follow a symlink inside the share that leads outside it', async () => {
    const base = join(scratch.path, 'symlink-case');
    const share = join(base, 'share');
    const elsewhere = join(base, 'elsewhere');
    mkdirSync(share, { recursive: true });
    mkdirSync(elsewhere, { recursive: true });
    symlinkSync(elsewhere, join(share, 'escape'));
    const target = createTarget('share', { url: `file://${share}` }, { logger: silentLogger() });
    try {
      const error = await failure(
        target.upload({ relativePath: 'escape/x.xml', bytes: Buffer.from('x'), onExisting: 'overwrite' }),
      );
      expect(error).toMatchObject({ code: 'PATH_ESCAPE', permanent: true });
      expect(readdirSync(elsewhere)).toEqual([]);
    } finally {
      await target.close();
    }
  });

  it('an observer reading the share during 60 uploads never sees a partial file under a final name', async () => {
    const share = join(scratch.path, 'atomic-share');
    mkdirSync(share, { recursive: true });
    const target = createTarget('share', { url: `file://${share}` }, { logger: silentLogger() });
    const expected = new Map<string, Buffer>();
    for (let i = 0; i < 60; i++) expected.set(`f-${i}.xml`, Buffer.alloc(1 + ((i * 7919) % 400_000), 97 + (i % 26)));
    try {
      const { violations, reads } = await uploadWhileObserving(target, share, expected);
      expect(violations).toEqual([]);
      expect(reads).toBeGreaterThan(0);
    } finally {
      await target.close();
    }
    expect(readdirSync(share).sort()).toEqual([...expected.keys()].sort());
  });
});
