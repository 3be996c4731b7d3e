import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import type { Command } from 'commander';
import { parse as parseYaml } from 'yaml';
import { configPath } from '../../config/index.ts';
import { BridgeError } from '../../errors.ts';
import {
  EXPORT_STATES,
  ledgerConfigSchema,
  openLedger,
  stateOf,
  type AckOutcome,
  type ExportRecord,
  type ExportState,
  type Ledger,
} from '../../ledger/index.ts';
import { batchListing } from './status-batches.ts';
import { table, time } from './text-table.ts';

interface StatusOptions {
  config?: string;
  state?: string;
  mapping?: string;
  target?: string;
  olderThan?: string;
  newerThan?: string;
  json?: boolean;
  limit?: number;
  batches?: boolean;
}

export function register(program: Command): void {
  program
    .command('status')
    .description(
      'List exports with their state (uploaded, awaiting_ack, accepted, rejected, ack_timeout, ...); with ANNOTATION_ID, its whole history',
    )
    .argument('[annotationId]', 'show every export of this annotation with its history')
    .option('-c, --config <path>', 'config file (default: $BRIDGE_CONFIG or ./bridge.yaml)')
    .option('--state <states>', `comma-separated: ${EXPORT_STATES.join(', ')}`)
    .option('--mapping <name>', 'only this mapping')
    .option('--target <name>', 'only this target')
    .option('--older-than <age>', 'created before this long ago (e.g. 30m, 2h, 7d)')
    .option('--newer-than <age>', 'created within this long (e.g. 30m, 2h, 7d)')
    .option('--limit <n>', 'at most this many exports (newest last)', (value) => Number.parseInt(value, 10), 200)
    .option('--batches', 'list batches (newest first) and the documents in each')
    .option('--json', 'print JSON instead of a table')
    .action(async (annotationId: string | undefined, options: StatusOptions) => {
      const ledger = await openLedger(ledgerUrlOf(configPath(options.config)));
      try {
        const text =
          options.batches && annotationId === undefined
            ? await batchListing(ledger, options)
            : annotationId === undefined
              ? await listing(ledger, options)
              : await history(ledger, parseId(annotationId), options.json ?? false);
        process.stdout.write(text);
      } finally {
        await ledger.close();
      }
    });
}

/**
 * `status` reads the ledger only: it takes `ledger.url` from the config file (with its `${ENV}`
 * references) and nothing else, so it runs without the webhook secret or Rossum credentials in the
 * environment.
 */
export function ledgerUrlOf(file: string, env: NodeJS.ProcessEnv = process.env): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new BridgeError('CONFIG_INVALID', `cannot read the config file ${file}: ${(error as Error).message}`, {
      permanent: true,
    });
  }
  let document: unknown;
  try {
    document = parseYaml(text);
  } catch (error) {
    throw new BridgeError('CONFIG_INVALID', `${file}: ${(error as Error).message}`, { permanent: true });
  }
  const raw = typeof document === 'object' && document !== null ? (document as { ledger?: unknown }).ledger : undefined;
  const missing: string[] = [];
  const interpolated =
    typeof raw === 'object' && raw !== null && typeof (raw as { url?: unknown }).url === 'string'
      ? {
          ...raw,
          url: (raw as { url: string }).url.replace(
            /\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g,
            (_match, name: string, fallback: string | undefined) => {
              const value = env[name];
              if (value !== undefined && value !== '') return value;
              if (fallback !== undefined) return fallback;
              missing.push(name);
              return '';
            },
          ),
        }
      : (raw ?? {});
  if (missing.length > 0)
    throw new BridgeError(
      'CONFIG_INVALID',
      `${file}: ledger.url: environment variable ${missing.join(', ')} is not set`,
      { permanent: true },
    );
  const parsed = ledgerConfigSchema.safeParse(interpolated);
  if (!parsed.success)
    throw new BridgeError('CONFIG_INVALID', `${file}: ledger: ${parsed.error.issues[0]?.message ?? 'invalid'}`, {
      permanent: true,
    });
  const url = parsed.data.url;
  if (!url.startsWith('sqlite:') || url === 'sqlite::memory:') return url;
  const path = url.slice('sqlite:'.length);
  return isAbsolute(path) ? url : `sqlite:${resolve(dirname(file), path)}`;
}

function parseId(value: string): number {
  const id = Number(value);
  if (!Number.isSafeInteger(id) || id <= 0)
    throw new BridgeError('BAD_ARGUMENT', `"${value}" is not an annotation id`, { permanent: true });
  return id;
}

/** `90s`, `30m`, `2h`, `7d`, or plain milliseconds. */
export function parseAge(value: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?$/.exec(value.trim());
  if (!match) throw new BridgeError('BAD_ARGUMENT', `"${value}" is not an age like 30m, 2h or 7d`, { permanent: true });
  const unit = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 }[(match[2] ?? 'ms') as 'ms'];
  return Number(match[1]) * unit;
}

function parseStates(value: string | undefined): ExportState[] | undefined {
  if (value === undefined) return undefined;
  const states = value
    .split(',')
    .map((state) => state.trim())
    .filter(Boolean);
  const unknown = states.filter((state) => !(EXPORT_STATES as readonly string[]).includes(state));
  if (unknown.length > 0)
    throw new BridgeError('BAD_ARGUMENT', `unknown state ${unknown.join(', ')}: use ${EXPORT_STATES.join(', ')}`, {
      permanent: true,
    });
  return states as ExportState[];
}

async function listing(ledger: Ledger, options: StatusOptions): Promise<string> {
  const now = Date.now();
  const states = parseStates(options.state);
  const records = await ledger.list({
    ...(states ? { state: states } : {}),
    ...(options.mapping ? { mappingName: options.mapping } : {}),
    ...(options.target ? { target: options.target } : {}),
    ...(options.olderThan ? { createdBefore: now - parseAge(options.olderThan) } : {}),
    ...(options.newerThan ? { createdAfter: now - parseAge(options.newerThan) } : {}),
    limit: options.limit ?? 200,
  });
  const stories = new Map<number, RossumStory | null>();
  for (const record of records) stories.set(record.id, rossumStory(await ledger.outcomes(record.id)));
  if (options.json)
    return `${JSON.stringify(
      records.map((record) => ({ ...summary(record), rossum: stories.get(record.id) ?? null })),
      null,
      2,
    )}\n`;
  if (records.length === 0) return 'no exports match\n';
  const rows = records.map((record) => [
    String(record.id),
    String(record.annotationId),
    stateOf(record),
    record.mappingName,
    record.target,
    fileColumn(record),
    time(record.uploadedAt ?? record.createdAt),
    record.ackFile ?? '',
    record.erpReference ?? record.error ?? '',
    stories.get(record.id)?.text ?? '',
  ]);
  return table(
    ['EXPORT', 'ANNOTATION', 'STATE', 'MAPPING', 'TARGET', 'FILE', 'UPLOADED', 'ACK FILE', 'ERP REF / ERROR', 'ROSSUM'],
    rows,
  );
}

/** Whether Rossum has been told the ERP's verdict, in one line and as data. */
export interface RossumStory {
  state: 'told' | 'pending' | 'left_alone' | 'gone' | 'failed' | 'nothing_to_tell';
  outcome: AckOutcome['kind'];
  attempts: number;
  pendingSince: string | null;
  lastAttemptAt: string | null;
  lastError: string | null;
  result: string | null;
  text: string;
}

/** The outcome that decides what Rossum shows: the newest one that needed telling. */
export function rossumStory(outcomes: readonly AckOutcome[]): RossumStory | null {
  const deciding = [...outcomes].reverse().find((outcome) => outcome.delivery !== 'not_needed') ?? outcomes.at(-1);
  if (!deciding) return null;
  const base = {
    outcome: deciding.kind,
    attempts: deciding.attempts,
    pendingSince: deciding.delivery === 'pending' ? iso(deciding.createdAt) : null,
    lastAttemptAt: iso(deciding.lastAttemptAt),
    lastError: deciding.lastError,
    result: deciding.result,
  };
  const attempts = `${deciding.attempts} attempt${deciding.attempts === 1 ? '' : 's'}`;
  switch (deciding.delivery) {
    case 'delivered':
      return {
        ...base,
        state: 'told',
        text: `told (${deciding.kind}${deciding.result ? `: ${deciding.result}` : ''}) at ${time(deciding.deliveredAt ?? deciding.createdAt)}`,
      };
    case 'by_hold':
      return {
        ...base,
        state: 'told',
        text: `told (${deciding.kind}) by the held export reply at ${time(deciding.deliveredAt ?? deciding.createdAt)}`,
      };
    case 'pending':
      return {
        ...base,
        state: 'pending',
        text: `pending since ${time(deciding.createdAt)}, ${attempts}${deciding.lastError ? `, last error: ${deciding.lastError}` : ''}`,
      };
    case 'left_alone':
      return { ...base, state: 'left_alone', text: deciding.result ?? 'left alone' };
    case 'gone':
      return { ...base, state: 'gone', text: deciding.result ?? `gone: ${deciding.lastError ?? ''}` };
    case 'failed':
      return {
        ...base,
        state: 'failed',
        text: `not told, needs a human after ${attempts}: ${deciding.lastError ?? 'unknown error'}`,
      };
    case 'not_needed':
      return { ...base, state: 'nothing_to_tell', text: `nothing to tell (${deciding.kind})` };
  }
}

interface ExportSummary {
  exportId: number;
  annotationId: number;
  state: ExportState;
  uploadStatus: ExportRecord['status'];
  ackState: ExportRecord['ackState'];
  mapping: string;
  target: string;
  file: string;
  /** The original document uploaded before the data file (`document:` mappings). */
  document: string | null;
  documentUploadedAt: string | null;
  sequenceNumber: number | null;
  createdAt: string | null;
  uploadedAt: string | null;
  ackDeadlineAt: string | null;
  ackAt: string | null;
  ackFile: string | null;
  erpReference: string | null;
  error: string | null;
  held: ExportRecord['holdState'];
}

/** The data file, and its original document when the mapping uploads one (not yet there: "pending"). */
function fileColumn(record: ExportRecord): string {
  const file = record.remotePath ?? record.plannedPath;
  if (!record.documentPath) return file;
  return `${file} + ${record.documentPath}${record.documentUploadedAt === null ? ' (pending)' : ''}`;
}

function summary(record: ExportRecord): ExportSummary {
  return {
    exportId: record.id,
    annotationId: record.annotationId,
    state: stateOf(record),
    uploadStatus: record.status,
    ackState: record.ackState,
    mapping: record.mappingName,
    target: record.target,
    file: record.remotePath ?? record.plannedPath,
    document: record.documentPath,
    documentUploadedAt: iso(record.documentUploadedAt),
    sequenceNumber: record.sequenceNumber,
    createdAt: iso(record.createdAt),
    uploadedAt: iso(record.uploadedAt),
    ackDeadlineAt: iso(record.ackDeadlineAt),
    ackAt: iso(record.ackAt),
    ackFile: record.ackFile,
    erpReference: record.erpReference,
    error: record.error,
    held: record.holdState,
  };
}

export async function history(ledger: Ledger, annotationId: number, json: boolean): Promise<string> {
  const records = await ledger.list({ annotationId, limit: 1000 });
  const exports = await Promise.all(
    records.map(async (record) => ({
      ...summary(record),
      events: (await ledger.events(record.id)).map((event) => ({
        at: iso(event.at),
        kind: event.kind,
        ...event.detail,
      })),
      rossum: (await ledger.outcomes(record.id)).map((outcome) => ({
        outcome: outcome.kind,
        delivery: outcome.delivery,
        attempts: outcome.attempts,
        at: iso(outcome.createdAt),
        deliveredAt: iso(outcome.deliveredAt),
        lastAttemptAt: iso(outcome.lastAttemptAt),
        ackFile: outcome.detail.ackFile ?? null,
        messages: outcome.detail.messages,
        lastError: outcome.lastError,
        result: outcome.result,
      })),
      rossumStory: rossumStory(await ledger.outcomes(record.id)),
    })),
  );
  // A document waiting in a batch has no export yet: the batches it is (or was) in say where it stands.
  const batches = (await ledger.listBatches({ annotationId, limit: 1000 })).map((batch) => ({
    batch: batch.number,
    state: batch.status,
    mapping: batch.mappingName,
    target: batch.target,
    documents: batch.documents,
    closesAt: iso(batch.closedAt ?? batch.closesAt),
    sentAt: iso(batch.sentAt),
    file: batch.remotePath ?? batch.fileName,
  }));
  if (json) return `${JSON.stringify({ annotationId, exports, batches }, null, 2)}\n`;
  if (exports.length === 0 && batches.length === 0) return `no exports of annotation ${annotationId} in the ledger\n`;
  const parts: string[] = batches.map(
    (batch) =>
      `batch ${batch.batch} (mapping ${batch.mapping}, target ${batch.target}): ${batch.state}, ${batch.documents} documents, ${batch.sentAt ? `sent ${batch.sentAt} as ${batch.file}` : `closes ${batch.closesAt}`}`,
  );
  for (const entry of exports) {
    parts.push(
      `export ${entry.exportId} of annotation ${annotationId}: ${entry.state} — ${entry.file} (mapping ${entry.mapping}, target ${entry.target})`,
    );
    if (entry.rossumStory) parts.push(`Rossum: ${entry.rossumStory.text}`);
    parts.push(
      table(
        ['TIME', 'EVENT', 'DETAIL'],
        entry.events.map(({ at, kind, ...detail }) => [
          String(at),
          kind,
          Object.entries(detail)
            .map(([key, value]) => `${key}=${typeof value === 'string' ? value : JSON.stringify(value)}`)
            .join(' '),
        ]),
      ),
    );
  }
  return parts.join('\n');
}

function iso(ms: number | null): string | null {
  return ms === null ? null : new Date(ms).toISOString();
}
