import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { createConnection, type Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { sftpTarget, uniqueFolder, useSshd } from './helpers.ts';

/**
 * Asks the kernel, not Node: each TCP socket of this process connected to `port` is found through
 * /proc (socket inode → fd), handed to a perl child as its fd 3, and read back with getsockopt(TCP_NODELAY).
 */
function noDelayOfSocketsTo(port: number): number[] {
  const inodes = new Set<string>();
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = readFileSync(table, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.trim().split('\n').slice(1)) {
      const columns = line.trim().split(/\s+/);
      const remotePort = Number.parseInt((columns[2] as string).split(':')[1] as string, 16);
      const established = columns[3] === '01';
      if (remotePort === port && established) inodes.add(columns[9] as string);
    }
  }
  const values: number[] = [];
  for (const fd of readdirSync('/proc/self/fd')) {
    let link: string;
    try {
      link = readlinkSync(`/proc/self/fd/${fd}`);
    } catch {
      continue;
    }
    const inode = /^socket:\[(\d+)\]$/.exec(link)?.[1];
    if (!inode || !inodes.has(inode)) continue;
    const probe = spawnSync(
      'perl',
      [
        '-e',
        "use Socket qw(IPPROTO_TCP TCP_NODELAY); open(my $s, '+<&=', 3) or die $!; my $v = getsockopt($s, IPPROTO_TCP, TCP_NODELAY); defined $v or die $!; print unpack('i', $v);",
      ],
      { stdio: ['ignore', 'pipe', 'pipe', Number(fd)], encoding: 'utf8' },
    );
    if (probe.status !== 0) throw new Error(`getsockopt probe failed: ${probe.stderr}`);
    values.push(Number(probe.stdout) === 0 ? 0 : 1);
  }
  return values;
}

function plainSocket(host: string, port: number): Promise<Socket> {
  return new Promise((resolveSocket, rejectSocket) => {
    const socket = createConnection({ host, port }, () => resolveSocket(socket));
    socket.once('error', rejectSocket);
  });
}

describe('TCP_NODELAY', () => {
  const sshd = useSshd();

  it('every SSH socket the transport pool opens has TCP_NODELAY set in the kernel', async () => {
    const target = sftpTarget(sshd(), uniqueFolder('nodelay'), { pool: { size: 3 } });
    // A plain socket to the same port is the control: the probe must see Nagle still on for it.
    const control = await plainSocket(sshd().host, sshd().port);
    try {
      await target.check();
      await Promise.all(
        [1, 2, 3].map((n) =>
          target.upload({ relativePath: `f${n}.txt`, bytes: Buffer.from(`file ${n}`), onExisting: 'fail' }),
        ),
      );
      expect(target.stats().size).toBeGreaterThanOrEqual(2);
      const values = noDelayOfSocketsTo(sshd().port);
      expect(values.filter((value) => value === 0)).toHaveLength(1); // the control only
      expect(values.filter((value) => value === 1).length).toBe(target.stats().size);
    } finally {
      control.destroy();
      await target.close();
    }
  });
});
