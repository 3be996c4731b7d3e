import type { AckOutcome, ExportRecord } from '../ledger/index.ts';
import { cleanContent, cleanText, type AnnotationStatus } from '../rossum/index.ts';
import type { AcksConfig } from './config.ts';

/** Rossum keeps at most 4 kB of metadata per object (all keys together, ours and everyone else's). */
export const ROSSUM_METADATA_LIMIT = 4096;
const CODES = 10;
const MESSAGES = 10;
const CODE_CHARS = 40;
const SUMMARY_CHARS = 200;
const PATH_CHARS = 200;

/** What one outcome does in Rossum: the full text goes into the note, the metadata carries a bounded summary. */
export interface Plan {
  status?: AnnotationStatus;
  note?: string;
  metadata?: Record<string, unknown>;
}

export function planOutcome(outcome: AckOutcome, record: ExportRecord, config: AcksConfig, now: number): Plan {
  const file = record.remotePath ?? record.plannedPath;
  const { detail } = outcome;
  // ERP text is foreign: no control characters or bidi overrides reach Rossum.
  const reasons = detail.messages.map((m) => cleanText(m.code ? `${m.code} ${m.text}` : m.text));
  const codes = detail.messages.flatMap((m) => (m.code ? [cleanContent(m.code, CODE_CHARS)] : [])).slice(0, CODES);
  const messages = reasons.slice(0, MESSAGES).map((reason) => cleanContent(reason, SUMMARY_CHARS));
  const summary =
    reasons.length === 0
      ? null
      : cleanContent(
          `${reasons[0]}${reasons.length > 1 ? ` (+${reasons.length - 1} more)` : ''}`.replace(/\s+/g, ' '),
          SUMMARY_CHARS,
        );
  const common = {
    exportFile: cleanContent(file, PATH_CHARS),
    ackFile: detail.ackFile ? cleanContent(detail.ackFile, PATH_CHARS) : null,
    at: new Date(now).toISOString(),
  };
  const mapping = config.byMapping[record.mappingName];
  const noteRef = { note: 'full text in the rejection note' };
  switch (outcome.kind) {
    case 'rejected':
    case 'rejected_late':
      return {
        status: 'failed_export',
        note: [
          `The ERP rejected ${file}${outcome.kind === 'rejected_late' ? ' (its answer came after the deadline)' : ''} — ack ${detail.ackFile}:`,
          ...reasons,
        ].join('\n'),
        metadata: {
          ...common,
          result: 'rejected',
          codes,
          summary,
          messages,
          ...noteRef,
          ...(outcome.kind === 'rejected_late' ? { late: true } : {}),
        },
      };
    case 'invalid':
      return {
        status: 'failed_export',
        note: `The ERP's answer for ${file} (${detail.ackFile}) could not be read: ${reasons.join('; ')}. Check the file in the ack folder's invalid/ folder.`,
        metadata: { ...common, result: 'invalid_ack', summary, messages, ...noteRef },
      };
    case 'timeout': {
      const window = mapping ? formatDuration(mapping.deadlineMs) : null;
      return {
        status: 'failed_export',
        note: `No answer from the ERP for ${file} within ${window ?? 'the deadline'} (deadline ${new Date(detail.deadlineAt ?? 0).toISOString()}). Check that the ERP imported it; a late positive answer will restore the export.`,
        metadata: { ...common, result: 'timeout', deadlineAt: new Date(detail.deadlineAt ?? 0).toISOString() },
      };
    }
    case 'accepted_late':
      return {
        status: 'exported',
        metadata: {
          ...common,
          result: 'accepted',
          late: true,
          message: `The ERP accepted ${cleanContent(file, PATH_CHARS)} late (after ${detail.previousState === 'ack_invalid' ? 'an unreadable answer' : 'the deadline'})`,
          ...(detail.erpReference ? { erpReference: cleanContent(detail.erpReference, SUMMARY_CHARS) } : {}),
        },
      };
    case 'accepted':
      if (!mapping?.storeErpReference || !detail.erpReference) return {};
      return {
        metadata: { ...common, result: 'accepted', erpReference: cleanContent(detail.erpReference, SUMMARY_CHARS) },
      };
    case 'duplicate':
      return {};
  }
}

/**
 * The annotation's metadata with our key set, under Rossum's 4 kB whatever the ERP said: the other keys
 * are kept as they are; ours sheds its summary, then its codes and paths, down to result and outcome id.
 * Sized as Rossum's Python serializer writes it (spaces after separators, non-ASCII as `\uXXXX`), so
 * the estimate is never below what Rossum counts.
 */
export function boundedMetadata(
  current: Record<string, unknown>,
  key: string,
  ours: Record<string, unknown>,
  limit = ROSSUM_METADATA_LIMIT,
): Record<string, unknown> {
  const shedding: Array<(value: Record<string, unknown>) => Record<string, unknown>> = [
    (value) => value,
    ({ messages: _messages, ...rest }) => rest,
    ({ messages: _messages, summary: _summary, message: _message, ...rest }) => rest,
    ({ messages: _messages, summary: _summary, message: _message, codes: _codes, ...rest }) => rest,
    ({
      messages: _messages,
      summary: _summary,
      message: _message,
      codes: _codes,
      exportFile: _exportFile,
      ackFile: _ackFile,
      erpReference: _erpReference,
      ...rest
    }) => rest,
    (value) => ({ result: value.result, outcomeId: value.outcomeId, state: value.state }),
  ];
  let candidate: Record<string, unknown> = { ...current, [key]: ours };
  for (const shed of shedding) {
    candidate = { ...current, [key]: shed(ours) };
    if (serializedSize(candidate) <= limit) return candidate;
  }
  return candidate;
}

/** Bytes of `value` as a Python `json.dumps` (default separators, ensure_ascii) writes it. */
export function serializedSize(value: unknown): number {
  const compact = JSON.stringify(value) ?? '';
  let size = 0;
  let inString = false;
  for (let i = 0; i < compact.length; i++) {
    const char = compact.charCodeAt(i);
    if (inString) {
      if (char === 0x5c) {
        size += 2;
        i++;
        continue;
      }
      if (char === 0x22) inString = false;
      size += char > 0x7e ? 6 : 1;
      continue;
    }
    if (char === 0x22) inString = true;
    size += char === 0x3a || char === 0x2c ? 2 : 1;
  }
  return size;
}

/** "30 min", "45 s", "2 h 5 min": deadlines shorter than a minute must not read "0 min". */
export function formatDuration(ms: number): string {
  if (ms < 60_000) return `${Math.max(1, Math.round(ms / 1000))} s`;
  const minutes = Math.round(ms / 60_000);
  if (minutes < 60) return `${minutes} min`;
  return minutes % 60 === 0 ? `${minutes / 60} h` : `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}
