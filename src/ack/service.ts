import { createHash, randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { posix } from 'node:path';
import { describeError, isBridgeError } from '../errors.ts';
import { nameParts, type AckEntryInput, type AckFileInput, type Ledger, type RecordAckResult } from '../ledger/index.ts';
import type { Logger } from '../observability/logger.ts';
import type { BridgeMetrics } from '../observability/metrics.ts';
import type { RossumApiConfig } from '../rossum/index.ts';
import { parseTargetUrl, type Target, type TargetConfig } from '../transport/index.ts';
import type { AcksConfig } from './config.ts';
import { AckParseError, createConvention, type AckConvention, type ParsedAckEntry } from './conventions.ts';
import { FolderWatcher, PollingDiscovery, type ReadyFile } from './discovery.ts';
import { Limiter, runLimited } from './limit.ts';
import { OutcomeDelivery } from './notify.ts';
import { compileIgnore } from './pattern.ts';

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

interface Handler {
  convention: AckConvention;
  mappingNames: string[];
}

interface Source {
  /** The export target whose acks these are. */
  name: string;
  target: Target;
  folder: string;
  handlers: Handler[];
  discovery: PollingDiscovery;
  watcher: FolderWatcher | undefined;
  unknownNames: Set<string>;
  /** Successful listings in a row: deadlines are judged only after two (a file needs two looks to be read). */
  goodLooks: number;
  /** Files the watcher reported since the last flush (gathered into batches). */
  watched: ReadyFile[];
}

/** A file read and interpreted, waiting to be recorded with its batch. */
interface Prepared {
  file: ReadyFile;
  input: AckFileInput;
  unmatched: string[];
}

/**
 * Files recorded per ledger transaction. Large enough that a 10,000-file folder costs a few hundred
 * commits, small enough that the first Rossum calls start early and a listing page stays in memory.
 */
const BATCH_FILES = 100;
/** Batches in progress at once: one is read or archived over the pool while another is recorded. */
const BATCHES_IN_FLIGHT = 2;
const EMPTY = Buffer.alloc(0);

export interface PassReport {
  files: number;
  adopted: number;
  timedOut: number;
  delivered: number;
}

/**
 * The `acks` process: finds complete ack files, parses them by the mapping's convention, records the
 * verdicts in the ledger (once, even across crashes: files are keyed by name and content), tells
 * Rossum through the outbox, archives the files, and flags exports whose deadline passed.
 */
export class AckService {
  private readonly sources: Source[] = [];
  private readonly limiter: Limiter;
  private readonly delivery: OutcomeDelivery;
  private readonly inFlight = new Set<string>();
  /** Ack files that could not be read or recorded so far (an answer may be among them: no deadline verdicts then). */
  private unreadFiles = 0;
  /** Ack files left in place because the export they name is not confirmed uploaded yet (warned once). */
  private readonly waitingForUpload = new Set<string>();
  private readonly now: () => number;
  private readonly startedAt: number;
  private timer: NodeJS.Timeout | undefined;
  private stopping = false;
  private loop: Promise<void> | undefined;
  private wake: (() => void) | undefined;

  constructor(private readonly options: AckServiceOptions) {
    this.now = options.now ?? Date.now;
    this.startedAt = this.now();
    const { acks } = options;
    this.limiter = new Limiter(BATCHES_IN_FLIGHT);
    this.delivery = new OutcomeDelivery({
      ledger: options.ledger,
      rossum: options.rossum,
      config: acks,
      logger: options.logger.child({ component: 'ack-outbox' }),
      owner: `${hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`,
      ...(options.metrics ? { metrics: options.metrics } : {}),
      ...(options.now ? { now: options.now } : {}),
      ...(options.holdGraceMs !== undefined ? { holdGraceMs: options.holdGraceMs } : {}),
    });

    const routedMappings = new Set(options.routes.map((route) => route.mapping));
    for (const [name, source] of Object.entries(acks.targets)) {
      const readFrom = source.readFrom ?? name;
      const target = options.targets.get(readFrom);
      if (!target) throw new Error(`acks.targets.${name}: no target "${readFrom}" is configured`);
      const mappingNames = Object.keys(acks.byMapping).filter(
        (mapping) => !routedMappings.has(mapping) || options.routes.some((route) => route.mapping === mapping && route.target === name),
      );
      const folder = source.folder.replace(/^\.?\/*|\/+$/g, '');
      const tempSuffix = options.targetConfigs[readFrom]?.upload.tempSuffix ?? '.part';
      const archive = new Set(Object.values(acks.folders));
      const ignorePatterns = compileIgnore(acks.ignore);
      // Dot-files and our own temp names are half-written uploads; archive folders are ours.
      const ignored = (fileName: string): boolean => fileName.startsWith('.') || fileName.endsWith(tempSuffix) || archive.has(fileName) || ignorePatterns(fileName);
      const log = options.logger.child({ ackSource: name });
      const entry: Source = {
        name,
        target,
        folder,
        handlers: groupHandlers(mappingNames, acks),
        discovery: new PollingDiscovery(target, folder, { minAgeMs: acks.minAgeMs, ignored, logger: log, now: this.now }),
        watcher: undefined,
        unknownNames: new Set(),
        goodLooks: 0,
        watched: [],
      };
      const url = parseTargetUrl(options.targetConfigs[readFrom]?.url ?? '');
      const events = source.watch === 'events' || (source.watch === 'auto' && url.ok && url.value.scheme === 'file');
      if (events && url.ok && url.value.scheme === 'file') {
        const absolute = folder === '' ? url.value.dir : posix.join(url.value.dir, folder);
        entry.watcher = new FolderWatcher(absolute, folder, { minAgeMs: acks.minAgeMs, ignored, logger: log, usePolling: acks.usePolling, intervalMs: acks.watchIntervalMs }, (file) =>
          this.watchedFile(entry, file),
        );
      }
      this.sources.push(entry);
    }
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
          this.options.logger.error({ err: describeError(error) }, 'ack pass failed; trying again at the next interval');
        }
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

  /** Graceful: no new files; files in progress finish (recorded, archived); watchers closed. */
  async stop(): Promise<void> {
    this.stopping = true;
    if (this.timer) clearTimeout(this.timer);
    this.wake?.();
    await this.loop;
    await this.limiter.idle();
    await Promise.all(this.sources.map((source) => source.watcher?.close()));
  }

  /** One full pass: track new uploads, flag missed deadlines, read every complete ack, tell Rossum. */
  async pass(): Promise<PassReport> {
    const { changing: _changing, ...report } = await this.passWithChanges();
    return report;
  }

  private async passWithChanges(): Promise<PassReport & { changing: number }> {
    const { ledger, acks, logger, metrics } = this.options;
    const rules = Object.entries(acks.byMapping).map(([mappingName, mapping]) => ({
      mappingName,
      deadlineMs: mapping.deadlineMs,
      since: this.startedAt - acks.trackUploadsNewerThanMs,
    }));
    const adopted = rules.length > 0 ? await ledger.awaitAcks(rules) : 0;
    const unreadBefore = this.unreadFiles;
    let files = 0;
    let changing = 0;
    for (const source of this.sources) {
      if (this.stopping) break;
      let found: { ready: ReadyFile[]; changing: number };
      try {
        found = await source.discovery.look();
        metrics?.targetUp.set({ target: source.target.name }, 1);
      } catch (error) {
        source.goodLooks = 0;
        metrics?.targetUp.set({ target: source.target.name }, 0);
        logger.warn({ ackSource: source.name, err: describeError(error) }, `cannot list the ack folder on ${source.target.description}; trying again later`);
        continue;
      }
      source.goodLooks++;
      changing += found.changing;
      files += found.ready.length;
      // Listings come in the server's hash order. Names follow the exports' (and the ledger's) order, so a
      // batch of neighbouring names touches neighbouring ledger pages: far fewer pages per commit.
      const ready = found.ready.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
      const batches: ReadyFile[][] = [];
      for (let i = 0; i < ready.length; i += BATCH_FILES) batches.push(ready.slice(i, i + BATCH_FILES));
      await runLimited(batches, BATCHES_IN_FLIGHT, async (batch) => {
        if (!this.stopping) await this.limiter.run(() => this.handleBatch(source, batch));
      });
    }
    await this.limiter.idle();
    // "No answer" means we looked and found none: not while an ack folder cannot be listed (an outage, a
    // restart), and only after the answers already there were read, so none is beaten by its deadline.
    const lookedEverywhere = this.sources.every((source) => source.goodLooks >= 2) && this.unreadFiles === unreadBefore;
    const expired = lookedEverywhere && !this.stopping ? await ledger.expireAcks() : [];
    for (const outcome of expired) {
      metrics?.ackOutcomes.inc({ kind: 'timeout' });
      logger.warn({ exportId: outcome.exportId }, 'no ack within the deadline: flagging the export as failed');
    }
    const delivered = await this.delivery.pump();
    return { files, adopted, timedOut: expired.length, delivered, changing };
  }

  /** chokidar reports files one by one: those reported in the same turn of the event loop form batches. */
  private watchedFile(source: Source, file: ReadyFile): void {
    if (this.stopping) return;
    source.watched.push(file);
    if (source.watched.length > 1) return;
    setImmediate(() => {
      const files = source.watched.splice(0);
      for (let i = 0; i < files.length && !this.stopping; i += BATCH_FILES) {
        const batch = files.slice(i, i + BATCH_FILES);
        void this.limiter.run(() => this.handleBatch(source, batch));
      }
    });
  }

  /**
   * Reads and interprets the batch's files (`concurrency` at a time over the pool), records them in one
   * ledger transaction, starts telling Rossum, archives each file, then marks the batch archived in one
   * transaction. A crash anywhere leaves each file either unrecorded or recorded and still in the folder
   * (archived at the next pass), never archived unrecorded.
   */
  private async handleBatch(source: Source, files: readonly ReadyFile[]): Promise<void> {
    const { ledger, metrics, logger, acks } = this.options;
    const mine: ReadyFile[] = [];
    for (const file of files) {
      const key = `${source.name}\u0000${file.path}`;
      if (this.inFlight.has(key) || this.stopping) continue;
      this.inFlight.add(key);
      mine.push(file);
    }
    const notYet = (file: ReadyFile, error: unknown, message: string): void =>
      logger.warn({ ackSource: source.name, ackFile: file.path, err: describeError(error), code: isBridgeError(error) ? error.code : undefined }, message);
    try {
      const prepared: Prepared[] = [];
      await runLimited(mine, acks.concurrency, async (file) => {
        try {
          const ready = await this.prepare(source, file);
          if (ready) prepared.push(ready);
        } catch (error) {
          // A file that fails for good (say, unreadable permissions) must not hold deadline verdicts back forever.
          if (!isBridgeError(error) || !error.permanent) this.unreadFiles++;
          notYet(file, error, 'ack file not processed yet; it is tried again at the next pass');
        }
      });
      if (prepared.length === 0) return;

      const recorded = await this.record(source, prepared);
      let pending = false;
      for (const { item, result } of recorded) {
        this.reportRecorded(source, item, result);
        pending ||= result.outcomes.some((outcome) => outcome.delivery === 'pending');
      }
      if (pending) void this.delivery.pump().catch(() => undefined);

      const archived: Array<{ ackFileId: number; archivedTo: string | null; name: string }> = [];
      await runLimited(
        recorded,
        acks.concurrency,
        async ({ item, result }) => {
          try {
            archived.push({ ackFileId: result.ackFileId, archivedTo: await this.archive(source, item.file, item.input.disposition), name: item.file.name });
          } catch (error) {
            notYet(item.file, error, 'ack recorded but not archived yet; it is archived at the next pass');
          }
        },
      );
      try {
        await ledger.markAckFilesArchived(archived);
      } catch (error) {
        // The files are in the archive folders already; only where they went is not noted.
        logger.warn({ ackSource: source.name, files: archived.length, err: describeError(error) }, 'could not note in the ledger where ack files were archived');
      }
      for (const item of archived) source.discovery.forget(item.name);
    } finally {
      for (const file of mine) this.inFlight.delete(`${source.name}\u0000${file.path}`);
    }
  }

  /** One transaction for the batch; when it fails, file by file, so one file the ledger refuses does not hold back the rest. */
  private async record(source: Source, prepared: readonly Prepared[]): Promise<Array<{ item: Prepared; result: RecordAckResult }>> {
    const { ledger, logger } = this.options;
    try {
      const results = await ledger.recordAcks(prepared.map((item) => item.input));
      return prepared.map((item, index) => ({ item, result: results[index] as RecordAckResult }));
    } catch (error) {
      if (prepared.length === 1) {
        this.unreadFiles++;
        logger.warn({ ackSource: source.name, ackFile: prepared[0]?.file.path, err: describeError(error) }, 'ack file not recorded yet; it is tried again at the next pass');
        return [];
      }
    }
    const recorded: Array<{ item: Prepared; result: RecordAckResult }> = [];
    for (const item of prepared) recorded.push(...(await this.record(source, [item])));
    return recorded;
  }

  /** Reads one file and picks the convention reading it; null when it is not ours (or gone). */
  private async prepare(source: Source, file: ReadyFile): Promise<Prepared | null> {
    const handlers = source.handlers.filter((candidate) => candidate.convention.claims(file.name));
    if (handlers.length === 0) {
      if (!source.unknownNames.has(file.name)) this.options.logger.warn({ ackSource: source.name, ackFile: file.path }, 'no configured ack convention reads a file of this name; left in place');
      source.unknownNames.add(file.name);
      return null;
    }
    let bytes: Buffer = EMPTY;
    try {
      // Unread files (a bare `.ok`) are told apart by name alone: their content hash is that of nothing.
      if (handlers.some((handler) => handler.convention.readsBody(file.name))) bytes = await source.target.readFile(file.path);
    } catch (error) {
      // Gone between listing and reading: another process took it.
      if (isBridgeError(error) && error.code === 'NOT_FOUND') {
        source.discovery.forget(file.name);
        return null;
      }
      throw error;
    }
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    // Several mappings may read the same names (.ok files of two ERPs): the one whose exports the file names wins.
    let chosen: { input: AckFileInput; unmatched: string[] } | undefined;
    for (const handler of handlers) {
      const candidate = await this.interpret(source, handler, file, bytes, sha256);
      if (candidate.input.entries.length > 0) {
        chosen = candidate;
        break;
      }
      chosen ??= candidate;
    }
    const { input, unmatched } = chosen as { input: AckFileInput; unmatched: string[] };
    // The ERP can answer a file before the ledger knows it arrived (the process died after the rename, or a
    // stalled rename went through after we gave up): wait for the upload to be confirmed, not unmatched/.
    if (input.disposition === 'unmatched' && (await this.namesUnconfirmedUpload(source, file, bytes))) {
      const key = `${source.name}\u0000${file.path}`;
      if (!this.waitingForUpload.has(key)) {
        this.options.logger.warn({ ackSource: source.name, ackFile: file.path }, 'ack names an export whose upload is not confirmed yet; left in place until it is');
      }
      this.waitingForUpload.add(key);
      return null;
    }
    this.waitingForUpload.delete(`${source.name}\u0000${file.path}`);
    if (input.disposition === 'invalid') {
      this.options.logger.warn(
        { ackSource: source.name, ackFile: file.path, err: input.error, exportId: input.entries[0]?.exportId },
        input.entries.length > 0 ? 'unreadable ack file: flagging the export it names' : 'unreadable ack file naming no known export',
      );
    }
    return { file, input, unmatched };
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
      if (logEach) logger.info({ ...where, exportId: outcome.exportId, outcome: outcome.kind, codes: outcome.detail.messages.map((m) => m.code).filter(Boolean) }, `ack recorded: ${outcome.kind}`);
    }
    if (input.disposition === 'unmatched') logger.warn({ ...where, references: unmatched }, 'ack matches no export in the ledger: moved to the unmatched folder');
    else if (unmatched.length > 0) {
      metrics?.ackFiles.inc({ source: source.name, disposition: 'rows_unmatched' });
      logger.warn({ ...where, references: unmatched }, `${unmatched.length} row(s) of the ack match no export`);
    }
  }

  /** Whether the file names an export that is being uploaded or failed transiently (its file may be on the server). */
  private async namesUnconfirmedUpload(source: Source, file: ReadyFile, bytes: Buffer): Promise<boolean> {
    const references: Array<ParsedAckEntry['reference']> = [];
    for (const handler of source.handlers) {
      if (!handler.convention.claims(file.name)) continue;
      try {
        references.push(...handler.convention.parse(file.name, bytes).map((entry) => entry.reference));
      } catch {
        // Unreadable by this convention: it names nothing here.
      }
    }
    if (references.length === 0) return false;
    const unconfirmed = await this.options.ledger.list({ status: ['uploading', 'retryable'], target: source.name, limit: 10_000 });
    return unconfirmed.some((record) => {
      const { name, stem } = nameParts(record.plannedPath);
      return references.some(
        (reference) =>
          (reference.by === 'name' && reference.value === name) ||
          (reference.by === 'stem' && reference.value === stem) ||
          (reference.by === 'annotationId' && reference.value === String(record.annotationId)) ||
          (reference.by === 'documentRef' && reference.value === record.documentRef),
      );
    });
  }

  /** Parses with one convention and finds each named export in the ledger. */
  private async interpret(source: Source, handler: Handler, file: ReadyFile, bytes: Buffer, sha256: string): Promise<{ input: AckFileInput; unmatched: string[] }> {
    const { ledger, acks } = this.options;
    const lookup = (reference: ParsedAckEntry['reference']) =>
      ledger.findExportForAck({ target: source.name, by: reference.by, value: reference.value, mappingNames: handler.mappingNames });
    const base = { source: source.name, fileName: file.path, sha256, convention: handler.convention.kind, landedAt: file.firstSeenAt };
    const unmatched: string[] = [];
    try {
      const parsed = handler.convention.parse(file.name, bytes);
      const entries: AckEntryInput[] = [];
      for (const entry of parsed) {
        const record = await lookup(entry.reference);
        if (!record) {
          unmatched.push(`${entry.reference.by} ${entry.reference.value}`);
          continue;
        }
        // Rossum hears of an on-time acceptance only when there is an ERP reference to store.
        const quietIfAccepted = !acks.byMapping[record.mappingName]?.storeErpReference || !entry.erpReference;
        entries.push({ index: entry.index, exportId: record.id, verdict: entry.verdict, messages: entry.messages, erpReference: entry.erpReference, quietIfAccepted });
      }
      return { input: { ...base, disposition: entries.length > 0 ? 'matched' : 'unmatched', entries }, unmatched };
    } catch (error) {
      if (!(error instanceof AckParseError)) throw error;
      this.options.logger.debug({ ackSource: source.name, ackFile: file.path, err: error.message, mappings: handler.mappingNames }, 'not readable by this convention');
      const record = error.reference ? await lookup(error.reference) : undefined;
      const entries: AckEntryInput[] = record ? [{ index: 0, exportId: record.id, verdict: 'invalid', messages: [{ text: error.message }] }] : [];
      return { input: { ...base, disposition: 'invalid', error: error.message, entries }, unmatched };
    }
  }

  /** processed/ (or deleted), unmatched/, invalid/ — never silently deleted unless it was recorded. */
  private async archive(source: Source, file: ReadyFile, disposition: AckFileInput['disposition']): Promise<string | null> {
    const { acks } = this.options;
    if (disposition === 'matched' && acks.archive === 'delete') {
      await source.target.remove(file.path);
      return null;
    }
    const folder = disposition === 'matched' ? acks.folders.processed : acks.folders[disposition];
    const base = source.folder === '' ? folder : `${source.folder}/${folder}`;
    const destination = `${base}/${file.name}`;
    try {
      await source.target.move(file.path, destination);
      return destination;
    } catch (error) {
      if (!isBridgeError(error) || error.code !== 'TARGET_EXISTS') throw error;
      // ERPs reuse names (ack_YYYYMMDD.csv): keep both.
      const dot = file.name.lastIndexOf('.');
      const stamped = `${base}/${dot > 0 ? file.name.slice(0, dot) : file.name}.${new Date(this.now()).toISOString().replace(/[:.]/g, '-')}${dot > 0 ? file.name.slice(dot) : ''}`;
      await source.target.move(file.path, stamped);
      return stamped;
    }
  }
}

/** Mappings with the same convention settings share one parser. */
function groupHandlers(mappingNames: readonly string[], acks: AcksConfig): Handler[] {
  const groups = new Map<string, Handler>();
  for (const name of mappingNames) {
    const mapping = acks.byMapping[name];
    if (!mapping) continue;
    const key = JSON.stringify([mapping.convention, mapping[mapping.convention]]);
    const group = groups.get(key);
    if (group) group.mappingNames.push(name);
    else groups.set(key, { convention: createConvention(mapping), mappingNames: [name] });
  }
  return [...groups.values()];
}
