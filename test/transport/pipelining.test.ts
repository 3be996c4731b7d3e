import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { SftpPoolStats, Target, TargetConfigInput } from '../../src/transport/index.ts';
import { sftpTargetVia, uniqueFolder, useSshdBehindProxy } from './helpers.ts';

/*
 * Through a link with a 100 ms round trip, one connection: N operations in flight must cost about one
 * operation's round trips, not N times as many. Each case runs a control with inflightPerConnection: 1
 * (one at a time, as before), which must take several times longer: the same measurement, able to fail.
 */
const ONE_WAY_MS = 50;
const ROUND_TRIP_MS = 2 * ONE_WAY_MS;
const IN_FLIGHT = 8;

describe('pipelined operations on one connection over a 100 ms round trip', () => {
  const link = useSshdBehindProxy(ONE_WAY_MS);

  const throughProxy = (folder: string, overrides: Partial<TargetConfigInput>): Target =>
    sftpTargetVia(link.proxy, link.sshd, folder, overrides);

  async function timeUploads(folder: string, inflight: number, label: string): Promise<{ one: number; all: number }> {
    const target = throughProxy(folder, { pool: { size: 1, inflightPerConnection: inflight } });
    try {
      await target.check();
      const bytes = (i: number) => Buffer.from(`<invoice n="${i}" label="${label}">${'x'.repeat(2_000 + i)}</invoice>`);
      let started = performance.now();
      await target.upload({ relativePath: 'single.xml', bytes: bytes(-1), onExisting: 'fail' });
      const one = performance.now() - started;
      started = performance.now();
      await Promise.all(
        Array.from({ length: IN_FLIGHT }, (_, i) =>
          target.upload({ relativePath: `f${i}.xml`, bytes: bytes(i), onExisting: 'fail' }),
        ),
      );
      const all = performance.now() - started;
      expect((target.stats() as SftpPoolStats).connectsTotal).toBe(1);
      const landed = readdirSync(join(link.sshd.root, folder)).sort();
      expect(landed).toEqual(['single.xml', ...Array.from({ length: IN_FLIGHT }, (_, i) => `f${i}.xml`)].sort());
      for (let i = 0; i < IN_FLIGHT; i++) {
        expect(readFileSync(join(link.sshd.root, folder, `f${i}.xml`)).equals(bytes(i))).toBe(true);
      }
      return { one, all };
    } finally {
      await target.close();
    }
  }

  it(`${IN_FLIGHT} uploads in flight on one connection overlap on the wire and each lands intact`, async () => {
    const loginsBefore = link.sshd.loginCount();
    const pipelined = await timeUploads(uniqueFolder('pipelined'), IN_FLIGHT, 'pipelined');
    const serial = await timeUploads(uniqueFolder('serial'), 1, 'serial');
    expect(link.sshd.loginCount() - loginsBefore).toBe(2);
    // An upload is 3 round trips (open | write+fstat+close | rename): at least 300 ms on this link.
    expect(pipelined.one).toBeGreaterThanOrEqual(3 * ROUND_TRIP_MS);
    // Overlapped: about one upload's round trips for all of them (2× leaves room for a loaded machine).
    expect(pipelined.all).toBeLessThan(2 * pipelined.one);
    // The control, one at a time: N uploads cost N uploads' round trips.
    expect(serial.all).toBeGreaterThan((IN_FLIGHT - 1) * 3 * ROUND_TRIP_MS);
  });

  it(`${IN_FLIGHT} reads in flight on one connection overlap too, each returning its own bytes`, async () => {
    const folder = uniqueFolder('reads');
    mkdirSync(join(link.sshd.root, folder), { recursive: true });
    const content = (i: number) => Buffer.from(`ack ${i} ${'y'.repeat(500 * i)}`);
    for (let i = 0; i < IN_FLIGHT; i++) writeFileSync(join(link.sshd.root, folder, `a${i}.ok`), content(i));
    const readAll = async (inflight: number): Promise<number> => {
      const target = throughProxy(folder, { pool: { size: 1, inflightPerConnection: inflight } });
      try {
        await target.check();
        const started = performance.now();
        const read = await Promise.all(Array.from({ length: IN_FLIGHT }, (_, i) => target.readFile(`a${i}.ok`)));
        const elapsed = performance.now() - started;
        for (const [i, bytes] of read.entries()) expect(bytes.equals(content(i))).toBe(true);
        return elapsed;
      } finally {
        await target.close();
      }
    };
    const pipelined = await readAll(IN_FLIGHT);
    const serial = await readAll(1);
    // A read is 3 round trips (lstat | open | fstat+read; the close is not waited for).
    expect(pipelined).toBeLessThan(2 * 3 * ROUND_TRIP_MS);
    expect(serial).toBeGreaterThan((IN_FLIGHT - 1) * 3 * ROUND_TRIP_MS);
  });

  it('lists a folder of 3,000 names without one round trip per page', async () => {
    const folder = uniqueFolder('listing');
    mkdirSync(join(link.sshd.root, folder), { recursive: true });
    const names = Array.from({ length: 3_000 }, (_, i) => `INV-${String(i).padStart(5, '0')}.ok`);
    for (const name of names) writeFileSync(join(link.sshd.root, folder, name), name);
    const listAll = async (inflight: number): Promise<{ elapsed: number; seen: string[] }> => {
      const target = throughProxy(folder, { pool: { size: 1, inflightPerConnection: inflight } });
      try {
        await target.check();
        const started = performance.now();
        const seen: string[] = [];
        for await (const entry of target.list('')) {
          expect(entry.size).toBe(entry.name.length);
          seen.push(entry.name);
        }
        return { elapsed: performance.now() - started, seen: seen.sort() };
      } finally {
        await target.close();
      }
    };
    const pipelined = await listAll(IN_FLIGHT);
    const serial = await listAll(1);
    expect(pipelined.seen).toEqual(names);
    expect(serial.seen).toEqual(names);
    // OpenSSH answers a READDIR with up to 100 names: 30 pages, 30+ round trips when asked one by one.
    const pages = names.length / 100;
    expect(serial.elapsed).toBeGreaterThan(pages * ROUND_TRIP_MS);
    // Pipelined, the link's waits overlap; what is left is mostly the server's and our own work per name.
    expect(pipelined.elapsed).toBeLessThan(serial.elapsed / 2);
  });
});
