import { posix } from 'node:path';
import { watch, type FSWatcher } from 'chokidar';
import type { Logger } from '../observability/index.ts';
import { type EntryIdentity, type RemoteEntry, type Target, isTransportError } from '../transport/index.ts';

/** An ack file that has stopped changing and may be read. */
export interface ReadyFile {
  /** Path relative to the ack target's folder. */
  path: string;
  name: string;
  size: number;
  mtimeMs: number;
  /** Type, permissions and owner as listed (SFTP): the read checks the file it opens against them. */
  identity?: EntryIdentity;
  /** When we first saw it: the start of "ack landed → Rossum told". */
  firstSeenAt: number;
}

export interface DiscoveryOptions {
  minAgeMs: number;
  /** Names never to touch (dot-files, temp names, configured patterns). */
  ignored: (name: string) => boolean;
  now?: () => number;
  logger: Logger;
}

const MTIME_RESOLUTION_MS = 1_000;

interface Seen {
  size: number;
  mtimeMs: number;
  firstSeenAt: number;
  lastChangeAt: number;
}

/**
 * Lists an ack folder page by page (the transport streams READDIR pages) and hands out files only
 * when they are complete: same size and mtime in two consecutive looks, and old enough.
 */
export class PollingDiscovery {
  private seen = new Map<string, Seen>();
  private missingLogged = false;
  private readonly now: () => number;

  constructor(
    private readonly target: Target,
    private readonly folder: string,
    private readonly options: DiscoveryOptions,
  ) {
    this.now = options.now ?? Date.now;
  }

  /** One look. `changing` counts files seen for the first time or still growing: worth a quick second look. */
  async look(): Promise<{ ready: ReadyFile[]; changing: number }> {
    const now = this.now();
    const next = new Map<string, Seen>();
    const ready: ReadyFile[] = [];
    let changing = 0;
    try {
      for await (const entry of this.target.list(this.folder)) {
        if (!entry.isFile || this.options.ignored(entry.name)) continue;
        const before = this.seen.get(entry.name);
        const stable = before !== undefined && before.size === entry.size && before.mtimeMs === entry.mtimeMs;
        const seen: Seen = {
          size: entry.size,
          mtimeMs: entry.mtimeMs,
          firstSeenAt: before?.firstSeenAt ?? now,
          lastChangeAt: stable ? (before as Seen).lastChangeAt : now,
        };
        next.set(entry.name, seen);
        if (!stable) {
          changing++;
          continue;
        }
        // SFTP mtimes have whole seconds, and some ERP hosts' clocks run ahead: an mtime only proves
        // age beyond its resolution; otherwise the time since we last saw the file change has to do.
        const age = Math.max(now - (entry.mtimeMs + MTIME_RESOLUTION_MS), now - seen.lastChangeAt);
        if (age >= this.options.minAgeMs) ready.push(toReady(entry, seen.firstSeenAt));
        else changing++;
      }
      this.missingLogged = false;
    } catch (error) {
      if (isTransportError(error) && error.code === 'NOT_FOUND') {
        if (!this.missingLogged)
          this.options.logger.warn(
            { target: this.target.name, folder: this.folder },
            `ack folder ${this.folder} does not exist (yet) on ${this.target.description}`,
          );
        this.missingLogged = true;
        return { ready: [], changing: 0 };
      }
      throw error;
    }
    this.seen = next;
    return { ready, changing };
  }

  /** A file was handled (moved or deleted): forget it. */
  forget(name: string): void {
    this.seen.delete(name);
  }
}

function toReady(entry: RemoteEntry, firstSeenAt: number): ReadyFile {
  const ready: ReadyFile = {
    path: entry.path,
    name: entry.name,
    size: entry.size,
    mtimeMs: entry.mtimeMs,
    firstSeenAt,
  };
  if (entry.identity) ready.identity = entry.identity;
  return ready;
}

/**
 * For `file://` folders: chokidar reports new files as soon as their size stops changing
 * (awaitWriteFinish), so acks are read without waiting for the next listing.
 */
export class FolderWatcher {
  private readonly watcher: FSWatcher;

  constructor(
    absoluteDir: string,
    relativeFolder: string,
    options: DiscoveryOptions & { usePolling: boolean; intervalMs: number },
    onReady: (file: ReadyFile) => void,
  ) {
    const now = options.now ?? Date.now;
    this.watcher = watch(absoluteDir, {
      depth: 0,
      ignoreInitial: false,
      persistent: true,
      usePolling: options.usePolling,
      interval: options.intervalMs,
      alwaysStat: true,
      awaitWriteFinish: {
        stabilityThreshold: Math.max(options.minAgeMs, 50),
        pollInterval: Math.min(100, Math.max(options.minAgeMs, 50)),
      },
      ignored: (path, stats) =>
        path !== absoluteDir && (options.ignored(posix.basename(path)) || (stats !== undefined && !stats.isFile())),
    });
    const report = (path: string, stats?: { size: number; mtimeMs: number }): void => {
      const name = posix.basename(path);
      if (options.ignored(name) || posix.dirname(path) !== absoluteDir) return;
      onReady({
        path: relativeFolder === '' || relativeFolder === '.' ? name : `${relativeFolder}/${name}`,
        name,
        size: stats?.size ?? 0,
        mtimeMs: stats?.mtimeMs ?? 0,
        firstSeenAt: now(),
      });
    };
    this.watcher.on('add', report);
    this.watcher.on('change', report);
    this.watcher.on('error', (error) =>
      options.logger.warn(
        { err: String(error), folder: absoluteDir },
        'ack folder watcher error; the periodic listing still runs',
      ),
    );
  }

  async close(): Promise<void> {
    await this.watcher.close();
  }
}
