import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Target, TargetConfigInput, TransportHooks } from '../../src/transport/index.ts';
import { startLyingSftpServer, type LyingSftpServer } from '../support/lying-sftp-server.ts';
import { failure, lyingTarget } from './helpers.ts';

/**
 * The atomic upload's promises one by one, in-process against the scriptable SFTP server (so the
 * mutation run sees every branch): what an error says and whether Rossum retries it, which rename
 * is sent, folders created or not, and a refused rename never taken for an existing file.
 */

let counter = 0;
function targetOn(
  server: LyingSftpServer,
  overrides: Partial<TargetConfigInput> = {},
  metrics?: TransportHooks,
): { target: Target; dir: string } {
  counter++;
  const dir = `case-${counter}`;
  const target = lyingTarget(server, dir, overrides, metrics);
  return { target, dir };
}

async function using<T>(target: Target, body: () => Promise<T>): Promise<T> {
  try {
    return await body();
  } finally {
    await target.close();
  }
}

const hostOf = (server: LyingSftpServer): string => `127.0.0.1:${server.port}`;

describe('errors say where, what and whether to retry', () => {
  let short: LyingSftpServer;
  let withoutPosix: LyingSftpServer;
  beforeAll(async () => {
    short = await startLyingSftpServer({ offerPosixRename: true, shortWriteBytes: 1 });
    withoutPosix = await startLyingSftpServer({ offerPosixRename: false });
  });
  afterAll(async () => {
    await short?.stop();
    await withoutPosix?.stop();
  });

  it('a short write is SIZE_MISMATCH, retryable (the next attempt may store it whole), naming host and path', async () => {
    const { target } = targetOn(short);
    const error = await using(target, () =>
      failure(target.upload({ relativePath: 'S.csv', bytes: Buffer.from('abcdef'), onExisting: 'fail' })),
    );
    expect(error).toMatchObject({
      code: 'SIZE_MISMATCH',
      permanent: false,
      path: 'S.csv',
      location: { host: hostOf(short) },
    });
    expect(error.message).toBe(
      `upload of S.csv to ${hostOf(short)}: the server stored 5 bytes of 6; the file was not published`,
    );
  });

  it('upload.rename: posix without the extension is UNSUPPORTED and permanent, naming the host and what is missing', async () => {
    const { target } = targetOn(withoutPosix, { upload: { rename: 'posix' } });
    const error = await using(target, () =>
      failure(target.upload({ relativePath: 'P.csv', bytes: Buffer.from('p\n'), onExisting: 'overwrite' })),
    );
    expect(error).toMatchObject({
      code: 'UNSUPPORTED',
      permanent: true,
      path: 'P.csv',
      location: { host: hostOf(withoutPosix) },
      message: `${hostOf(withoutPosix)} does not offer posix-rename@openssh.com, which upload.rename: posix requires`,
    });
  });

  it('onExisting: fail names the server the file already exists on', async () => {
    const { target, dir } = targetOn(withoutPosix);
    writeFileSync(join(withoutPosix.root, dir, 'F.csv'), 'old\n');
    const error = await using(target, () =>
      failure(target.upload({ relativePath: 'F.csv', bytes: Buffer.from('new\n'), onExisting: 'fail' })),
    );
    expect(error).toMatchObject({ code: 'TARGET_EXISTS', permanent: true });
    expect(error.message).toBe(
      `F.csv already exists on ${hostOf(withoutPosix)} and the policy is onExisting: fail; nothing was changed`,
    );
    expect(readFileSync(join(withoutPosix.root, dir, 'F.csv'), 'utf8')).toBe('old\n');
  });
});

describe('the rename sent', () => {
  let server: LyingSftpServer;
  beforeAll(async () => {
    server = await startLyingSftpServer({ offerPosixRename: true });
  });
  afterAll(async () => server?.stop());

  it('upload.rename: plain uses remove + rename even when the server offers posix-rename', async () => {
    const { target, dir } = targetOn(server, { upload: { rename: 'plain' } });
    await using(target, async () => {
      await target.upload({ relativePath: 'R.csv', bytes: Buffer.from('1\n'), onExisting: 'overwrite' });
      await target.upload({ relativePath: 'R.csv', bytes: Buffer.from('2\n'), onExisting: 'overwrite' });
    });
    const mine = server.renames.filter((rename) => rename.to === `/${dir}/R.csv`);
    // The second: a rename refused by the existing file, then remove + rename.
    expect(mine.map((rename) => rename.kind)).toEqual(['rename', 'rename', 'rename']);
    expect(readFileSync(join(server.root, dir, 'R.csv'), 'utf8')).toBe('2\n');
  });

  it('the temp name sits beside the file: the final name, a dot prefix, 8 random hex digits and .part', async () => {
    const { target, dir } = targetOn(server);
    await using(target, () =>
      target.upload({ relativePath: 'T.csv', bytes: Buffer.from('t\n'), onExisting: 'overwrite' }),
    );
    const [rename] = server.renames.filter((entry) => entry.to === `/${dir}/T.csv`);
    expect(rename?.from).toMatch(new RegExp(`^/${dir}/\\.T\\.csv\\.[0-9a-f]{8}\\.part$`));
  });
});

describe('missing folders', () => {
  let server: LyingSftpServer;
  beforeAll(async () => {
    server = await startLyingSftpServer({ offerPosixRename: true });
  });
  afterAll(async () => server?.stop());

  it('createDirs (the default) makes the folders of the path; createDirs: false refuses and creates nothing', async () => {
    const created = targetOn(server);
    await using(created.target, () =>
      created.target.upload({ relativePath: 'a/b/X.csv', bytes: Buffer.from('x\n'), onExisting: 'fail' }),
    );
    expect(readFileSync(join(server.root, created.dir, 'a/b/X.csv'), 'utf8')).toBe('x\n');

    const refused = targetOn(server, { upload: { createDirs: false } });
    const error = await using(refused.target, () =>
      failure(refused.target.upload({ relativePath: 'a/b/X.csv', bytes: Buffer.from('x\n'), onExisting: 'fail' })),
    );
    expect(error.code).not.toBe('TARGET_EXISTS');
    expect(readdirSync(join(server.root, refused.dir))).toEqual([]);
  });

  it('with a tempDir, the final folder is created at the rename; with createDirs: false the rename fails and the temp is removed', async () => {
    const created = targetOn(server, { upload: { tempDir: '.incoming' } });
    await using(created.target, () =>
      created.target.upload({ relativePath: 'new/Y.csv', bytes: Buffer.from('y\n'), onExisting: 'overwrite' }),
    );
    expect(readFileSync(join(server.root, created.dir, 'new/Y.csv'), 'utf8')).toBe('y\n');

    const refused = targetOn(server, { upload: { tempDir: '.incoming', createDirs: false } });
    mkdirSync(join(server.root, refused.dir, '.incoming'));
    const error = await using(refused.target, () =>
      failure(refused.target.upload({ relativePath: 'new/Y.csv', bytes: Buffer.from('y\n'), onExisting: 'fail' })),
    );
    expect(error.code).not.toBe('TARGET_EXISTS');
    expect(existsSync(join(server.root, refused.dir, 'new'))).toBe(false);
    expect(readdirSync(join(server.root, refused.dir, '.incoming'))).toEqual([]);
  });
});

describe('a refused rename', () => {
  let server: LyingSftpServer;
  beforeAll(async () => {
    server = await startLyingSftpServer({ offerPosixRename: false, denyRenames: true });
  });
  afterAll(async () => server?.stop());

  it.each(['fail', 'version', 'overwrite'] as const)(
    'onExisting: %s reports the refusal (not "already exists"), publishes nothing and removes the temp file',
    async (onExisting) => {
      const { target, dir } = targetOn(server);
      const error = await using(target, () =>
        failure(target.upload({ relativePath: 'D.csv', bytes: Buffer.from('d\n'), onExisting })),
      );
      expect(error.code).not.toBe('TARGET_EXISTS');
      expect(error.message).toMatch(/rename refused|permission/i);
      expect(readdirSync(join(server.root, dir))).toEqual([]);
    },
  );
});

/** A lying server started for one test, stopped once its describe block is done. */
function serversPerBlock(): (options: Parameters<typeof startLyingSftpServer>[0]) => Promise<LyingSftpServer> {
  const servers: LyingSftpServer[] = [];
  afterAll(async () => {
    for (const started of servers) await started.stop();
  });
  return async (options) => {
    const started = await startLyingSftpServer(options);
    servers.push(started);
    return started;
  };
}

describe('a file over one write request', () => {
  const content = Buffer.from(Array.from({ length: 600_000 }, (_, i) => (i * 7919) % 251));
  const server = serversPerBlock();

  it('on an OpenSSH server (auto) keeps 16 writes outstanding; the size is checked only once every write was answered', async () => {
    // Writes answered 20 ms late, FSTAT at once: an fstat sent before the writes were answered would see a short file.
    const openssh = await server({ offerPosixRename: true, ident: 'OpenSSH_9.2p1', writeReplyDelayMs: 20 });
    const { target, dir } = targetOn(openssh);
    await using(target, () => target.upload({ relativePath: 'big.pdf', bytes: content, onExisting: 'fail' }));
    expect(readFileSync(join(openssh.root, dir, 'big.pdf')).equals(content)).toBe(true);
    expect(openssh.writes.received).toBe(Math.ceil(content.length / 31_952));
    expect(openssh.writes.maxOutstanding).toBe(16);
    expect(readdirSync(join(openssh.root, dir))).toEqual(['big.pdf']);
  });

  it('on a server that is not OpenSSH (auto) writes one request at a time; writesInFlight: 4 keeps 4 outstanding', async () => {
    const other = await server({ offerPosixRename: true, writeReplyDelayMs: 5 });
    const { target, dir } = targetOn(other);
    await using(target, () => target.upload({ relativePath: 'one.pdf', bytes: content, onExisting: 'fail' }));
    expect(readFileSync(join(other.root, dir, 'one.pdf')).equals(content)).toBe(true);
    expect(other.writes.maxOutstanding).toBe(1);

    const four = targetOn(other, { upload: { writesInFlight: 4 } });
    await using(four.target, () =>
      four.target.upload({ relativePath: 'four.pdf', bytes: content, onExisting: 'fail' }),
    );
    expect(readFileSync(join(other.root, four.dir, 'four.pdf')).equals(content)).toBe(true);
    expect(other.writes.maxOutstanding).toBe(4);
  });

  it('a write refused in the middle fails the upload with the server’s reason; nothing is published and the temp file is removed', async () => {
    const full = await server({ offerPosixRename: true, ident: 'OpenSSH_9.2p1', failWriteAtOffset: 4 * 31_952 });
    const { target, dir } = targetOn(full);
    const error = await using(target, () =>
      failure(target.upload({ relativePath: 'refused.pdf', bytes: content, onExisting: 'fail' })),
    );
    expect(error.message).toContain('no space left on device');
    expect(readdirSync(join(full.root, dir))).toEqual([]);
  });
});

describe('a streamed upload and its server’s silence', () => {
  const content = Buffer.from(Array.from({ length: 200_000 }, (_, i) => (i * 31) % 253));
  const server = serversPerBlock();

  it('a streamed upload whose server stops answering fails after operationTimeoutMs, retryable, naming host and path', async () => {
    const silent = await server({ offerPosixRename: true, writeReplyDelayMs: 60_000 });
    const { target } = targetOn(silent, { pool: { operationTimeoutMs: 300 } });
    async function* chunks(): AsyncGenerator<Buffer> {
      yield content.subarray(0, 1000);
    }
    const started = Date.now();
    const error = await using(target, () =>
      failure(target.upload({ relativePath: 'stalled.pdf', stream: chunks(), onExisting: 'fail' })),
    );
    // Connecting, then 300 ms of silence and the check's period (a fraction of it): well under 2 s.
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(error.code).toBe('OPERATION_TIMEOUT');
    expect(error.permanent).toBe(false);
    expect(error.message).toBe(
      `upload on ${hostOf(silent)} (stalled.pdf): no answer within 300 ms; the connection was dropped`,
    );
  });

  it('time spent waiting for a slow source does not count against the server, and the check stops with the upload', async () => {
    const prompt = await server({ offerPosixRename: true });
    let connects = 0;
    const { target, dir } = targetOn(
      prompt,
      { pool: { operationTimeoutMs: 300 } },
      { onConnect: () => void connects++ },
    );
    async function* slowly(): AsyncGenerator<Buffer> {
      yield content.subarray(0, 50_000);
      await new Promise((resolve) => setTimeout(resolve, 700));
      yield content.subarray(50_000);
    }
    await using(target, async () => {
      await target.upload({ relativePath: 'slow.pdf', stream: slowly(), onExisting: 'fail' });
      // A check left running after the upload would drop the pooled connection once 300 ms passed.
      await new Promise((resolve) => setTimeout(resolve, 700));
      await target.upload({ relativePath: 'after.txt', bytes: Buffer.from('after'), onExisting: 'fail' });
    });
    expect(readFileSync(join(prompt.root, dir, 'slow.pdf')).equals(content)).toBe(true);
    expect(connects).toBe(1);
  });
});

describe('a try whose connection died after its temp file was created', () => {
  const server = serversPerBlock();
  const bytes = Buffer.from('Belegnummer;Betrag\r\nINV-1;100,00\r\n');

  it('the retry on a fresh connection removes the temp file first, and the upload says nothing is left', async () => {
    const dropping = await server({ offerPosixRename: true, dropConnectionAtFirst: 'write' });
    let connects = 0;
    const { target, dir } = targetOn(dropping, {}, { onConnect: () => void connects++ });
    const result = await using(target, () => target.upload({ relativePath: 'late.csv', bytes, onExisting: 'fail' }));
    expect(connects).toBe(2);
    expect(result).toEqual({ remotePath: 'late.csv', bytes: bytes.length });
    expect(readdirSync(join(dropping.root, dir))).toEqual(['late.csv']);
  });

  it('a connection that died before its OPEN created anything leaves nothing to sweep (the removal finds no file)', async () => {
    const dropping = await server({ offerPosixRename: true, dropConnectionAtFirst: 'open' });
    let connects = 0;
    const { target, dir } = targetOn(dropping, {}, { onConnect: () => void connects++ });
    const result = await using(target, () => target.upload({ relativePath: 'early.csv', bytes, onExisting: 'fail' }));
    expect(connects).toBe(2);
    expect(result).toEqual({ remotePath: 'early.csv', bytes: bytes.length });
    expect(readdirSync(join(dropping.root, dir))).toEqual(['early.csv']);
  });

  it('when that removal is refused, the upload still succeeds and says a temp file may be left; a sweep removes it', async () => {
    const dropping = await server({ offerPosixRename: true, dropConnectionAtFirst: 'write', refuseRemoves: 1 });
    const { target, dir } = targetOn(dropping);
    await using(target, async () => {
      const result = await target.upload({ relativePath: 'late.csv', bytes, onExisting: 'fail' });
      expect(result).toEqual({ remotePath: 'late.csv', bytes: bytes.length, mayHaveLeftTemps: true });
      const [temp, ...none] = readdirSync(join(dropping.root, dir)).filter((name) => name !== 'late.csv');
      expect(none).toEqual([]);
      expect(temp).toMatch(/^\.late\.csv\.[0-9a-f]{8}\.part$/);
      expect(await target.removeLeftoverTemps?.('late.csv')).toEqual([temp]);
    });
    expect(readdirSync(join(dropping.root, dir))).toEqual(['late.csv']);
  });
});
