import { readdirSync } from 'node:fs';
import { ErpSimulator } from '../support/erp-simulator.ts';
import type { ErpVerdict, PlannedAnswer } from './schedule.ts';

export type { ErpVerdict } from './schedule.ts';

/**
 * The ERP behind the inbound folder during the fault stream: it notices each exported file and, as
 * the schedule says, accepts it, reject it with an `.err` file (windows-1252, some written
 * slowly under the final name), or never answer, and writes its answer a little later. It writes a
 * few acks that name no export too. Everything it wrote is remembered, to check where each file ends.
 */

export interface WrittenAck {
  name: string;
  /** null for noise that names no export. */
  annotationId: number | null;
  verdict: 'accept' | 'reject' | 'noise';
  writtenAt: number;
  /** The message lines of an `.err` file. */
  lines: string[];
  slow: boolean;
}

interface Queued {
  stem: string;
  annotationId: number;
  verdict: ErpVerdict;
  dueAt: number;
  slow: boolean;
}

export interface ErpSideOptions {
  inboundDir: string;
  acksDir: string;
  finalName: RegExp;
  /** The planned answer per annotation id: verdict, delay after noticing the file, slow write. */
  answerOf: (annotationId: number) => PlannedAnswer;
}

export class ErpSide {
  readonly written = new Map<string, WrittenAck>();
  /** File name → annotation id and verdict, for every exported file the ERP noticed. */
  readonly noticed = new Map<string, { annotationId: number; verdict: ErpVerdict; at: number }>();
  private readonly erp: ErpSimulator;
  private queue: Queued[] = [];
  private readonly slowWrites = new Set<Promise<void>>();
  private paused = false;
  private running = true;
  private readonly loop: Promise<void>;
  private noise = 0;

  constructor(private readonly options: ErpSideOptions) {
    this.erp = new ErpSimulator(options.acksDir);
    this.loop = (async () => {
      while (this.running) {
        this.scan();
        if (!this.paused) this.writeDue(Date.now());
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    })();
  }

  /** Answers waiting to be written. */
  get queued(): number {
    return this.queue.filter((entry) => entry.verdict !== 'silent').length;
  }

  /** Holds answers back (they queue up) until `flushAll`. */
  pause(): void {
    this.paused = true;
  }

  /** Writes the `count` oldest queued answers at once (a burst for the acks process); stays paused. */
  flush(count: number): string[] {
    const answers = this.queue.filter((entry) => entry.verdict !== 'silent').slice(0, count);
    this.queue = this.queue.filter((entry) => !answers.includes(entry));
    return this.write(answers);
  }

  /** Writes every queued answer at once and resumes. */
  flushAll(): string[] {
    const names = this.flush(Number.POSITIVE_INFINITY);
    this.paused = false;
    return names;
  }

  /** An ack naming no export (the ERP answering a file from another system). */
  writeNoise(): void {
    const name = `INV_FOREIGN_${++this.noise}_${Date.now()}.ok`;
    this.erp.ok(name.slice(0, -'.ok'.length));
    this.written.set(name, {
      name,
      annotationId: null,
      verdict: 'noise',
      writtenAt: Date.now(),
      lines: [],
      slow: false,
    });
  }

  /** Nothing queued, nothing being written. */
  get idle(): boolean {
    return this.queued === 0 && this.slowWrites.size === 0;
  }

  async close(): Promise<void> {
    this.running = false;
    await this.loop;
    await Promise.all([...this.slowWrites]);
  }

  private scan(): void {
    let names: string[];
    try {
      names = readdirSync(this.options.inboundDir);
    } catch {
      return;
    }
    const now = Date.now();
    for (const name of names) {
      if (this.noticed.has(name)) continue;
      const match = this.options.finalName.exec(name);
      if (!match) continue;
      const annotationId = Number(match[1]);
      const { verdict, delayMs, slow } = this.options.answerOf(annotationId);
      this.noticed.set(name, { annotationId, verdict, at: now });
      if (verdict === 'silent') continue;
      this.queue.push({
        stem: name.slice(0, name.lastIndexOf('.')),
        annotationId,
        verdict,
        dueAt: now + delayMs,
        slow,
      });
    }
  }

  private writeDue(now: number): void {
    const due = this.queue.filter((entry) => entry.dueAt <= now);
    if (due.length === 0) return;
    this.queue = this.queue.filter((entry) => entry.dueAt > now);
    this.write(due);
  }

  /** Writes the answers and returns the names written. */
  private write(entries: Queued[]): string[] {
    const names: string[] = [];
    for (const entry of entries) {
      const writtenAt = Date.now();
      if (entry.verdict === 'accept') {
        const name = this.erp.ok(entry.stem);
        this.written.set(name, {
          name,
          annotationId: entry.annotationId,
          verdict: 'accept',
          writtenAt,
          lines: [],
          slow: false,
        });
        names.push(name);
        continue;
      }
      const lines = rejectionLines(entry.annotationId);
      const name = `${entry.stem}.err`;
      this.written.set(name, {
        name,
        annotationId: entry.annotationId,
        verdict: 'reject',
        writtenAt,
        lines,
        slow: entry.slow,
      });
      if (entry.slow) {
        const write = this.erp.errSlowly(entry.stem, lines, 3, 60);
        this.slowWrites.add(write);
        void write.finally(() => this.slowWrites.delete(write));
      } else {
        this.erp.err(entry.stem, lines);
      }
      names.push(name);
    }
    return names;
  }
}

/** Two coded lines with characters outside ASCII (the file is windows-1252). */
export function rejectionLines(annotationId: number): string[] {
  return [
    `E${String(annotationId % 1000).padStart(3, '0')} Kostenstelle fehlt für Beleg ${annotationId}`,
    'W17 Lieferant gesperrt – bitte prüfen',
  ];
}
