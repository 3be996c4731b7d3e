/** Runs at most `concurrency` tasks at once; `idle()` waits until none is running or waiting. */
export class Limiter {
  private running = 0;
  private readonly waiting: Array<() => void> = [];
  private readonly settled = new Set<Promise<unknown>>();

  constructor(private readonly concurrency: number) {}

  run<T>(task: () => Promise<T>): Promise<T> {
    const result = (async () => {
      if (this.running >= this.concurrency) await new Promise<void>((resolve) => this.waiting.push(resolve));
      this.running++;
      try {
        return await task();
      } finally {
        this.running--;
        this.waiting.shift()?.();
      }
    })();
    const tracked = result.catch(() => undefined);
    this.settled.add(tracked);
    void tracked.finally(() => this.settled.delete(tracked));
    return result;
  }

  get size(): number {
    return this.settled.size;
  }

  async idle(): Promise<void> {
    while (this.settled.size > 0) await Promise.all([...this.settled]);
  }
}

export async function runLimited<T>(items: readonly T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) await work(items[next++] as T);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}
