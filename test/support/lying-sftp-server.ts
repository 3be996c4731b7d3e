import {
  closeSync,
  fchmodSync,
  fstatSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  renameSync,
  rmSync,
  statSync,
  unlinkSync,
  writeSync,
  existsSync,
  type Stats,
} from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, posix } from 'node:path';
import ssh2, { type Attributes, type Connection, type SFTPWrapper } from 'ssh2';
import { fingerprintOfKey } from '../../src/transport/index.ts';

const { Server, utils } = ssh2;
const STATUS = utils.sftp.STATUS_CODE;
const OPEN = utils.sftp.OPEN_MODE;

/**
 * An SFTP server (ssh2's server API over a real folder) that can misbehave in ways OpenSSH never does,
 * so the guarantees that only matter against other servers are exercised for real:
 * - `shortWriteBytes`: every WRITE stores that many bytes fewer than it was sent (and answers OK);
 * - `offerPosixRename`: whether the VERSION reply advertises `posix-rename@openssh.com`.
 * Every rename is recorded with the request the client used.
 */
export interface LyingSftpOptions {
  offerPosixRename: boolean;
  shortWriteBytes?: number;
  /** Every rename (plain or posix) is refused with PERMISSION_DENIED, as on a folder the user may write but not rename into. */
  denyRenames?: boolean;
  /** The server's SSH version string (after `SSH-2.0-`; default ssh2's own): `OpenSSH_9.2p1` passes for OpenSSH. */
  ident?: string;
  /** Each WRITE is answered this much later, so a client that pipelines has several outstanding. */
  writeReplyDelayMs?: number;
  /** The WRITE at this file offset is refused with FAILURE (nothing stored), as a server whose disk filled. */
  failWriteAtOffset?: number;
  /**
   * The server's first request of this kind is never answered: its connection ends instead. At `write` the OPEN
   * already created the file; at `open` no file was created.
   */
  dropConnectionAtFirst?: 'open' | 'write';
  /** The first this many REMOVE requests are refused with PERMISSION_DENIED, and the file stays. */
  refuseRemoves?: number;
}

/** What the server saw of the WRITE requests: how many, and most outstanding (received, not answered) at once. */
export interface WriteStats {
  received: number;
  maxOutstanding: number;
}

export interface RecordedRename {
  kind: 'rename' | 'posix-rename';
  from: string;
  to: string;
  /** Permission bits the file had when it was renamed, i.e. when it became visible under `to`. */
  modeAtRename: number;
}

export interface LyingSftpServer {
  readonly port: number;
  /** The folder on local disk that the SFTP path `/` maps to. */
  readonly root: string;
  readonly username: string;
  readonly password: string;
  /** `SHA256:...` of the server's host key (pin it like production does). */
  readonly hostKeyFingerprint: string;
  readonly renames: RecordedRename[];
  readonly writes: WriteStats;
  /** `sftp://user@127.0.0.1:PORT/<dir>` */
  url(dir: string): string;
  stop(): Promise<void>;
}

const USERNAME = 'liar';
const PASSWORD = 'lying-server-password';

export async function startLyingSftpServer(options: LyingSftpOptions): Promise<LyingSftpServer> {
  const root = mkdtempSync(join(tmpdir(), 'bridge-lying-sftp-'));
  // ecdsa, not ed25519: ssh2's ed25519 keygen writes a key its own parser refuses about 1 time in 250.
  const keys = utils.generateKeyPairSync('ecdsa', { bits: 256 });
  const renames: RecordedRename[] = [];
  const writes: WriteStats = { received: 0, maxOutstanding: 0 };
  const connections = new Set<Connection>();
  // Server-wide, so a fault happens once however many connections the client opens.
  const scripted = {
    dropAt: options.dropConnectionAtFirst,
    removesToRefuse: options.refuseRemoves ?? 0,
  };
  const server = new Server(
    { hostKeys: [keys.private], ...(options.ident ? { ident: options.ident } : {}) },
    (client) => {
      connections.add(client);
      client.on('close', () => connections.delete(client));
      client.on('error', () => undefined);
      client.on('authentication', (context) => {
        if (context.method === 'password' && context.username === USERNAME && context.password === PASSWORD)
          context.accept();
        else context.reject(['password']);
      });
      client.on('ready', () => {
        client.on('session', (acceptSession) => {
          const session = acceptSession();
          session.on('sftp', (acceptSftp) => {
            const sftp = acceptSftp();
            if (options.offerPosixRename) advertisePosixRename(sftp);
            serveFolder(sftp, root, options, renames, writes, scripted, () => client.end());
          });
        });
      });
    },
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    root,
    username: USERNAME,
    password: PASSWORD,
    hostKeyFingerprint: fingerprintOfKey(keys.public),
    renames,
    writes,
    url: (dir) => `sftp://${USERNAME}@127.0.0.1:${port}/${dir.replace(/^\/+/, '')}`,
    async stop() {
      for (const connection of connections) connection.end();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      rmSync(root, { recursive: true, force: true });
    },
  };
}

/**
 * ssh2's server always answers INIT with a bare VERSION 3 packet; OpenSSH appends its extensions.
 * The VERSION packet is the first thing the SFTP channel sends, so it is swapped for one carrying
 * `posix-rename@openssh.com` "1" on this channel only (a proxy of the shared protocol object).
 */
function advertisePosixRename(sftp: SFTPWrapper): void {
  const internals = sftp as unknown as { _protocol: { channelData(id: number, data: Buffer): void } };
  const protocol = internals._protocol;
  let versionSent = false;
  const withExtension = versionPacket([['posix-rename@openssh.com', '1']]);
  internals._protocol = new Proxy(protocol, {
    get(target, property) {
      if (property === 'channelData') {
        return (id: number, data: Buffer) => {
          if (!versionSent && data.length === 9 && data[4] === 2) {
            versionSent = true;
            target.channelData(id, withExtension);
            return;
          }
          target.channelData(id, data);
        };
      }
      const value = Reflect.get(target, property, target) as unknown;
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
}

function versionPacket(extensions: Array<[string, string]>): Buffer {
  const parts: Buffer[] = [Buffer.from([2, 0, 0, 0, 3])];
  for (const [name, data] of extensions) parts.push(sshString(Buffer.from(name)), sshString(Buffer.from(data)));
  const body = Buffer.concat(parts);
  const length = Buffer.alloc(4);
  length.writeUInt32BE(body.length);
  return Buffer.concat([length, body]);
}

function sshString(bytes: Buffer): Buffer {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(bytes.length);
  return Buffer.concat([length, bytes]);
}

function readSshStrings(data: Buffer, count: number): string[] | null {
  const out: string[] = [];
  let offset = 0;
  for (let i = 0; i < count; i++) {
    if (offset + 4 > data.length) return null;
    const length = data.readUInt32BE(offset);
    offset += 4;
    if (offset + length > data.length) return null;
    out.push(data.subarray(offset, offset + length).toString('utf8'));
    offset += length;
  }
  return out;
}

function toAttributes(stats: Stats): Attributes {
  return {
    mode: stats.mode,
    uid: stats.uid,
    gid: stats.gid,
    size: stats.size,
    atime: Math.floor(stats.atimeMs / 1000),
    mtime: Math.floor(stats.mtimeMs / 1000),
  };
}

function serveFolder(
  sftp: SFTPWrapper,
  root: string,
  options: LyingSftpOptions,
  renames: RecordedRename[],
  writes: WriteStats,
  scripted: { dropAt: 'open' | 'write' | undefined; removesToRefuse: number },
  dropConnection: () => void,
): void {
  let outstandingWrites = 0;
  const files = new Map<string, number>();
  const dirs = new Map<string, { dir: string; entries: string[] | null }>();
  let nextHandle = 1;
  const newHandle = (): Buffer => {
    const handle = Buffer.alloc(4);
    handle.writeUInt32BE(nextHandle++);
    return handle;
  };
  const virtual = (path: string): string => posix.resolve('/', path);
  const local = (path: string): string => join(root, virtual(path));
  const fail = (reqId: number, error: unknown): void => {
    const code = (error as NodeJS.ErrnoException).code;
    const status =
      code === 'ENOENT' ? STATUS.NO_SUCH_FILE : code === 'EACCES' ? STATUS.PERMISSION_DENIED : STATUS.FAILURE;
    sftp.status(reqId, status, (error as Error).message);
  };
  const attempt = (reqId: number, action: () => void): void => {
    try {
      action();
    } catch (error) {
      fail(reqId, error);
    }
  };
  const plainRename = (from: string, to: string): void => {
    // SFTP v3 (and OpenSSH) never replace an existing file on a plain rename.
    if (existsSync(to)) throw Object.assign(new Error('target exists'), { code: 'EEXIST' });
    renameSync(from, to);
  };

  sftp.on('REALPATH', (reqId, path) => {
    const resolved = virtual(path);
    sftp.name(reqId, [{ filename: resolved, longname: resolved, attrs: {} as Attributes }]);
  });
  sftp.on('STAT', (reqId, path) => attempt(reqId, () => sftp.attrs(reqId, toAttributes(statSync(local(path))))));
  sftp.on('LSTAT', (reqId, path) => attempt(reqId, () => sftp.attrs(reqId, toAttributes(lstatSync(local(path))))));
  sftp.on('MKDIR', (reqId, path) =>
    attempt(reqId, () => {
      mkdirSync(local(path));
      sftp.status(reqId, STATUS.OK);
    }),
  );
  sftp.on('OPEN', (reqId, path, flags) =>
    attempt(reqId, () => {
      if (scripted.dropAt === 'open') {
        scripted.dropAt = undefined;
        return dropConnection();
      }
      let mode = 'r';
      if (flags & OPEN.WRITE) mode = flags & OPEN.EXCL ? 'wx' : flags & OPEN.APPEND ? 'a' : 'w';
      if (flags & OPEN.WRITE && !(flags & OPEN.TRUNC) && !(flags & OPEN.EXCL) && existsSync(local(path))) mode = 'r+';
      const fd = openSync(local(path), mode);
      const handle = newHandle();
      files.set(handle.toString('hex'), fd);
      sftp.handle(reqId, handle);
    }),
  );
  const write = (reqId: number, handle: Buffer, offset: number, data: Buffer): void =>
    attempt(reqId, () => {
      const fd = files.get(handle.toString('hex'));
      if (fd === undefined) return sftp.status(reqId, STATUS.FAILURE, 'bad handle');
      if (offset === options.failWriteAtOffset) return sftp.status(reqId, STATUS.FAILURE, 'no space left on device');
      const stored = Math.max(0, data.length - (options.shortWriteBytes ?? 0));
      writeSync(fd, data, 0, stored, offset);
      sftp.status(reqId, STATUS.OK);
    });
  sftp.on('WRITE', (reqId, handle, offset, data) => {
    if (scripted.dropAt === 'write') {
      scripted.dropAt = undefined;
      dropConnection();
      return;
    }
    writes.received++;
    writes.maxOutstanding = Math.max(writes.maxOutstanding, ++outstandingWrites);
    const answer = (): void => {
      outstandingWrites--;
      write(reqId, handle, offset, data);
    };
    if (options.writeReplyDelayMs) setTimeout(answer, options.writeReplyDelayMs);
    else answer();
  });
  sftp.on('FSTAT', (reqId, handle) =>
    attempt(reqId, () => {
      const fd = files.get(handle.toString('hex'));
      if (fd === undefined) return sftp.status(reqId, STATUS.FAILURE, 'bad handle');
      sftp.attrs(reqId, toAttributes(fstatSync(fd)));
    }),
  );
  sftp.on('FSETSTAT', (reqId, handle, attrs) =>
    attempt(reqId, () => {
      const fd = files.get(handle.toString('hex'));
      if (fd === undefined) return sftp.status(reqId, STATUS.FAILURE, 'bad handle');
      if (attrs.mode !== undefined) fchmodSync(fd, attrs.mode & 0o7777);
      sftp.status(reqId, STATUS.OK);
    }),
  );
  sftp.on('CLOSE', (reqId, handle) =>
    attempt(reqId, () => {
      const key = handle.toString('hex');
      const fd = files.get(key);
      if (fd !== undefined) closeSync(fd);
      files.delete(key);
      dirs.delete(key);
      sftp.status(reqId, STATUS.OK);
    }),
  );
  sftp.on('OPENDIR', (reqId, path) =>
    attempt(reqId, () => {
      const dir = local(path);
      const entries = readdirSync(dir);
      const handle = newHandle();
      dirs.set(handle.toString('hex'), { dir, entries });
      sftp.handle(reqId, handle);
    }),
  );
  sftp.on('READDIR', (reqId, handle) =>
    attempt(reqId, () => {
      const key = handle.toString('hex');
      const listing = dirs.get(key);
      if (listing === undefined) return sftp.status(reqId, STATUS.FAILURE, 'bad handle');
      if (listing.entries === null) return sftp.status(reqId, STATUS.EOF);
      const { dir, entries } = listing;
      dirs.set(key, { dir, entries: null });
      return sftp.name(
        reqId,
        entries.map((entry) => ({
          filename: entry,
          longname: entry,
          attrs: toAttributes(lstatSync(join(dir, entry))),
        })),
      );
    }),
  );
  sftp.on('REMOVE', (reqId, path) =>
    attempt(reqId, () => {
      if (scripted.removesToRefuse > 0) {
        scripted.removesToRefuse--;
        return sftp.status(reqId, STATUS.PERMISSION_DENIED, 'remove refused');
      }
      unlinkSync(local(path));
      sftp.status(reqId, STATUS.OK);
    }),
  );
  sftp.on('RENAME', (reqId, from, to) =>
    attempt(reqId, () => {
      if (options.denyRenames) return sftp.status(reqId, STATUS.PERMISSION_DENIED, 'rename refused');
      renames.push({
        kind: 'rename',
        from: virtual(from),
        to: virtual(to),
        modeAtRename: statSync(local(from)).mode & 0o7777,
      });
      plainRename(local(from), local(to));
      sftp.status(reqId, STATUS.OK);
    }),
  );
  sftp.on('EXTENDED', (reqId, name, data) =>
    attempt(reqId, () => {
      const paths = name === 'posix-rename@openssh.com' && options.offerPosixRename ? readSshStrings(data, 2) : null;
      if (paths === null) return sftp.status(reqId, STATUS.OP_UNSUPPORTED, `${name} is not supported`);
      const [from, to] = paths as [string, string];
      if (options.denyRenames) return sftp.status(reqId, STATUS.PERMISSION_DENIED, 'rename refused');
      renames.push({
        kind: 'posix-rename',
        from: virtual(from),
        to: virtual(to),
        modeAtRename: statSync(local(from)).mode & 0o7777,
      });
      renameSync(local(from), local(to));
      return sftp.status(reqId, STATUS.OK);
    }),
  );
}
