import { posix } from 'node:path';
import { TransportError } from './errors.ts';

// C0 controls, DEL and C1 controls: never part of a file name we write or read.
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

/**
 * Normalizes a path relative to the target folder, refusing anything that could leave it:
 * absolute paths, drive letters, `..` segments, NUL and control characters.
 * Returns `a/b/c` (no leading `./`, no empty segments); `''` means the folder itself.
 */
export function containedPath(relativePath: string, host: string, options: { allowRoot?: boolean } = {}): string {
  const refuse = (reason: string): never => {
    throw new TransportError('PATH_ESCAPE', `refused path ${JSON.stringify(relativePath)} on ${host}: ${reason}`, {
      permanent: true,
      host,
      path: relativePath,
    });
  };
  if (typeof relativePath !== 'string') refuse('not a string');
  if (CONTROL.test(relativePath)) refuse('contains NUL or control characters');
  if (relativePath.startsWith('/') || relativePath.startsWith('\\')) refuse('absolute paths are not allowed');
  if (/^[A-Za-z]:/.test(relativePath)) refuse('drive letters are not allowed');
  if (relativePath.startsWith('~')) refuse('home-relative paths are not allowed');
  const segments = relativePath.split(/[\\/]/).filter((segment) => segment !== '' && segment !== '.');
  if (segments.some((segment) => segment === '..')) refuse('".." is not allowed');
  if (segments.length === 0 && !options.allowRoot) refuse('empty path');
  return segments.join('/');
}

/** Joins the target folder and a contained relative path (`base` may be `.` or absolute). */
export function joinRemote(base: string, relative: string): string {
  if (relative === '') return base;
  return base === '.' ? relative : posix.join(base, relative);
}

/** `invoice.xml` → `invoice_v2.xml` (the suffix goes before the last extension, which ERP filters match on). */
export function versionedName(relativePath: string, version: number): string {
  if (version <= 1) return relativePath;
  const dir = posix.dirname(relativePath);
  const name = posix.basename(relativePath);
  const dot = name.lastIndexOf('.');
  const stem = dot > 0 ? name.slice(0, dot) : name;
  const ext = dot > 0 ? name.slice(dot) : '';
  const versioned = `${stem}_v${version}${ext}`;
  return dir === '.' ? versioned : `${dir}/${versioned}`;
}

export function parentOf(relativePath: string): string {
  const dir = posix.dirname(relativePath);
  return dir === '.' ? '' : dir;
}
