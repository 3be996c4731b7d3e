/** Turns the raw request body into JSON, or a reason that names the problem. */
export type BodyParse = { ok: true; value: unknown } | { ok: false; reason: string };

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false });

export function parseJsonBody(raw: Buffer, maxDepth: number): BodyParse {
  if (raw.length === 0) return { ok: false, reason: 'Empty body: expected the Rossum hook payload as JSON' };
  let text: string;
  try {
    text = utf8.decode(raw);
  } catch {
    return { ok: false, reason: `Body is not valid UTF-8 (first bad byte near offset ${firstInvalidUtf8(raw)})` };
  }
  const depth = nestingDepth(text);
  if (depth > maxDepth) return { ok: false, reason: `JSON nested ${depth} levels deep; at most ${maxDepth} are accepted` };
  try {
    return { ok: true, value: JSON.parse(text) as unknown };
  } catch (error) {
    return { ok: false, reason: `Malformed JSON: ${(error as Error).message}` };
  }
}

/** Maximum bracket depth outside strings; cheap, and keeps recursive validation off deep inputs. */
function nestingDepth(text: string): number {
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const char = text.charCodeAt(i);
    if (inString) {
      if (char === 92) i++;
      else if (char === 34) inString = false;
    } else if (char === 34) inString = true;
    else if (char === 123 || char === 91) max = Math.max(max, ++depth);
    else if (char === 125 || char === 93) depth--;
  }
  return max;
}

function firstInvalidUtf8(raw: Buffer): number {
  for (let end = 1; end <= raw.length; end++) {
    try {
      new TextDecoder('utf-8', { fatal: true }).decode(raw.subarray(0, end), { stream: true });
    } catch {
      return end - 1;
    }
  }
  return raw.length;
}
