import { createHash } from 'node:crypto';

/**
 * File names built from document data. A value substituted into the name can never add a folder,
 * climb out of the target folder, produce a name Windows/SMB shares refuse or misread, or hide
 * what it is (bidi overrides, zero-width characters, look-alike slashes). Whenever making a name
 * safe changed it, the name gets a short hash of the original values, so two different documents
 * never end up with the same name (with `on_existing: overwrite` one would replace the other).
 */

const MAX_SEGMENT_BYTES = 200;
/** Never in a name we keep unchanged, so a hashed name can never equal one: "~" is replaced in values and refused in templates. */
const MARKER = '~';
const HASH_LENGTH = 8;

// ASCII controls, separators, what Windows refuses, and "~" (home folders on SFTP, 8.3 short names like INVOIC~1.XML).
const UNSAFE_ASCII = /[\u0000-\u001f\u007f/\\:*?"<>|~]/;
// C1 controls, format characters (bidi overrides, zero-width, soft hyphen, BOM), lone surrogates, private use, line/paragraph separators.
const UNSAFE_CATEGORY = /[\p{Cc}\p{Cf}\p{Cs}\p{Co}\p{Zl}\p{Zp}]/u;
// Slashes, backslashes and colons that look like the real ones but have no compatibility mapping to them.
const LOOK_ALIKES = new Set([
  '\u2044',
  '\u2215',
  '\u2216',
  '\u2571',
  '\u2572',
  '\u27cb',
  '\u27cd',
  '\u29f5',
  '\u29f8',
  '\u29f9',
  '\u2236',
  '\ua789',
  '\u02d0',
  '\u0589',
  '\u05c3',
  '\u0703',
  '\u0704',
  '\ufe13',
]);
const RESERVED = /^(con|prn|aux|nul|com[0-9¹²³]|lpt[0-9¹²³]|conin\$|conout\$|clock\$) *(\..*)?$/i;

function unsafeCharacter(ch: string): boolean {
  if (ch.length === 1 && ch.charCodeAt(0) < 0x80) return UNSAFE_ASCII.test(ch);
  // Full-width and small forms (U+FF0F, U+FE68, U+FF1A, ...) normalize to the ASCII character they imitate.
  return UNSAFE_CATEGORY.test(ch) || LOOK_ALIKES.has(ch) || UNSAFE_ASCII.test(ch.normalize('NFKC'));
}

/** A value substituted into a file-name template: no separators, no control or invisible characters. */
export function sanitizeNameValue(value: string): string {
  let out = '';
  for (const ch of value) out += unsafeCharacter(ch) ? '_' : ch;
  return out;
}

/** One segment's edges and device names made safe, without the length limit. */
function cleanSegment(segment: string): string {
  let out = sanitizeNameValue(segment);
  // Trailing dots and spaces vanish on Windows ("a." and "a" collide); leading dots hide files or climb (".."),
  // leading spaces are dropped or mistyped by people and tools: replace them.
  out = out.replace(/[.\s]+$/u, (m) => '_'.repeat(Array.from(m).length));
  out = out.replace(/^[.\s]+/u, (m) => '_'.repeat(Array.from(m).length));
  if (out === '') out = '_';
  if (RESERVED.test(out)) out = `_${out}`;
  return out;
}

/** One path segment made safe on POSIX and Windows. */
export function sanitizeSegment(segment: string): string {
  return truncateTo(cleanSegment(segment), MAX_SEGMENT_BYTES);
}

function splitExtension(segment: string): { stem: string; extension: string } {
  const dot = segment.lastIndexOf('.');
  const extension = dot > 0 && segment.length - dot <= 16 ? segment.slice(dot) : '';
  return { stem: segment.slice(0, segment.length - extension.length), extension };
}

function cutToBytes(text: string, budget: number): string {
  let out = '';
  let used = 0;
  for (const ch of text) {
    const size = Buffer.byteLength(ch, 'utf8');
    if (used + size > budget) break;
    out += ch;
    used += size;
  }
  return out;
}

function truncateTo(segment: string, maxBytes: number): string {
  if (Buffer.byteLength(segment, 'utf8') <= maxBytes) return segment;
  const { stem, extension } = splitExtension(segment);
  return cutToBytes(stem, maxBytes - Buffer.byteLength(extension, 'utf8')) + extension;
}

/** The whole relative path: "/" in the template's own text separates folders; every segment is sanitized. */
export function sanitizeRelativePath(path: string): string {
  return path
    .split('/')
    .filter((segment, _i, all) => segment !== '' || all.length === 1)
    .map(sanitizeSegment)
    .join('/');
}

/** A rendered file-name template: the mapping's own text, and values from the document. */
export type NamePiece = { literal: string } | { value: string };

/**
 * The file name for one document. Unchanged when every value was already safe; otherwise sanitized
 * and marked with `~` and a hash of the original values before the extension (`INV_a_b~1c0ffee5.xml`),
 * which keeps distinct values apart even when they sanitize, or are cut, to the same text.
 */
export function safeFileName(pieces: readonly NamePiece[]): string {
  const raw = pieces.map((piece) => ('literal' in piece ? piece.literal : piece.value)).join('');
  const substituted = pieces
    .map((piece) => ('literal' in piece ? piece.literal : sanitizeNameValue(piece.value)))
    .join('');
  const segments = substituted.split('/').map(cleanSegment);
  const changed =
    segments.join('/') !== raw || segments.some((segment) => Buffer.byteLength(segment, 'utf8') > MAX_SEGMENT_BYTES);
  if (!changed) return raw;
  const values = pieces.flatMap((piece) => ('value' in piece ? [piece.value] : []));
  // JSON keeps lone surrogates apart (hashing the string directly would turn them all into U+FFFD).
  const mark = `${MARKER}${createHash('sha256').update(JSON.stringify(values)).digest('hex').slice(0, HASH_LENGTH)}`;
  const last = segments.pop() as string;
  const { stem, extension } = splitExtension(last);
  const budget = MAX_SEGMENT_BYTES - Buffer.byteLength(mark + extension, 'utf8');
  return [
    ...segments.map((segment) => truncateTo(segment, MAX_SEGMENT_BYTES)),
    cutToBytes(stem, budget) + mark + extension,
  ].join('/');
}

/** Why a file-name template's literal text is unsafe, or undefined. */
export function templatePathProblem(template: string): string | undefined {
  if (template.startsWith('/') || /^[A-Za-z]:/.test(template))
    return 'the file name must be relative to the target folder';
  if (template.includes('\\')) return 'use "/" to separate folders, not "\\"';
  if (template.split('/').some((segment) => segment === '..' || segment === '.'))
    return '"." and ".." are not allowed in the file name';
  if (template.endsWith('/')) return 'the file name ends with "/"';
  if (template.includes('//')) return 'the file name has an empty folder ("//")';
  if (template.includes(MARKER)) return '"~" is reserved: it marks names that had to be made safe';
  const literal = template.replace(/\{\{|\}\}|\{[^}]*\}/g, '');
  const unsafe = Array.from(literal).find((ch) => ch !== '/' && unsafeCharacter(ch));
  if (unsafe !== undefined)
    return `the file name contains ${JSON.stringify(unsafe)} (U+${(unsafe.codePointAt(0) as number).toString(16).toUpperCase().padStart(4, '0')}), which file systems refuse or show misleadingly`;
  return undefined;
}
