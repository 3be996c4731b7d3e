import type { Command } from 'commander';
import { configPath, loadConfig } from '../../config/index.ts';
import { BridgeError } from '../../errors.ts';
import {
  EXPORT_STATES,
  openLedger,
  stateOf,
  type ExportRecord,
  type ExportState,
  type Ledger,
} from '../../ledger/index.ts';

interface StatusOptions {
  config?: string;
  state?: string;
  mapping?: string;
  target?: string;
  olderThan?: string;
  newerThan?: string;
  json?: boolean;
  limit?: number;
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
    .option('--json', 'print JSON instead of a table')
    .action(async (annotationId: string | undefined, options: StatusOptions) => {
      const { config } = loadConfig(configPath(options.config));
      const ledger = await openLedger(config.ledger.url);
      try {
        const text =
          annotationId === undefined
            ? await listing(ledger, options)
            : await history(ledger, parseId(annotationId), options.json ?? false);
        process.stdout.write(text);
      } finally {
        await ledger.close();
      }
    });
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
  if (options.json)
    return `${JSON.stringify(
      records.map((record) => summary(record)),
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
  ]);
  return table(
    ['EXPORT', 'ANNOTATION', 'STATE', 'MAPPING', 'TARGET', 'FILE', 'UPLOADED', 'ACK FILE', 'ERP REF / ERROR'],
    rows,
  );
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

async function history(ledger: Ledger, annotationId: number, json: boolean): Promise<string> {
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
        ackFile: outcome.detail.ackFile ?? null,
        messages: outcome.detail.messages,
        lastError: outcome.lastError,
      })),
    })),
  );
  if (json) return `${JSON.stringify({ annotationId, exports }, null, 2)}\n`;
  if (exports.length === 0) return `no exports of annotation ${annotationId} in the ledger\n`;
  const parts: string[] = [];
  for (const entry of exports) {
    parts.push(
      `export ${entry.exportId} of annotation ${annotationId}: ${entry.state} — ${entry.file} (mapping ${entry.mapping}, target ${entry.target})`,
    );
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

function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((header, i) =>
    Math.min(60, Math.max(header.length, ...rows.map((row) => (row[i] ?? '').length))),
  );
  const line = (cells: string[]): string =>
    cells
      .map((cell, i) =>
        cell.length > (widths[i] as number)
          ? `${cell.slice(0, (widths[i] as number) - 1)}…`
          : cell.padEnd(widths[i] as number),
      )
      .join('  ')
      .trimEnd();
  return `${[line(headers), ...rows.map(line)].join('\n')}\n`;
}

function iso(ms: number | null): string | null {
  return ms === null ? null : new Date(ms).toISOString();
}

function time(ms: number): string {
  return new Date(ms).toISOString().replace('T', ' ').slice(0, 19);
}
