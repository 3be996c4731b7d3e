import { describe, expect, it } from 'vitest';
import { FaultRig } from './rig.ts';

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe('the fault rig', () => {
  it('a run that ends early (failure, timeout) leaves no sshd, serve or acks process behind', async () => {
    const rig = await FaultRig.start({ ackDeadlineMs: 15_000, started: Date.now(), log: () => undefined });
    const pids = [rig.serve.pid, rig.acks.pid, rig.sshd.pid!];
    expect(pids.every(alive)).toBe(true);
    await FaultRig.abortAll();
    expect(pids.filter(alive)).toEqual([]);
  }, 240_000);
});
