import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/observability/logger.ts';
import { createTarget, isTransportError, type Target } from '../../src/transport/index.ts';
import type { SshdInstance } from '../support/sshd.ts';
import { failure, fileUrl, sftpTarget, tempDir, uniqueFolder, withSshd } from './helpers.ts';
import { startSwapper, stopSwapper, untilExists } from './swapper.ts';

const REAL = Buffer.from('E1 invoice-1 rejected: the real ERP answer\n');
const SECRET = 'SECRET-hook-token-9f2c1e';
/** Reads per race: enough that, with a swap every millisecond, some of them meet the symlink. */
const READS = 60;

let sshd: SshdInstance;
let cleanupSshd: () => Promise<void>;
const scratch = tempDir('bridge-read-race-');

beforeAll(async () => {
  ({ sshd, cleanup: cleanupSshd } = await withSshd());
});
afterAll(async () => {
  await cleanupSshd();
  scratch.remove();
});

interface RaceOutcome {
  reads: number;
  refusals: number;
  leaked: number;
  other: string[];
}

/** Reads `acks/<name>` as the ack process does (list, then read what was listed as a file) until the time is up. */
async function readDuringSwaps(target: Target, name: string, withListing: boolean): Promise<RaceOutcome> {
  const outcome: RaceOutcome = { reads: 0, refusals: 0, leaked: 0, other: [] };
  for (let attempt = 0; attempt < READS; attempt++) {
    let listed: { size: number; mtimeMs: number } | undefined;
    for await (const entry of target.list('acks')) if (entry.name === name && entry.isFile) listed = entry;
    try {
      const bytes = await target.readFile(
        `acks/${name}`,
        withListing && listed ? { listed: { size: listed.size, mtimeMs: listed.mtimeMs } } : {},
      );
      if (bytes.toString().includes(SECRET)) outcome.leaked++;
      else if (bytes.equals(REAL)) outcome.reads++;
      else outcome.other.push(`read ${bytes.length} unexpected bytes`);
    } catch (error) {
      if (isTransportError(error) && error.code === 'ACK_FILE_NOT_REGULAR' && error.permanent) outcome.refusals++;
      else outcome.other.push(isTransportError(error) ? `${error.code}: ${error.message}` : String(error));
    }
  }
  return outcome;
}

const harnesses: Array<[string, () => { target: Target; acks: string; secret: string }]> = [
  [
    'sftp://',
    () => {
      const folder = uniqueFolder('race');
      const acks = join(sshd.root, folder, 'acks');
      mkdirSync(acks, { recursive: true });
      const secret = join(scratch.path, `secret-${Math.random().toString(16).slice(2)}`);
      writeFileSync(secret, `${SECRET}\n`);
      return { target: sftpTarget(sshd, folder), acks, secret };
    },
  ],
  [
    'file://',
    () => {
      const folder = join(scratch.path, `share-${Math.random().toString(16).slice(2)}`);
      const acks = join(folder, 'acks');
      mkdirSync(acks, { recursive: true });
      const secret = join(scratch.path, `secret-${Math.random().toString(16).slice(2)}`);
      writeFileSync(secret, `${SECRET}\n`);
      return { target: createTarget('erp', { url: fileUrl(folder) }, { logger: silentLogger() }), acks, secret };
    },
  ],
];

describe.each(harnesses)('%s reads cannot be redirected', (_label, make) => {
  for (const withListing of [false, true]) {
    it(`an ack name swapped with a symlink to a secret is read as the real file or refused, never followed (${withListing ? 'checked against the listing' : 'name only'})`, async () => {
      const { target, acks, secret } = make();
      const swapper = startSwapper(acks, 'answer.err', secret, REAL);
      try {
        await untilExists(join(acks, 'answer.err'));
        const outcome = await readDuringSwaps(target, 'answer.err', withListing);
        expect(outcome.leaked).toBe(0);
        expect(outcome.other).toEqual([]);
        // The race was really run: some reads met the symlink.
        expect(outcome.refusals).toBeGreaterThan(0);
      } finally {
        await stopSwapper(swapper);
        await target.close();
      }
    });
  }

  it('a symlink, a folder and an oversized file are refused with typed permanent errors', async () => {
    const { target, acks, secret } = make();
    try {
      symlinkSync(secret, join(acks, 'link.err'));
      mkdirSync(join(acks, 'folder.err'));
      writeFileSync(join(acks, 'big.err'), Buffer.alloc(5_000, 0x41));
      writeFileSync(join(acks, 'fits.err'), REAL);
      expect(await failure(target.readFile('acks/link.err'))).toMatchObject({
        code: 'ACK_FILE_NOT_REGULAR',
        permanent: true,
      });
      expect(await failure(target.readFile('acks/folder.err'))).toMatchObject({
        code: 'ACK_FILE_NOT_REGULAR',
        permanent: true,
      });
      const tooLarge = await failure(target.readFile('acks/big.err', { maxBytes: 4_096 }));
      expect(tooLarge).toMatchObject({ code: 'ACK_FILE_TOO_LARGE', permanent: true });
      expect(tooLarge.message).toContain('acks/big.err');
      expect(await target.readFile('acks/fits.err', { maxBytes: REAL.length })).toEqual(REAL);
      expect(
        await failure(target.readFile('acks/fits.err', { listed: { size: REAL.length + 1, mtimeMs: 0 } })),
      ).toMatchObject({ code: 'ACK_FILE_NOT_REGULAR' });
    } finally {
      await target.close();
    }
  });
});
