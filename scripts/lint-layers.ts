/**
 * `npm run lint:layers`: checks src/ against the architecture rules in .dependency-cruiser.cjs.
 *
 * dependency-cruiser reads TypeScript only through the `typescript` package below version 7, and this
 * repository compiles with TypeScript 7 (which has no JavaScript API). So it cruises a JavaScript copy
 * made by esbuild: type-only imports are kept (they are dependencies too), `.ts` becomes `.js`, and
 * the report names the `.ts` files again.
 *
 * Usage: lint-layers [--root <dir>]   <dir> holds src/ and .dependency-cruiser.cjs (default: this repository)
 */
import { spawnSync } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { transformSync } from 'esbuild';

const repository = join(import.meta.dirname, '..');
const rootFlag = process.argv.indexOf('--root');
const root = rootFlag >= 0 ? (process.argv[rootFlag + 1] ?? '') : repository;
const CONFIG = '.dependency-cruiser.cjs';

/** `import type { A, B }` → `import { type A, type B }`, which verbatimModuleSyntax keeps as `import {} from`. */
function keepTypeImports(source: string): string {
  return source.replace(/^(import|export) type \{([^}]*)\}/gm, (_match, keyword: string, names: string) => {
    const listed = names
      .split(',')
      .map((name) => name.trim())
      .filter((name) => name !== '');
    return `${keyword} { ${listed.map((name) => `type ${name}`).join(', ')} }`;
  });
}

function toJavaScript(file: string, source: string): string {
  const { code } = transformSync(keepTypeImports(source), {
    loader: 'ts',
    format: 'esm',
    sourcefile: file,
    tsconfigRaw: { compilerOptions: { verbatimModuleSyntax: true } },
  });
  return code.replace(/(from\s*|import\s*\(\s*|import\s*)(["'])(\.{1,2}\/[^"']*)\.ts\2/g, '$1$2$3.js$2');
}

function copyAsJavaScript(fromDir: string, toDir: string): void {
  for (const entry of readdirSync(fromDir, { withFileTypes: true })) {
    const from = join(fromDir, entry.name);
    if (entry.isDirectory()) {
      copyAsJavaScript(from, join(toDir, entry.name));
    } else if (entry.name.endsWith('.ts')) {
      const to = join(toDir, entry.name.replace(/\.ts$/, '.js'));
      mkdirSync(dirname(to), { recursive: true });
      writeFileSync(to, toJavaScript(relative(root, from), readFileSync(from, 'utf8')));
    }
  }
}

if (!existsSync(join(root, 'src')) || !existsSync(join(root, CONFIG))) {
  process.stderr.write(`lint-layers: ${root} needs src/ and ${CONFIG}\n`);
  process.exit(2);
}

/** A file past this many lines holds more than one concern: split it (issue 9's rule). */
const MAX_LINES = 450;

function oversizedFiles(dir: string): string[] {
  const found: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) found.push(...oversizedFiles(path));
    else if (entry.name.endsWith('.ts')) {
      const lines = readFileSync(path, 'utf8').split('\n').length - 1;
      if (lines > MAX_LINES)
        found.push(`${relative(root, path)}: ${lines} lines (over ${MAX_LINES}: split it by concern)`);
    }
  }
  return found;
}

const oversized = oversizedFiles(join(root, 'src'));
for (const line of oversized) process.stderr.write(`file-size: ${line}\n`);

const work = mkdtempSync(join(tmpdir(), 'lint-layers-'));
try {
  for (const folder of ['src', 'test'])
    if (existsSync(join(root, folder))) copyAsJavaScript(join(root, folder), join(work, folder));
  cpSync(join(root, CONFIG), join(work, CONFIG));
  symlinkSync(join(repository, 'node_modules'), join(work, 'node_modules'), 'dir');
  const cruise = spawnSync(
    join(repository, 'node_modules', '.bin', 'depcruise'),
    ['src', '--config', CONFIG, '--output-type', 'err-long'],
    {
      cwd: work,
      encoding: 'utf8',
    },
  );
  const asTypeScript = (text: string): string => text.replace(/\b((?:src|test)\/[\w./-]+?)\.js\b/g, '$1.ts');
  process.stdout.write(asTypeScript(cruise.stdout ?? ''));
  process.stderr.write(asTypeScript(cruise.stderr ?? ''));
  if (cruise.error) throw cruise.error;
  process.exitCode = cruise.status || (oversized.length > 0 ? 1 : 0);
} finally {
  rmSync(work, { recursive: true, force: true });
}
