import { describeError, isBridgeError, type ErrorCode } from '../errors.ts';
import type { ExportRecord, StoredReply } from '../ledger/index.ts';
import type { RenderedFile } from '../mapping/index.ts';
import type { ExportOutcome } from '../observability/index.ts';
import { ROSSUM_MESSAGE_LIMIT as MESSAGE_LIMIT, truncateContent } from '../rossum/index.ts';
import type { PlacedDocument } from './document.ts';

/** A message in Rossum's hook reply format. */
export interface RossumMessage {
  type: 'info' | 'warning' | 'error';
  content: string;
  id?: number;
}

export interface ExportReply {
  /** 200 = final answer (info → exported, error → failed_export); 503 = transient, Rossum retries. */
  statusCode: 200 | 503;
  body: { messages: RossumMessage[] };
  outcome: ExportOutcome;
  /** The ledger record answered for (held-export mode waits on its ack). */
  exportId?: number;
  mappingName?: string;
}

/** Rossum shows messages in its UI; very long ones are cut with a marker. */
export function limitMessage(text: string): string {
  return truncateContent(text, MESSAGE_LIMIT);
}

/** The reply for an error: permanent ones are final (200 + error → failed_export), the rest 503. */
export function errorReply(error: unknown, outcome: ExportOutcome, prefix = ''): ExportReply {
  const permanent = isBridgeError(error) ? error.permanent : false;
  const message: RossumMessage = { type: 'error', content: limitMessage(`${prefix}${describeError(error)}`) };
  const datapointId = isBridgeError(error) ? error.location.datapointId : undefined;
  if (datapointId !== undefined) message.id = datapointId;
  return { statusCode: permanent ? 200 : 503, outcome, body: { messages: [message] } };
}

export function transientReply(content: string): ExportReply {
  return {
    statusCode: 503,
    outcome: 'transient_error',
    body: { messages: [{ type: 'error', content: limitMessage(content) }] },
  };
}

/** A 200 `exported` answer: the info line naming the file, then any further messages. */
export function exportedReply(content: string, more: RossumMessage[] = []): ExportReply {
  return {
    statusCode: 200,
    outcome: 'exported',
    body: { messages: [{ type: 'info', content: limitMessage(content) }, ...more] },
  };
}

/** What an uploaded export tells Rossum: the file, a taken name, the document placed first, render warnings. */
export function successReply(
  prepared: { file: RenderedFile; mappingName: string; target: { description: string } },
  remotePath: string,
  placed?: PlacedDocument,
): ExportReply {
  const renamed = remotePath !== prepared.file.fileName ? ` (the name ${prepared.file.fileName} was taken)` : '';
  return exportedReply(
    `Exported ${remotePath}${renamed} to ${prepared.target.description} (mapping ${prepared.mappingName}, ${prepared.file.bytes.length} bytes)`,
    [
      ...(placed?.kind === 'placed'
        ? [
            {
              type: 'info' as const,
              content: limitMessage(`Original document uploaded first as ${placed.path} (${placed.bytes} bytes)`),
            },
          ]
        : placed?.kind === 'skipped'
          ? [{ type: 'warning' as const, content: limitMessage(placed.warning) }]
          : []),
      // What the render changed (e.g. characters XML forbids were dropped): the operator must see it.
      ...(prepared.file.warnings ?? []).map(
        (warning): RossumMessage => ({ type: 'warning', content: limitMessage(warning) }),
      ),
    ],
  );
}

/** The stored answer of an export answered before (unless the ERP has since refused these bytes). */
export function replayed(record: ExportRecord): ExportReply {
  const reply = record.reply;
  if (!reply) return transientReply(`Export ${record.id} has no recorded answer yet`);
  if (record.ackState === 'rejected' || record.ackState === 'ack_invalid') {
    // The first answer ("Exported") is no longer the truth: the ERP refused these exact bytes.
    const verdict = record.ackState === 'rejected' ? 'rejected' : 'answered with an unreadable acknowledgement for';
    return {
      statusCode: 200,
      outcome: 'failed',
      exportId: record.id,
      mappingName: record.mappingName,
      body: {
        messages: [
          {
            type: 'error',
            content: limitMessage(
              `The ERP ${verdict} this exact file (${record.remotePath ?? record.plannedPath}${record.ackFile ? `, ack ${record.ackFile}` : ''}); sending the same data again would not change that. Correct the data in Rossum (the note on this annotation has the ERP's reasons) and export again.`,
            ),
          },
        ],
      },
    };
  }
  return {
    statusCode: reply.statusCode === 200 ? 200 : 503,
    body: reply.body as ExportReply['body'],
    outcome: 'duplicate',
    exportId: record.id,
    mappingName: record.mappingName,
  };
}

export function stored(reply: ExportReply): StoredReply {
  return { statusCode: reply.statusCode, body: reply.body };
}

export function codeOf(error: unknown): ErrorCode {
  return isBridgeError(error) ? error.code : 'INTERNAL';
}
