import { existsSync, readFileSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { parse } from 'yaml';
import { checkConfigFile } from '../../config/index.ts';
import { formatDiagnostic, type Diagnostic } from '../../config-loading/index.ts';
import { checkMappingFile, mappingFiles } from '../../mapping/index.ts';
import { mappingsDir } from './render.ts';

/** A YAML file with a top-level `format` key is a mapping; anything else is a bridge config. */
function isMappingFile(path: string): boolean {
  try {
    const data: unknown = parse(readFileSync(path, 'utf8'));
    return typeof data === 'object' && data !== null && 'format' in data;
  } catch {
    return /(^|\/)mappings\//.test(path);
  }
}

export function checkPaths(paths: string[]): { checked: string[]; diagnostics: Diagnostic[] } {
  const checked: string[] = [];
  const diagnostics: Diagnostic[] = [];
  for (const path of paths) {
    if (!existsSync(path)) {
      diagnostics.push({ file: resolve(path), line: 1, column: 1, key: '', message: 'file not found' });
      continue;
    }
    const files = statSync(path).isDirectory() ? mappingFiles(path) : [resolve(path)];
    for (const file of files) {
      checked.push(file);
      diagnostics.push(...(isMappingFile(file) ? checkMappingFile(file) : checkConfigFile(file)));
    }
  }
  return { checked, diagnostics };
}

export function register(program: Command): void {
  program
    .command('check')
    .description(
      'Validate mapping files and the bridge config: every problem with file:line:column, the key, what was expected and a hint',
    )
    .argument(
      '[paths...]',
      'mapping files, folders of mappings, or bridge config files (default: $BRIDGE_CONFIG or ./bridge.yaml if present, and the mappings folder)',
    )
    .option('--mappings <dir>', 'mappings folder (default $BRIDGE_MAPPINGS or ./mappings)')
    .action((paths: string[], options: { mappings?: string }) => {
      let targets = paths;
      if (targets.length === 0) {
        const config = process.env.BRIDGE_CONFIG ?? 'bridge.yaml';
        targets = [...(existsSync(config) ? [config] : []), mappingsDir(options.mappings)];
      }
      const { checked, diagnostics } = checkPaths(targets);
      for (const diagnostic of diagnostics) process.stdout.write(`${formatDiagnostic(diagnostic)}\n`);
      const files = new Set(diagnostics.map((d) => d.file)).size;
      process.stdout.write(
        diagnostics.length === 0
          ? `ok: ${checked.length} file(s) checked, no problems\n`
          : `${diagnostics.length} problem(s) in ${files} of ${checked.length} file(s)\n`,
      );
      if (diagnostics.length > 0) process.exitCode = 1;
    });
}
