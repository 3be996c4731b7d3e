import { describeError, isBridgeError } from '../errors.ts';
import type { ExportOutcome } from '../observability/index.ts';
import { ROSSUM_MESSAGE_LIMIT as MESSAGE_LIMIT, truncateContent } from '../rossum/index.ts';

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
