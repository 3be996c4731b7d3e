import type { BatchEntry, BatchSettings } from './contract.ts';
import { mappingError } from './errors.ts';
import { Decimal, parseDecimal, plain } from './format.ts';
import type { CompiledCsv } from './csv.ts';
import { renderCsv } from './csv.ts';
import type { Emitter } from './emit.ts';
import { compileFixed, renderFixed, type CompiledFixed } from './fixed.ts';
import { namespaceAttributesOf, xmlDeclaration, type CompiledXml } from './xml.ts';
import type { OutputEncoding } from './encoding.ts';
import type { BatchConfig, MappingSource } from './schema.ts';
import { newScope, type CompileEnv, type CompiledValue, type DocScope } from './scope.ts';
import { compileValue } from './values.ts';

/** A batch mapping's schedule and its own parts (fixed-width header/trailer, XML root, totals). */
export interface CompiledBatch {
  settings: BatchSettings;
  root: string;
  header: CompiledFixed | undefined;
  trailer: CompiledFixed | undefined;
  totals: Map<string, CompiledValue>;
}

const UNIT_MS = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
const SHORTEST_PERIOD_MS = 1000;
const LONGEST_PERIOD_MS = 31 * UNIT_MS.d;

export function compileBatch(
  source: MappingSource,
  env: CompileEnv,
  encoding: OutputEncoding | undefined,
): CompiledBatch | undefined {
  const config = source.batch;
  if (!config) return undefined;
  const problem = env.problem;
  if (config.every === undefined && config.at === undefined)
    problem(['batch'], 'a batch needs a time to close', 'add every: 15m, or at: "18:00" with timezone:');
  if (config.every !== undefined && config.at !== undefined)
    problem(['batch', 'at'], 'every: and at: both set; a batch closes on one schedule', 'keep one of them');
  const everyMs = config.every === undefined ? undefined : periodMs(config.every);
  if (everyMs !== undefined && (everyMs < SHORTEST_PERIOD_MS || everyMs > LONGEST_PERIOD_MS))
    problem(['batch', 'every'], `the period must be between 1s and 31d, not ${config.every}`);
  if (!validTimeZone(config.timezone))
    problem(
      ['batch', 'timezone'],
      `unknown time zone "${config.timezone}"`,
      'an IANA name such as Europe/Prague or UTC',
    );
  if (source.format === 'edifact')
    problem(['batch'], 'batches are not available for EDIFACT (an interchange per document)', 'remove batch:');
  if (source.document)
    problem(
      ['document'],
      'a batch file holds many documents, so no single original document goes beside it',
      'remove document: or batch:',
    );
  if (config.root !== undefined && source.format !== 'xml')
    problem(['batch', 'root'], 'root is for XML batches', 'remove it');
  for (const part of ['header', 'trailer'] as const)
    if (config[part] && source.format !== 'fixed')
      problem(['batch', part], `${part} is for fixed-width batches (CSV has its header row, XML its root)`);
  if (config.root !== undefined && !/^[A-Za-z_][\w.-]*(?::[A-Za-z_][\w.-]*)?$/.test(config.root))
    problem(['batch', 'root'], `"${config.root}" is not an XML element name`);

  const totals = new Map<string, CompiledValue>();
  for (const [name, spec] of Object.entries(config.totals ?? {}))
    totals.set(name, compileValue(spec, env, ['batch', 'totals', name]));
  const record = (part: 'header' | 'trailer'): CompiledFixed | undefined => {
    const spec = config[part];
    if (!spec || source.format !== 'fixed') return undefined;
    if (spec.rows) problem(['batch', part, 'rows'], `the batch ${part} is written once, not per row`);
    // compileFixed names its problems fixed.records.0.…; they belong at batch.header / batch.trailer.
    const partEnv: CompileEnv = {
      ...env,
      problem: (path, message, hint) =>
        env.problem(path[0] === 'fixed' ? ['batch', part, ...path.slice(3)] : path, message, hint),
    };
    return compileFixed({ fill: source.fixed?.fill ?? ' ', records: [spec] }, partEnv, encoding);
  };
  return {
    settings: { ...scheduleOf(config, everyMs), counter: source.sequence?.counter, start: source.sequence?.start ?? 1 },
    root: config.root ?? 'Batch',
    header: record('header'),
    trailer: record('trailer'),
    totals,
  };
}

function periodMs(every: string): number {
  const unit = every.slice(-1) as keyof typeof UNIT_MS;
  return Number(every.slice(0, -1)) * UNIT_MS[unit];
}

function validTimeZone(timeZone: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone });
    return true;
  } catch {
    return false;
  }
}

function scheduleOf(config: BatchConfig, everyMs: number | undefined): Omit<BatchSettings, 'counter' | 'start'> {
  const timeZone = validTimeZone(config.timezone) ? config.timezone : 'UTC';
  const at = config.at;
  return {
    everyMs,
    at,
    timezone: config.timezone,
    maxDocuments: config.max_documents,
    closesAt(openedAt: number): number {
      if (everyMs !== undefined) return (Math.floor(openedAt / everyMs) + 1) * everyMs;
      if (at !== undefined) return nextLocalTime(openedAt, at, timeZone);
      return openedAt;
    },
  };
}

/** The first instant after `after` at which the wall clock in `timeZone` reads `hhmm` (skipped by DST: an hour later). */
export function nextLocalTime(after: number, hhmm: string, timeZone: string): number {
  const [hours, minutes] = hhmm.split(':').map(Number) as [number, number];
  const local = new Date(after + zoneOffsetMs(after, timeZone));
  for (let day = 0; day <= 2; day++) {
    const wall = Date.UTC(local.getUTCFullYear(), local.getUTCMonth(), local.getUTCDate() + day, hours, minutes);
    let instant = wall - zoneOffsetMs(wall, timeZone);
    instant = wall - zoneOffsetMs(instant, timeZone);
    if (instant > after) return instant;
  }
  throw new Error(`no ${hhmm} in ${timeZone} within two days`);
}

function zoneOffsetMs(instant: number, timeZone: string): number {
  const parts = new Intl.DateTimeFormat('en-US', {
    timeZone,
    hourCycle: 'h23',
    year: 'numeric',
    month: 'numeric',
    day: 'numeric',
    hour: 'numeric',
    minute: 'numeric',
    second: 'numeric',
  }).formatToParts(new Date(instant));
  const part = (type: string): number => Number(parts.find((p) => p.type === type)?.value);
  const wall = Date.UTC(part('year'), part('month') - 1, part('day'), part('hour'), part('minute'), part('second'));
  return wall - Math.floor(instant / 1000) * 1000;
}

/** A document's `batch.totals`, as plain decimals (a missing value counts 0). */
export function entryTotals(batch: CompiledBatch, doc: DocScope): Record<string, string> {
  const totals: Record<string, string> = {};
  const scope = newScope(doc);
  for (const [name, value] of batch.totals) {
    scope.at = `batch.totals.${name}`;
    const text = value.evaluate(scope);
    if (text === undefined || text.trim() === '') {
      totals[name] = '0';
      continue;
    }
    const number = parseDecimal(text);
    if (!number)
      throw mappingError(
        'MAPPING_INVALID',
        `batch.totals.${name}: "${text}" is not a plain number (totals are summed; leave number formatting to the trailer field)`,
        scope.datapoint?.id,
      );
    totals[name] = plain(number);
  }
  return totals;
}

/** The totals of a batch: each name summed over its documents, exactly. */
export function sumTotals(batch: CompiledBatch, entries: readonly BatchEntry[]): Record<string, string> {
  const sums: Record<string, string> = {};
  for (const name of batch.totals.keys())
    sums[name] = plain(entries.reduce((sum, entry) => sum.plus(entry.totals[name] ?? '0'), new Decimal(0)));
  return sums;
}

/** The batch file's text: the entries in order inside the format's one header/root/trailer. */
export function assembleBatch(
  parts: {
    batch: CompiledBatch;
    csv: CompiledCsv | undefined;
    xml: CompiledXml | undefined;
    emitter: Emitter;
    eol: string;
    finalNewline: boolean;
    declarationEncoding: string;
  },
  entries: readonly BatchEntry[],
): string {
  const { batch, csv, xml, emitter, eol } = parts;
  const body = entries.map((entry) => entry.text).join('');
  let text: string;
  if (xml) {
    const separator = xml.config.pretty ? eol : '';
    text = `${xmlDeclaration(xml, eol, parts.declarationEncoding)}<${batch.root}${namespaceAttributesOf(xml)}>${separator}${body}</${batch.root}>${eol}`;
  } else if (csv) {
    text = (csv.config.header ? renderCsv(csv, emitter, eol, true, { header: true, records: false }) : '') + body;
  } else {
    const record = (fixed: CompiledFixed | undefined): string => (fixed ? renderFixed(fixed, emitter, eol, true) : '');
    text = record(batch.header) + body + record(batch.trailer);
  }
  return !parts.finalNewline && text.endsWith(eol) ? text.slice(0, text.length - eol.length) : text;
}
