import { truncateContent } from './limits.ts';

/** A message in a hook's reply, as Rossum reads it (`messages` in the reply body). */
export type HookMessageType = 'error' | 'warning' | 'info';

export interface HookMessage {
  id?: number | string | null;
  type: HookMessageType;
  content: string;
  detail?: unknown;
}

export interface ParsedReply {
  /** True when the body is a JSON object with a non-empty `messages` list. */
  hasMessages: boolean;
  messages: HookMessage[];
  operations: unknown[];
}

/** Reads `messages` / `operations` from a reply body; anything that is not such JSON yields none (Rossum ignores such 2xx bodies). */
export function parseReply(text: string): ParsedReply {
  const empty: ParsedReply = { hasMessages: false, messages: [], operations: [] };
  if (text.trim() === '') return empty;
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return empty;
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) return empty;
  const record = json as Record<string, unknown>;
  const messages: HookMessage[] = [];
  if (Array.isArray(record.messages)) {
    for (const item of record.messages) {
      const message = toMessage(item);
      if (message) messages.push(message);
    }
  }
  const operations = Array.isArray(record.operations) ? record.operations : [];
  return { hasMessages: messages.length > 0, messages, operations };
}

function toMessage(item: unknown): HookMessage | undefined {
  if (typeof item !== 'object' || item === null) return undefined;
  const { id, type, content, detail } = item as Record<string, unknown>;
  if (type !== 'error' && type !== 'warning' && type !== 'info') return undefined;
  if (typeof content !== 'string') return undefined;
  const message: HookMessage = { type, content: truncateContent(content) };
  if (typeof id === 'number' || typeof id === 'string' || id === null) message.id = id;
  if (detail !== undefined) message.detail = detail;
  return message;
}
