import { readdirSync, readFileSync, statSync, watch, type FSWatcher } from 'node:fs';
import { join } from 'node:path';
import { BATCH_NAME, FINAL_NAME, SCAN_NAME, TEMP_NAME } from './documents.ts';

/**
 * What the ERP would read: every file under a final name in the inbound folder, read as soon as it
 * appears or changes, must be complete (exactly the expected bytes), and a data file whose mapping
 * uploads the original document must find that document already complete beside it. File events (inotify) name what
 * changed at once; a full look every 250 ms catches anything they missed. Stat-ing thousands of files
 * every few milliseconds instead would starve this process, which also runs the TCP proxy and the
 * simulated Rossum.
 */
export class InboundObserver {
  /** Files seen under a final name with other bytes than expected (must stay empty). */
  readonly partialSeen: string[] = [];
  /**
   * Batch files as first seen: their bytes cannot be known in advance (which documents a batch holds depends on
   * timing), so the analysis holds each first view to the final file and the ledger's hash.
   */
  readonly batchViews = new Map<string, Buffer>();
  private readonly seen = new Map<string, string>();
  private readonly changed = new Set<string>();
  private readonly watcher: FSWatcher;
  private observing = true;
  private readonly loop: Promise<void>;

  constructor(
    private readonly inboundDir: string,
    private readonly expected: ReadonlyMap<number, Buffer>,
    private readonly scans: ReadonlyMap<number, Buffer> = new Map(),
  ) {
    this.watcher = watch(inboundDir, (_event, name) => {
      if (name) this.changed.add(name.toString());
    });
    this.loop = this.observe();
  }

  /** Stops after one last look at every name (what changed since the last full look is not missed). */
  async stop(): Promise<void> {
    this.observing = false;
    await this.loop;
    for (const name of [...this.changed, ...this.listing()]) this.inspect(name);
    this.changed.clear();
  }

  private async observe(): Promise<void> {
    let fullLookAt = 0;
    while (this.observing) {
      const names = [...this.changed];
      this.changed.clear();
      for (const name of names) this.inspect(name);
      if (Date.now() >= fullLookAt) {
        fullLookAt = Date.now() + 250;
        for (const name of this.listing()) this.inspect(name);
      }
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
    this.watcher.close();
  }

  private listing(): string[] {
    try {
      return readdirSync(this.inboundDir);
    } catch {
      return [];
    }
  }

  private complete(name: string, want: Buffer): boolean {
    try {
      return readFileSync(join(this.inboundDir, name)).equals(want);
    } catch {
      return false;
    }
  }

  private inspect(name: string): void {
    if (TEMP_NAME.test(name)) return;
    try {
      const stat = statSync(join(this.inboundDir, name));
      const stamp = `${stat.ino}:${stat.size}:${stat.mtimeMs}`;
      if (this.seen.get(name) === stamp) return;
      this.seen.set(name, stamp);
      const bytes = readFileSync(join(this.inboundDir, name));
      if (BATCH_NAME.test(name)) {
        const first = this.batchViews.get(name);
        if (!first) this.batchViews.set(name, bytes);
        else if (!first.equals(bytes))
          this.partialSeen.push(`${name} changed after it was visible (${first.length} → ${bytes.length} bytes)`);
        return;
      }
      const scan = SCAN_NAME.exec(name);
      const match = scan ?? FINAL_NAME.exec(name);
      const id = Number(match?.[1]);
      const want = match ? (scan ? this.scans : this.expected).get(id) : undefined;
      if (!want || !bytes.equals(want))
        this.partialSeen.push(`${name} (${bytes.length} bytes${want ? ` of ${want.length}` : ', unknown name'})`);
      const scanWanted = scan ? undefined : this.scans.get(id);
      if (scanWanted && !this.complete(name.replace(/(?:_v\d+)?\.xml$/, '.pdf'), scanWanted))
        this.partialSeen.push(`${name} visible without its complete original document`);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
  }
}
