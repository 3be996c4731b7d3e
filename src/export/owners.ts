import { hostname } from 'node:os';
import { setTimeout as wait } from 'node:timers/promises';

/**
 * Whether the process behind a lease owner (`host:pid:random`) is gone: its lease expired, or it ran on
 * this host and its pid has ended. An earlier life of our own pid (containers restart as pid 1) is gone too.
 */
export function ownerIsGone(owner: string, leaseExpiresAt: number | null, self: string, now = Date.now()): boolean {
  if (leaseExpiresAt !== null && leaseExpiresAt < now) return true;
  const parts = owner.split(':');
  if (parts.length < 3) return false;
  const pid = Number(parts[parts.length - 2]);
  const host = parts.slice(0, -2).join(':');
  if (host !== hostname() || !Number.isInteger(pid) || pid <= 0) return false;
  if (pid === process.pid) return owner !== self;
  try {
    process.kill(pid, 0);
    return false;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

/** Waits, or stops waiting early when the signal aborts (the caller checks `signal.aborted`). */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return wait(ms, undefined, signal ? { signal } : {}).catch(() => undefined);
}
