/**
 * One abort listener on a long-lived signal, however many tasks run under it: each task gets a signal of
 * its own that aborts with the parent. Handing the parent itself to 64 concurrent reads put 64 listeners on
 * it (the SFTP pool listens while a task waits for a connection), and Node warned of a leak past 10.
 */
export class AbortFanout {
  private readonly children = new Set<AbortController>();

  constructor(private readonly parent: AbortSignal) {
    parent.addEventListener(
      'abort',
      () => {
        for (const child of this.children) child.abort(parent.reason);
        this.children.clear();
      },
      { once: true },
    );
  }

  /** Runs `task` with a signal that aborts when the parent does; the signal is let go when the task ends. */
  async run<T>(task: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const child = new AbortController();
    if (this.parent.aborted) child.abort(this.parent.reason);
    else this.children.add(child);
    try {
      return await task(child.signal);
    } finally {
      this.children.delete(child);
    }
  }
}
