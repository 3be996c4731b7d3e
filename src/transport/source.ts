/**
 * An upload's streamed content, read at most once. It remembers whether reading began (a retry would
 * find the stream partly consumed) and what the stream itself threw, so a target neither retries a
 * consumed stream nor relabels the source's own failure (a download cut off, a size limit) as its own.
 */
export class StreamedSource {
  started = false;
  failure: unknown = undefined;

  constructor(private readonly source: AsyncIterable<Uint8Array>) {}

  async *chunks(): AsyncGenerator<Buffer> {
    if (this.started) throw new Error('an upload stream can be read only once');
    this.started = true;
    try {
      for await (const chunk of this.source) {
        yield Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
      }
    } catch (error) {
      this.failure = error;
      throw error;
    }
  }

  /** The stream's own failure when there is one, else `error` as the target saw it. */
  explain(error: unknown): unknown {
    return this.failure ?? error;
  }
}
