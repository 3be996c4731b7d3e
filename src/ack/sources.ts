import { posix } from 'node:path';
import type { Logger } from '../observability/index.ts';
import { parseTargetUrl, type Target, type TargetConfig } from '../transport/index.ts';
import type { AcksConfig } from './config.ts';
import { createConvention, type AckConvention } from './conventions.ts';
import { FolderWatcher, PollingDiscovery, type ReadyFile } from './discovery.ts';
import { compileIgnore } from './pattern.ts';

/** One ack convention and the mappings whose ERPs answer in it. */
export interface Handler {
  convention: AckConvention;
  mappingNames: string[];
}

/** One ack folder: where an export target's ERP answers. */
export interface Source {
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
  /** Files of this folder that could not be read or recorded in the current pass (an answer may be among them). */
  unreadThisPass: number;
  /** Files the watcher reported since the last flush (gathered into batches). */
  watched: ReadyFile[];
}

export interface SourceSetup {
  acks: AcksConfig;
  targets: ReadonlyMap<string, Target>;
  targetConfigs: Readonly<Record<string, TargetConfig>>;
  routes: ReadonlyArray<{ mapping: string; target: string }>;
  logger: Logger;
  now: () => number;
}

/** The ack folders of the config, each with its parsers, its listing and (file:// folders) its watcher. */
export function buildSources(setup: SourceSetup, onWatched: (source: Source, file: ReadyFile) => void): Source[] {
  const { acks, routes, targetConfigs, logger, now } = setup;
  const routedMappings = new Set(routes.map((route) => route.mapping));
  const sources: Source[] = [];
  for (const [name, sourceConfig] of Object.entries(acks.targets)) {
    const readFrom = sourceConfig.readFrom ?? name;
    const target = setup.targets.get(readFrom);
    if (!target) throw new Error(`acks.targets.${name}: no target "${readFrom}" is configured`);
    const mappingNames = Object.keys(acks.byMapping).filter(
      (mapping) =>
        !routedMappings.has(mapping) || routes.some((route) => route.mapping === mapping && route.target === name),
    );
    const folder = sourceConfig.folder.replace(/^\.?\/*|\/+$/g, '');
    const tempSuffix = targetConfigs[readFrom]?.upload.tempSuffix ?? '.part';
    const archive = new Set(Object.values(acks.folders));
    const ignorePatterns = compileIgnore(acks.ignore);
    // Dot-files and our own temp names are half-written uploads; archive folders are ours.
    const ignored = (fileName: string): boolean =>
      fileName.startsWith('.') || fileName.endsWith(tempSuffix) || archive.has(fileName) || ignorePatterns(fileName);
    const log = logger.child({ ackSource: name });
    const source: Source = {
      name,
      target,
      folder,
      handlers: groupHandlers(mappingNames, acks),
      discovery: new PollingDiscovery(target, folder, { minAgeMs: acks.minAgeMs, ignored, logger: log, now }),
      watcher: undefined,
      unknownNames: new Set(),
      goodLooks: 0,
      unreadThisPass: 0,
      watched: [],
    };
    const url = parseTargetUrl(targetConfigs[readFrom]?.url ?? '');
    const events =
      sourceConfig.watch === 'events' || (sourceConfig.watch === 'auto' && url.ok && url.value.scheme === 'file');
    if (events && url.ok && url.value.scheme === 'file') {
      const absolute = folder === '' ? url.value.dir : posix.join(url.value.dir, folder);
      source.watcher = new FolderWatcher(
        absolute,
        folder,
        {
          minAgeMs: acks.minAgeMs,
          ignored,
          logger: log,
          usePolling: acks.usePolling,
          intervalMs: acks.watchIntervalMs,
        },
        (file) => onWatched(source, file),
      );
    }
    sources.push(source);
  }
  return sources;
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
    else groups.set(key, { convention: createConvention(mapping, acks.limits), mappingNames: [name] });
  }
  return [...groups.values()];
}
