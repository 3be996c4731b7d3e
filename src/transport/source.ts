/**
 * An upload's streamed content, read at most once. It remembers whether reading began (a retry would
 * find the stream partly consumed) and what the stream itself threw, so a target neither retries a
 * consumed stream nor relabels the source's own failure (a download cut off, a size limit) as its own.
 * It also tells since when the upload has been busy on its side (not waiting for the source), so a
 * timeout can count the server's time without counting a slow download.
 */
export class StreamedSource {
  started = false;
  failure: unknown = undefined;
  /** Since when the upload has been working on its own side; null while it waits for the source. */
  busySince: number | null = null;

  constructor(private readonly source: AsyncIterable<Uint8Array>) {}

  async *chunks(): AsyncGenerator<Buffer> {
    if (this.started) throw new Error('an upload stream can be read only once');
    this.started = true;
    const iterator = this.source[Symbol.asyncIterator]();
    let done = false;
    try {
      for (;;) {
        this.busySince = null;
        let result: IteratorResult<Uint8Array>;
        try {
          result = await iterator.next();
        } catch (error) {
          done = true;
          this.failure = error;
          throw error;
        } finally {
          this.busySince = Date.now();
        }
        if (result.done) {
          done = true;
          return;
        }
        const chunk = result.value;
        yield Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
      }
    } finally {
      // The upload stopped reading early (it failed): let the source let go of what it holds.
      if (!done) await iterator.return?.();
    }
  }

  /** The stream's own failure when there is one, else `error` as the target saw it. */
  explain(error: unknown): unknown {
    return this.failure ?? error;
  }
}
