/**
 * File names built from document data. A value substituted into the name can never add a folder,
 * climb out of the target folder, or produce a name Windows/SMB shares refuse.
 */

const MAX_SEGMENT_BYTES = 200;
// Lone surrogates too: they cannot be encoded, so the server would store a different name than the ledger records.
const UNSAFE = /[\u0000-\u001f\u007f-\u009f/\\:*?"<>|\u2028\u2029\ufeff]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;
const RESERVED = /^(con|prn|aux|nul|com[0-9¹²³]|lpt[0-9¹²³]|conin\$|conout\$|clock\$)(\..*)?$/i;

/** A value substituted into a file-name template: no separators, no control characters. */
export function sanitizeNameValue(value: string): string {
  return value.replace(UNSAFE, '_');
}

/** One path segment made safe on POSIX and Windows. */
export function sanitizeSegment(segment: string): string {
  let out = segment.replace(UNSAFE, '_');
  // Trailing dots and spaces vanish on Windows ("a." and "a" collide); leading dots hide files or climb (".."): replace them.
  out = out.replace(/[. ]+$/, (m) => '_'.repeat(m.length));
  out = out.replace(/^\.+/, (m) => '_'.repeat(m.length));
  if (out === '') out = '_';
  if (RESERVED.test(out)) out = `_${out}`;
  return truncateSegment(out);
}

function truncateSegment(segment: string): string {
  if (Buffer.byteLength(segment, 'utf8') <= MAX_SEGMENT_BYTES) return segment;
  const dot = segment.lastIndexOf('.');
  const extension = dot > 0 && segment.length - dot <= 16 ? segment.slice(dot) : '';
  const budget = MAX_SEGMENT_BYTES - Buffer.byteLength(extension, 'utf8');
  let stem = '';
  let used = 0;
  for (const ch of segment.slice(0, segment.length - extension.length)) {
    const size = Buffer.byteLength(ch, 'utf8');
    if (used + size > budget) break;
    stem += ch;
    used += size;
  }
  return stem + extension;
}

/** The whole relative path: "/" in the template's own text separates folders; every segment is sanitized. */
export function sanitizeRelativePath(path: string): string {
  return path.split('/').filter((segment, i, all) => segment !== '' || all.length === 1).map(sanitizeSegment).join('/');
}

/** Why a file-name template's literal text is unsafe, or undefined. */
export function templatePathProblem(template: string): string | undefined {
  if (template.startsWith('/') || /^[A-Za-z]:/.test(template)) return 'the file name must be relative to the target folder';
  if (template.includes('\\')) return 'use "/" to separate folders, not "\\"';
  if (template.split('/').some((segment) => segment === '..' || segment === '.')) return '"." and ".." are not allowed in the file name';
  if (template.endsWith('/')) return 'the file name ends with "/"';
  return undefined;
}
