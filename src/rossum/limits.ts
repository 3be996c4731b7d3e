/** Rossum shows at most this many characters of a hook message or a note (counted in code points). */
export const ROSSUM_MESSAGE_LIMIT = 4096;

/** At most `limit` code points, the cut marked with `…`; never splits a surrogate pair. */
export function truncateContent(content: string, limit = ROSSUM_MESSAGE_LIMIT): string {
  const points = Array.from(content);
  if (points.length <= limit) return content;
  return `${points.slice(0, limit - 1).join('')}…`;
}

/**
 * C0 and C1 control characters other than tab and newline, and the bidi embedding/override/isolate
 * controls that make text display differently from what it says (U+202A–U+202E, U+2066–U+2069).
 */
const UNSAFE_CHARACTERS = /[\u0000-\u0008\u000B-\u001F\u007F-\u009F\u202A-\u202E\u2066-\u2069]/g;

/** Text from outside (an ERP's error file) made safe to show in Rossum: CRLF → LF, controls and bidi overrides removed. */
export function cleanText(text: string): string {
  return text.replace(/\r\n?/g, '\n').replace(UNSAFE_CHARACTERS, '');
}

/** `cleanText`, then cut to `limit` code points with the cut marked. */
export function cleanContent(text: string, limit = ROSSUM_MESSAGE_LIMIT): string {
  return truncateContent(cleanText(text), limit);
}
