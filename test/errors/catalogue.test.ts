import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ERROR_CATALOGUE, isErrorCode } from '../../src/errors.ts';

const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
const srcRoot = join(repoRoot, 'src');
const catalogueFile = join(srcRoot, 'error-catalogue.ts');

const CODE = "'([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+|[A-Z]{4,})'";

/**
 * The places a code is given to an error today: the first argument of an error constructor or factory
 * (`new BridgeError('X'`, `mappingError('X'`, `this.error('X'`, `super('X'`), a `code: 'X'` field (ledger
 * failures), a fallback after `.code` (`error.code : 'INTERNAL'`), and the members of `…ErrorCode` unions.
 */
const CODE_POSITIONS = [
  new RegExp(`(?:\\b\\w*[Ee]rror|\\bsuper)\\(\\s*${CODE}`, 'g'),
  new RegExp(`\\bcode:\\s*${CODE}`, 'g'),
  new RegExp(`\\.code\\s*:\\s*${CODE}`, 'g'),
];
const CODE_UNION = /\w*ErrorCode\s*=((?:\s*\|\s*'[A-Z0-9_]+')+)/g;

/** Codes the source text hands to errors (not Node's errno codes it compares against). */
function thrownCodes(source: string): Set<string> {
  const codes = new Set<string>();
  for (const pattern of CODE_POSITIONS) for (const match of source.matchAll(pattern)) codes.add(match[1] as string);
  for (const union of source.matchAll(CODE_UNION))
    for (const member of (union[1] as string).matchAll(/'([A-Z0-9_]+)'/g)) codes.add(member[1] as string);
  return codes;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(path);
    return entry.name.endsWith('.ts') && path !== catalogueFile ? [path] : [];
  });
}

const sources = sourceFiles(srcRoot).map((path) => ({
  file: relative(repoRoot, path),
  text: readFileSync(path, 'utf8'),
}));
const errorDocs = readFileSync(join(repoRoot, 'docs', 'errors.md'), 'utf8');

/** code → the files that throw it */
function codesInSources(): Map<string, string[]> {
  const found = new Map<string, string[]>();
  for (const { file, text } of sources)
    for (const code of thrownCodes(text)) found.set(code, [...(found.get(code) ?? []), file]);
  return found;
}

describe('the error catalogue', () => {
  it('describes every code thrown anywhere in src/', () => {
    const found = codesInSources();
    const missing = [...found]
      .filter(([code]) => !isErrorCode(code))
      .map(([code, files]) => `${code} (${files.join(', ')})`);
    expect(missing).toEqual([]);
  });

  it('is rendered into docs/errors.md: every code, with whether it is retried and what to do', () => {
    for (const [code, entry] of Object.entries(ERROR_CATALOGUE)) {
      const row = errorDocs.split('\n').find((line) => line.startsWith(`| \`${code}\` |`));
      expect(row, `docs/errors.md has no row for ${code}: run npm run schema`).toBeDefined();
      expect(row).toContain(entry.retry);
      expect(row).toContain(entry.action.replaceAll('|', '\\|'));
    }
  });

  it('has no entry that nothing in src/ uses', () => {
    const everything = sources.map(({ text }) => text).join('\n');
    const unused = Object.keys(ERROR_CATALOGUE).filter((code) => !everything.includes(`'${code}'`));
    expect(unused).toEqual([]);
  });

  it('finds the codes of every kind of thrower, so an uncatalogued one cannot slip past', () => {
    const found = codesInSources();
    for (const code of [
      'PAYLOAD_INVALID',
      'TARGET_EXISTS',
      'HOST_KEY_MISMATCH',
      'MAPPING_REQUIRED_FIELD',
      'ROSSUM_TIMEOUT',
      'ACK_INVALID',
      'OWNER_DIED',
      'INTERNAL',
      'CONFIG_INVALID',
    ]) {
      expect(found.has(code), `${code} not found by the scan`).toBe(true);
    }
    const planted = [
      "throw new BridgeError('PLANTED_ONE', 'x', { permanent: true });",
      "throw mappingError(\n  'PLANTED_TWO',\n  'x');",
      "await ledger.fail(id, owner, { code: 'PLANTED_THREE', message: 'x' });",
      "type SomeErrorCode =\n  | 'PLANTED_FOUR'\n  | 'PLANTED_FIVE';",
      "if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;",
    ].join('\n');
    expect([...thrownCodes(planted)].sort()).toEqual([
      'PLANTED_FIVE',
      'PLANTED_FOUR',
      'PLANTED_ONE',
      'PLANTED_THREE',
      'PLANTED_TWO',
    ]);
  });
});
