import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import PQueue from 'p-queue';
import { describeError, isBridgeError } from '../errors.ts';
import type { Ledger, RecordAckResult } from '../ledger/index.ts';
import type { BridgeMetrics, Logger } from '../observability/index.ts';
import type { RossumApiConfig } from '../rossum/index.ts';
import type { Target, TargetConfig } from '../transport/index.ts';
import { AbortFanout } from './abort-fanout.ts';
import { archiveAcks } from './archive.ts';
import type { AcksConfig } from './config.ts';
import type { ReadyFile } from './discovery.ts';
import { OutcomeDelivery, type CredentialsState } from './outcome-delivery.ts';
import { AckReader, type Prepared } from './reader.ts';
import { buildSources, type Source } from './sources.ts';

export interface AckServiceOptions {
  acks: AcksConfig;
  rossum: RossumApiConfig;
  /** All configured targets by name (the export targets and any `readFrom` ones). */
  targets: ReadonlyMap<string, Target>;
  targetConfigs: Readonly<Record<string, TargetConfig>>;
  /** Which mappings export to which target (from the routes); mappings in no route may answer on any target. */
  routes: ReadonlyArray<{ mapping: string; target: string }>;
  ledger: Ledger;
  logger: Logger;
  metrics?: BridgeMetrics;
  now?: () => number;
  holdGraceMs?: number;
}

/**
 * Files recorded per ledger transaction. Large enough that a 10,000-file folder costs a few hundred
 * commits, small enough that the first Rossum calls start early and a listing page stays in memory.
 */
const BATCH_FILES = 100;
/**
 * Batches in progress at once: some are read or archived over the pool while others are recorded. Over a
 * 100 ms link a batch waits about three round trips (open | fstat+read | the archive renames): 10,000 files
 * through bench:acks took 32 s with 4 in flight, 26 s with 8 (same load; 62-70 s before reads trusted the
 * listing and renames went as one request each).
 */
const BATCHES_IN_FLIGHT = 8;

export interface PassReport {
  files: number;
  adopted: number;
  timedOut: number;
  delivered: number;
  /** Listing, reading, recording and archiving the folders, before the outbox drains (Rossum's rate limit). */
  folderMs: number;
  /** CPU time of this process meanwhile (user + system). */
  folderCpuMs: number;
}

/**
 * The `acks` process: finds complete ack files, parses them by the mapping's convention, records the
 * verdicts in the ledger (once, even across crashes: files are keyed by name and content), tells
 * Rossum through the outbox, archives the files, and flags exports whose deadline passed.
 */
export class AckService {
  private readonly sources: Source[];
  /** Batches in progress at once (the pass's and the watchers'). */
  private readonly batchQueue = new PQueue({ concurrency: BATCHES_IN_FLIGHT });
  private readonly outcomes: OutcomeDelivery;
  private readonly reader: AckReader;
  private readonly inFlight = new Set<string>();
  /** Aborted on stop: reads in progress are abandoned (the files stay and are read at the next start). */
  private readonly stopSignal = new AbortController();
  /** Each read gets its own signal off `stopSignal`: one listener on it, not one per concurrent read. */
  private readonly readSignals = new AbortFanout(this.stopSignal.signal);
  private readonly now: () => number;
  private readonly startedAt: number;
  private timer: NodeJS.Timeout | undefined;
  private stopping = false;
  private loop: Promise<void> | undefined;
  /** Passes the loop has finished (each listed every folder once): tests wait on it instead of sleeping. */
  loopPasses = 0;
  private wake: (() => void) | undefined;

  constructor(private readonly options: AckServiceOptions) {
    this.now = options.now ?? Date.now;
    this.startedAt = this.now();
    const { acks } = options;
    this.outcomes = new OutcomeDelivery({
      ledger: options.ledger,
      rossum: options.rossum,
      config: acks,
      logger: options.logger.child({ component: 'ack-outbox' }),
      owner: `${hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`,
      ...(options.metrics ? { metrics: options.metrics } : {}),
      ...(options.now ? { now: options.now } : {}),
      ...(options.holdGraceMs !== undefined ? { holdGraceMs: options.holdGraceMs } : {}),
    });
    this.reader = new AckReader({ ledger: options.ledger, acks, logger: options.logger });
    this.sources = buildSources(
      {
        acks,
        targets: options.targets,
        targetConfigs: options.targetConfigs,
        routes: options.routes,
        logger: options.logger,
        now: this.now,
      },
      (source, file) => this.watchedFile(source, file),
    );
  }

  /** Checks the Rossum credentials now (start-up): a refusal is logged with its fix and shown by `readiness()`. */
  checkRossum(): Promise<CredentialsState> {
    return this.outcomes.checkCredentials();
  }

  /** New Rossum settings (SIGHUP): outcomes that waited for credentials go at once. */
  reloadRossum(rossum: RossumApiConfig): Promise<void> {
    return this.outcomes.useRossumConfig(rossum);
  }

  /** Not ready while Rossum refuses our credentials (verdicts pile up in the ledger until it accepts them). */
  readiness(): { ready: boolean; rossumCredentials: CredentialsState } {
    const rossumCredentials = this.outcomes.credentialsState;
    return { ready: rossumCredentials.state !== 'refused' && !this.stopping, rossumCredentials };
  }

  /** Runs passes until `stop()`. */
  start(): void {
    if (this.loop) return;
    this.loop = (async () => {
      while (!this.stopping) {
        let changing = 0;
        try {
          changing = (await this.passWithChanges()).changing;
        } catch (error) {
          this.options.logger.error(
            { err: describeError(error) },
            'ack pass failed; trying again at the next interval',
          );
        }
        this.loopPasses++;
        if (this.stopping) break;
        const { pollIntervalMs, minAgeMs } = this.options.acks;
        // A file seen for the first time gets its second look soon, not a whole interval later.
        const delay = changing > 0 ? Math.min(pollIntervalMs, Math.max(minAgeMs, 100)) : pollIntervalMs;
        await new Promise<void>((resolve) => {
          this.wake = resolve;
          this.timer = setTimeout(resolve, delay);
        });
      }
    })();
  }

  /**
   * Graceful within `acks.drainMs`: no new files, reads in progress abandoned, files being recorded or
   * archived finish; watchers closed. Returns after the drain time even if something still hangs.
   */
  async stop(deadlineAt = Date.now() + this.options.acks.drainMs): Promise<void> {
    this.stopping = true;
    this.stopSignal.abort(new Error('the acks process is stopping'));
    if (this.timer) clearTimeout(this.timer);
    this.wake?.();
    let drainTimer: NodeJS.Timeout | undefined;
    const drained = await Promise.race([
      (async () => {
        await this.loop;
        await this.batchQueue.onIdle();
        return true;
      })(),
      new Promise<false>((resolve) => {
        drainTimer = setTimeout(() => resolve(false), Math.max(0, deadlineAt - Date.now()));
      }),
    ]);
    clearTimeout(drainTimer);
    if (!drained)
      this.options.logger.warn(
        { drainMs: this.options.acks.drainMs },
        'ack work still running after the drain time; stopping anyway (unrecorded files are read again at the next start)',
      );
    await Promise.all(this.sources.map((source) => source.watcher?.close()));
  }

  /** One full pass: track new uploads, flag missed deadlines, read every complete ack, tell Rossum. */
  async pass(): Promise<PassReport> {
    const { changing: _changing, ...report } = await this.passWithChanges();
    return report;
  }

  private async passWithChanges(): Promise<PassReport & { changing: number }> {
    const { ledger, acks, logger, metrics } = this.options;
    const passStarted = performance.now();
    const cpuBefore = process.cpuUsage();
    const rules = Object.entries(acks.byMapping).map(([mappingName, mapping]) => ({
      mappingName,
      deadlineMs: mapping.deadlineMs,
      since: this.startedAt - acks.trackUploadsNewerThanMs,
    }));
    const adopted = rules.length > 0 ? await ledger.awaitAcks(rules) : 0;
    let files = 0;
    let changing = 0;
    const work: Array<Promise<void>> = [];
    for (const source of this.sources) {
      if (this.stopping) break;
      source.unreadThisPass = 0;
      let found: { ready: ReadyFile[]; changing: number };
      try {
        found = await source.discovery.look();
        metrics?.targetUp.set({ target: source.target.name }, 1);
      } catch (error) {
        source.goodLooks = 0;
        metrics?.targetUp.set({ target: source.target.name }, 0);
        logger.warn(
          { ackSource: source.name, err: describeError(error) },
          `cannot list the ack folder on ${source.target.description}; trying again later`,
        );
        continue;
      }
      source.goodLooks++;
      changing += found.changing;
      files += found.ready.length;
      // Listings come in the server's hash order. Names follow the exports' (and the ledger's) order, so a
      // batch of neighbouring names touches neighbouring ledger pages: far fewer pages per commit.
      const ready = found.ready.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
      for (let i = 0; i < ready.length; i += BATCH_FILES)
        work.push(this.enqueueBatch(source, ready.slice(i, i + BATCH_FILES)));
    }
    await Promise.all(work);
    await this.batchQueue.onIdle();
    const folderMs = Math.round(performance.now() - passStarted);
    const folderCpu = process.cpuUsage(cpuBefore);
    const folderCpuMs = Math.round((folderCpu.user + folderCpu.system) / 1000);
    // "No answer" means we looked and found none: not while an ack folder cannot be listed (an outage, a
    // restart), and only after the answers already there were read, so none is beaten by its deadline.
    // Judged folder by folder: a folder with a file that could not be read holds back only its own exports.
    const judged = this.sources.filter((source) => source.goodLooks >= 2 && source.unreadThisPass === 0);
    const everywhere = judged.length === this.sources.length;
    const expired =
      this.stopping || judged.length === 0
        ? []
        : await ledger.expireAcks(undefined, everywhere ? undefined : judged.map((source) => source.name));
    for (const outcome of expired) {
      metrics?.ackOutcomes.inc({ kind: 'timeout' });
      logger.warn({ exportId: outcome.exportId }, 'no ack within the deadline: flagging the export as failed');
    }
    const delivered = this.stopping ? 0 : await this.outcomes.pump();
    return { files, adopted, timedOut: expired.length, delivered, folderMs, folderCpuMs, changing };
  }

  private enqueueBatch(source: Source, batch: readonly ReadyFile[]): Promise<void> {
    return this.batchQueue
      .add(async () => (this.stopping ? undefined : this.handleBatch(source, batch)))
      .catch((error: unknown) => {
        source.unreadThisPass += batch.length;
        this.options.logger.warn(
          { ackSource: source.name, files: batch.length, err: describeError(error) },
          'ack batch failed; its files are tried again at the next pass',
        );
      });
  }

  /** chokidar reports files one by one: those reported in the same turn of the event loop form batches. */
  private watchedFile(source: Source, file: ReadyFile): void {
    if (this.stopping) return;
    source.watched.push(file);
    if (source.watched.length > 1) return;
    setImmediate(() => {
      const files = source.watched.splice(0);
      for (let i = 0; i < files.length && !this.stopping; i += BATCH_FILES)
        void this.enqueueBatch(source, files.slice(i, i + BATCH_FILES));
    });
  }

  /**
   * Reads and interprets the batch's files (`concurrency` at a time over the pool), records them in one
   * ledger transaction, starts telling Rossum, archives each file, then marks the batch archived in one
   * transaction. A crash anywhere leaves each file either unrecorded or recorded and still in the folder
   * (archived at the next pass), never archived unrecorded.
   */
  private async handleBatch(source: Source, files: readonly ReadyFile[]): Promise<void> {
    const { ledger, logger, acks } = this.options;
    const mine: ReadyFile[] = [];
    for (const file of files) {
      const key = `${source.name}\u0000${file.path}`;
      if (this.inFlight.has(key) || this.stopping) continue;
      this.inFlight.add(key);
      mine.push(file);
    }
    const notYet = (file: ReadyFile, error: unknown, message: string): void =>
      logger.warn(
        {
          ackSource: source.name,
          ackFile: file.path,
          err: describeError(error),
          code: isBridgeError(error) ? error.code : undefined,
        },
        message,
      );
    try {
      const prepared: Prepared[] = [];
      await new PQueue({ concurrency: acks.concurrency }).addAll(
        mine.map((file) => async () => {
          try {
            const ready = await this.readSignals.run((signal) => this.reader.prepare(source, file, signal));
            if (ready) prepared.push(ready);
          } catch (error) {
            // A file that fails for good (say, unreadable permissions) must not hold deadline verdicts back forever.
            if (!isBridgeError(error) || !error.permanent) source.unreadThisPass++;
            notYet(file, error, 'ack file not processed yet; it is tried again at the next pass');
          }
        }),
      );
      if (prepared.length === 0) return;

      const recorded = await this.record(source, prepared);
      let pending = false;
      for (const { item, result } of recorded) {
        this.reportRecorded(source, item, result);
        pending ||= result.outcomes.some((outcome) => outcome.delivery === 'pending');
      }
      if (pending && !this.stopping) void this.outcomes.pump().catch(() => undefined);

      const archived: Array<{ ackFileId: number; archivedTo: string | null; name: string }> = [];
      const outcomes = await archiveAcks(
        source,
        recorded.map(({ item }) => ({ file: item.file, disposition: item.input.disposition })),
        acks,
        this.now,
        async (tasks) => void (await new PQueue({ concurrency: acks.concurrency }).addAll(tasks)),
      );
      for (const [index, { item, result }] of recorded.entries()) {
        const outcome = outcomes[index];
        if (outcome && 'archivedTo' in outcome)
          archived.push({ ackFileId: result.ackFileId, archivedTo: outcome.archivedTo, name: item.file.name });
        else notYet(item.file, outcome?.error, 'ack recorded but not archived yet; it is archived at the next pass');
      }
      try {
        await ledger.markAckFilesArchived(archived);
      } catch (error) {
        // The files are in the archive folders already; only where they went is not noted.
        logger.warn(
          { ackSource: source.name, files: archived.length, err: describeError(error) },
          'could not note in the ledger where ack files were archived',
        );
      }
      for (const item of archived) source.discovery.forget(item.name);
    } finally {
      for (const file of mine) this.inFlight.delete(`${source.name}\u0000${file.path}`);
    }
  }

  /** One transaction for the batch; when it fails, file by file, so one file the ledger refuses does not hold back the rest. */
  private async record(
    source: Source,
    prepared: readonly Prepared[],
  ): Promise<Array<{ item: Prepared; result: RecordAckResult }>> {
    const { ledger, logger } = this.options;
    try {
      const results = await ledger.recordAcks(prepared.map((item) => item.input));
      return prepared.map((item, index) => ({ item, result: results[index] as RecordAckResult }));
    } catch (error) {
      if (prepared.length === 1) {
        source.unreadThisPass++;
        logger.warn(
          { ackSource: source.name, ackFile: prepared[0]?.file.path, err: describeError(error) },
          'ack file not recorded yet; it is tried again at the next pass',
        );
        return [];
      }
    }
    const recorded: Array<{ item: Prepared; result: RecordAckResult }> = [];
    for (const item of prepared) recorded.push(...(await this.record(source, [item])));
    return recorded;
  }

  private reportRecorded(source: Source, { file, input, unmatched }: Prepared, result: RecordAckResult): void {
    const { metrics, logger } = this.options;
    const where = { ackSource: source.name, ackFile: file.path };
    if (result.alreadyRecorded) {
      logger.info(where, 'ack file was recorded before (an earlier run stopped before archiving it): archiving now');
      return;
    }
    metrics?.ackFiles.inc({ source: source.name, disposition: input.disposition });
    // Checked first: building the line costs more than the rest of this method, 10,000 times a pass.
    const logEach = logger.isLevelEnabled('info');
    for (const outcome of result.outcomes) {
      metrics?.ackOutcomes.inc({ kind: outcome.kind });
      if (logEach)
        logger.info(
          {
            ...where,
            exportId: outcome.exportId,
            outcome: outcome.kind,
            codes: outcome.detail.messages.map((m) => m.code).filter(Boolean),
          },
          `ack recorded: ${outcome.kind}`,
        );
    }
    if (input.disposition === 'unmatched')
      logger.warn(
        { ...where, references: unmatched },
        'ack matches no export in the ledger: moved to the unmatched folder',
      );
    else if (unmatched.length > 0) {
      metrics?.ackFiles.inc({ source: source.name, disposition: 'rows_unmatched' });
      logger.warn({ ...where, references: unmatched }, `${unmatched.length} row(s) of the ack match no export`);
    }
  }
}
