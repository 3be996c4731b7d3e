import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { BridgeError, describeError } from '../../src/errors.ts';
import type { ExportReply } from '../../src/export/index.ts';
import { withDeadline } from '../../src/webhook/server.ts';

/**
 * The answer Rossum gets at the hook's deadline, driven on a fake clock: the export's own reply when it
 * is in time, else a 503 that promises the retry its result; an export that throws still gets an answer.
 * test/export/deadline.test.ts shows the same end to end with an upload really held at the deadline.
 */

const done: ExportReply = { statusCode: 200, outcome: 'exported', body: { messages: [] } } as ExportReply;

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

describe('withDeadline', () => {
  it('an export in time: its own reply, and no timer left behind', async () => {
    await expect(withDeadline(Promise.resolve(done), 1_000, 42)).resolves.toBe(done);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('an export still running at the deadline: 503 saying it continues and the retry gets its result', async () => {
    let finish: (reply: ExportReply) => void = () => undefined;
    const work = new Promise<ExportReply>((resolve) => {
      finish = resolve;
    });
    const answer = withDeadline(work, 1_500, 42);
    await vi.advanceTimersByTimeAsync(1_499);
    let settled = false;
    void answer.then(() => {
      settled = true;
    });
    await Promise.resolve();
    expect(settled).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    await expect(answer).resolves.toEqual({
      statusCode: 503,
      outcome: 'deadline',
      body: {
        messages: [
          {
            type: 'error',
            content:
              "Export of annotation 42 did not finish within 2 s; it continues in the background and Rossum's retry will get its result without a second upload",
          },
        ],
      },
    });
    finish(done);
  });

  it('an export that throws a permanent error: 200 with the reason (Rossum shows it, no retry)', async () => {
    const error = new BridgeError('TARGET_EXISTS', 'INV-1.xml already exists', { permanent: true });
    await expect(withDeadline(Promise.reject(error), 1_000, 42)).resolves.toEqual({
      statusCode: 200,
      outcome: 'failed',
      body: { messages: [{ type: 'error', content: `Export failed: ${describeError(error)}` }] },
    });
    expect(vi.getTimerCount()).toBe(0);
  });

  it('an export that throws anything else: 503, so Rossum retries', async () => {
    const transient = new BridgeError('CONNECTION_LOST', 'link down', { permanent: false });
    await expect(withDeadline(Promise.reject(transient), 1_000, 42)).resolves.toMatchObject({
      statusCode: 503,
      outcome: 'transient_error',
    });
    const bug = new Error('a bug');
    await expect(withDeadline(Promise.reject(bug), 1_000, 42)).resolves.toEqual({
      statusCode: 503,
      outcome: 'transient_error',
      body: { messages: [{ type: 'error', content: `Export failed: ${describeError(bug)}` }] },
    });
  });
});
