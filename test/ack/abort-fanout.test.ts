import { getEventListeners } from 'node:events';
import { describe, expect, it } from 'vitest';
import { AbortFanout } from '../../src/ack/abort-fanout.ts';

describe('AbortFanout', () => {
  it('puts one listener on the parent however many tasks run, and aborts the running ones with its reason', async () => {
    const parent = new AbortController();
    const fanout = new AbortFanout(parent.signal);
    let release!: () => void;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const seen: AbortSignal[] = [];
    const finished = await fanout.run(async (signal) => signal);
    const running = Array.from({ length: 40 }, () =>
      fanout.run(async (signal) => {
        seen.push(signal);
        signal.addEventListener('abort', () => undefined);
        await gate;
        return signal.aborted ? String(signal.reason) : 'not aborted';
      }),
    );
    expect(seen).toHaveLength(40);
    expect(getEventListeners(parent.signal, 'abort')).toHaveLength(1);
    expect(seen.every((signal) => getEventListeners(signal, 'abort').length === 1)).toBe(true);

    parent.abort('stopping');
    release();
    expect(await Promise.all(running)).toEqual(Array(40).fill('stopping'));
    // A task that had ended keeps its signal as it was.
    expect(finished.aborted).toBe(false);
    // After the stop, a new task starts aborted.
    expect(await fanout.run(async (signal) => [signal.aborted, signal.reason])).toEqual([true, 'stopping']);
  });
});
