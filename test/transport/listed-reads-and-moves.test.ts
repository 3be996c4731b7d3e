import { existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { isTransportError, type RemoteEntry, type SftpPoolStats, type Target } from '../../src/transport/index.ts';
import { failure, sftpTarget, sftpTargetVia, tempDir, uniqueFolder, useSshdBehindProxy } from './helpers.ts';
import { startSwapper, stopSwapper, untilExists } from './swapper.ts';

/*
 * The ack pass over a WAN link: a read that trusts the listing's look (no lstat of its own) and archive
 * renames sent all at once. Same guarantees as the one-by-one way: never through a symlink, never over a
 * taken name, a missing folder created.
 */
const ONE_WAY_MS = 50;
const ROUND_TRIP_MS = 2 * ONE_WAY_MS;
const REAL = Buffer.from('E1 invoice-1 rejected: the real ERP answer\n');
const SECRET = 'SECRET-hook-token-47aa01';

const link = useSshdBehindProxy(ONE_WAY_MS);
const scratch = tempDir('bridge-listed-reads-');

afterAll(() => {
  scratch.remove();
});

function throughProxy(folder: string, inflightPerConnection = 1): Target {
  return sftpTargetVia(link.proxy, link.sshd, folder, { pool: { size: 1, inflightPerConnection } });
}

async function listed(target: Target, dir: string): Promise<Map<string, RemoteEntry>> {
  const entries = new Map<string, RemoteEntry>();
  for await (const entry of target.list(dir)) entries.set(entry.name, entry);
  return entries;
}

function seenOf(entry: RemoteEntry | undefined) {
  if (!entry?.identity) throw new Error('the SFTP listing carries no identity');
  return { size: entry.size, mtimeMs: entry.mtimeMs, identity: entry.identity };
}

describe('sftp:// reads that trust the listing', () => {
  it('costs a round trip less than a read that looks first, and returns the same bytes', async () => {
    const folder = uniqueFolder('seen-rtt');
    mkdirSync(join(link.sshd.root, folder));
    writeFileSync(join(link.sshd.root, folder, 'a.err'), REAL);
    const target = throughProxy(folder);
    try {
      const seen = seenOf((await listed(target, '')).get('a.err'));
      const fastest = async (read: () => Promise<Buffer>): Promise<number> => {
        let best = Number.POSITIVE_INFINITY;
        for (let i = 0; i < 3; i++) {
          const started = performance.now();
          expect(await read()).toEqual(REAL);
          best = Math.min(best, performance.now() - started);
        }
        return best;
      };
      const looking = await fastest(() => target.readFile('a.err'));
      const trusting = await fastest(() => target.readFile('a.err', { seen }));
      // lstat | open | fstat+read against open | fstat+read.
      expect(looking).toBeGreaterThanOrEqual(3 * ROUND_TRIP_MS);
      expect(trusting).toBeGreaterThanOrEqual(2 * ROUND_TRIP_MS);
      expect(trusting).toBeLessThan(looking - ROUND_TRIP_MS / 2);
    } finally {
      await target.close();
    }
  });

  it('a file changed or swapped since the listing is looked at again: read as it is now, a symlink refused', async () => {
    const folder = uniqueFolder('seen-changed');
    const local = join(link.sshd.root, folder);
    mkdirSync(local);
    writeFileSync(join(local, 'grown.err'), 'E1 short');
    writeFileSync(join(local, 'swapped.err'), REAL);
    const secret = join(scratch.path, 'secret');
    writeFileSync(secret, `${SECRET}\n`);
    const target = sftpTarget(link.sshd, folder);
    try {
      const before = await listed(target, '');
      writeFileSync(join(local, 'grown.err'), 'E1 short, then rewritten longer');
      unlinkSync(join(local, 'swapped.err'));
      symlinkSync(secret, join(local, 'swapped.err'));
      expect((await target.readFile('grown.err', { seen: seenOf(before.get('grown.err')) })).toString()).toBe(
        'E1 short, then rewritten longer',
      );
      const refused = await failure(target.readFile('swapped.err', { seen: seenOf(before.get('swapped.err')) }));
      expect(refused).toMatchObject({ code: 'ACK_FILE_NOT_REGULAR', permanent: true });
      expect(refused.message).not.toContain(SECRET);
    } finally {
      await target.close();
    }
  });

  it('an ack name swapped with a symlink to a secret over and over is read as the real file or refused, never followed', async () => {
    const folder = uniqueFolder('seen-race');
    const local = join(link.sshd.root, folder);
    mkdirSync(local);
    const secret = join(scratch.path, 'race-secret');
    writeFileSync(secret, `${SECRET}\n`);
    const target = sftpTarget(link.sshd, folder);
    const swapper = startSwapper(local, 'answer.err', secret, REAL);
    const outcome = { reads: 0, refusals: 0, leaked: 0, other: [] as string[] };
    try {
      await untilExists(join(local, 'answer.err'));
      for (let attempt = 0; attempt < 60; attempt++) {
        const entry = (await listed(target, '')).get('answer.err');
        if (!entry?.isFile) continue;
        try {
          const bytes = await target.readFile('answer.err', { seen: seenOf(entry) });
          if (bytes.toString().includes(SECRET)) outcome.leaked++;
          else if (bytes.equals(REAL)) outcome.reads++;
          else outcome.other.push(`read ${bytes.length} unexpected bytes`);
        } catch (error) {
          if (isTransportError(error) && error.code === 'ACK_FILE_NOT_REGULAR' && error.permanent) outcome.refusals++;
          else outcome.other.push(String(error));
        }
      }
    } finally {
      await stopSwapper(swapper);
      await target.close();
    }
    expect(outcome.leaked).toBe(0);
    expect(outcome.other).toEqual([]);
    expect(outcome.reads + outcome.refusals).toBeGreaterThan(0);
  });
});

describe('sftp:// moveMany', () => {
  it('sends every rename at once: one connection, about one round trip for 30 moves (one at a time with inflightPerConnection 1)', async () => {
    const moveAll = async (inflight: number): Promise<number> => {
      const folder = uniqueFolder(`move-many-rtt-${inflight}`);
      const local = join(link.sshd.root, folder);
      mkdirSync(join(local, 'processed'), { recursive: true });
      const names = Array.from({ length: 30 }, (_, i) => `INV-${i}.ok`);
      for (const name of names) writeFileSync(join(local, name), name);
      const target = throughProxy(folder, inflight);
      try {
        await target.check();
        const started = performance.now();
        const errors = await (target.moveMany as NonNullable<Target['moveMany']>)(
          names.map((name) => ({ from: name, to: `processed/${name}` })),
        );
        const elapsed = performance.now() - started;
        expect(errors).toEqual(names.map(() => undefined));
        expect(readdirSync(join(local, 'processed')).sort()).toEqual([...names].sort());
        expect((target.stats() as SftpPoolStats).connectsTotal).toBe(1);
        return elapsed;
      } finally {
        await target.close();
      }
    };
    expect(await moveAll(16)).toBeLessThan(5 * ROUND_TRIP_MS);
    expect(await moveAll(1)).toBeGreaterThanOrEqual(30 * ROUND_TRIP_MS);
  });

  it('each move settles on its own: a missing folder is created, a taken name refused, a missing file reported', async () => {
    const folder = uniqueFolder('move-many');
    const local = join(link.sshd.root, folder);
    mkdirSync(join(local, 'invalid'), { recursive: true });
    for (const name of ['a.ok', 'b.ok', 'taken.err']) writeFileSync(join(local, name), `new ${name}`);
    writeFileSync(join(local, 'invalid', 'taken.err'), 'old taken.err');
    const target = sftpTarget(link.sshd, folder);
    try {
      const errors = await (target.moveMany as NonNullable<Target['moveMany']>)([
        { from: 'a.ok', to: 'processed/2026/a.ok' },
        { from: 'taken.err', to: 'invalid/taken.err' },
        { from: 'gone.ok', to: 'processed/2026/gone.ok' },
        { from: 'b.ok', to: '../outside/b.ok' },
      ]);
      expect(errors[0]).toBeUndefined();
      expect(readFileSync(join(local, 'processed/2026/a.ok'), 'utf8')).toBe('new a.ok');
      expect(errors[1]).toMatchObject({ code: 'TARGET_EXISTS', permanent: true });
      expect(readFileSync(join(local, 'invalid', 'taken.err'), 'utf8')).toBe('old taken.err');
      expect(readFileSync(join(local, 'taken.err'), 'utf8')).toBe('new taken.err');
      expect(errors[2]).toMatchObject({ code: 'NOT_FOUND' });
      expect(errors[3]).toBeInstanceOf(Error);
      expect(existsSync(join(local, 'b.ok'))).toBe(true);
    } finally {
      await target.close();
    }
  });
});
