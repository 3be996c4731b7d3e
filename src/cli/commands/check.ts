import { existsSync, readFileSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { parse } from 'yaml';
import { checkConfigFile } from '../../config/index.ts';
import { formatDiagnostic, type Diagnostic } from '../../config-loading/index.ts';
import { catalogueFromSchema, checkMapping, mappingFiles, type DatapointCatalogue } from '../../mapping/index.ts';
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

/** A queue schema file (`GET /v1/schemas/{id}` JSON) as a datapoint catalogue; problems as a diagnostic. */
export function readSchemaFile(path: string): DatapointCatalogue | Diagnostic {
  const file = resolve(path);
  try {
    return catalogueFromSchema(JSON.parse(readFileSync(file, 'utf8')), path);
  } catch (error) {
    const reason =
      (error as NodeJS.ErrnoException).code === 'ENOENT' ? 'schema file not found' : (error as Error).message;
    return {
      file,
      line: 1,
      column: 1,
      key: '',
      message: reason,
      hint: 'get it with: rossum-sftp-bridge schema pull --queue ID --out FILE',
    };
  }
}

export function checkPaths(
  paths: string[],
  options: { schema?: DatapointCatalogue | undefined } = {},
): { checked: string[]; diagnostics: Diagnostic[]; warnings: Diagnostic[] } {
  const checked: string[] = [];
  const diagnostics: Diagnostic[] = [];
  const warnings: Diagnostic[] = [];
  for (const path of paths) {
    if (!existsSync(path)) {
      diagnostics.push({ file: resolve(path), line: 1, column: 1, key: '', message: 'file not found' });
      continue;
    }
    const files = statSync(path).isDirectory() ? mappingFiles(path) : [resolve(path)];
    for (const file of files) {
      checked.push(file);
      if (!isMappingFile(file)) {
        diagnostics.push(...checkConfigFile(file));
        continue;
      }
      const result = checkMapping(file, options);
      diagnostics.push(...result.errors);
      warnings.push(...result.warnings);
    }
  }
  return { checked, diagnostics, warnings };
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
    .option(
      '--schema <file>',
      "the queue's schema (JSON of GET /v1/schemas/{id}, see `schema pull`): every datapoint a mapping names must be in it",
    )
    .action((paths: string[], options: { mappings?: string; schema?: string }) => {
      let targets = paths;
      if (targets.length === 0) {
        const config = process.env.BRIDGE_CONFIG ?? 'bridge.yaml';
        targets = [...(existsSync(config) ? [config] : []), mappingsDir(options.mappings)];
      }
      let schema: DatapointCatalogue | undefined;
      if (options.schema !== undefined) {
        const read = readSchemaFile(options.schema);
        if ('file' in read) {
          process.stdout.write(`${formatDiagnostic(read)}\n`);
          process.exitCode = 1;
          return;
        }
        schema = read;
      }
      const { checked, diagnostics, warnings } = checkPaths(targets, { schema });
      for (const diagnostic of diagnostics) process.stdout.write(`${formatDiagnostic(diagnostic)}\n`);
      for (const warning of warnings) process.stdout.write(`warning: ${formatDiagnostic(warning)}\n`);
      const files = new Set(diagnostics.map((d) => d.file)).size;
      process.stdout.write(
        diagnostics.length === 0
          ? `ok: ${checked.length} file(s) checked, no problems\n`
          : `${diagnostics.length} problem(s) in ${files} of ${checked.length} file(s)\n`,
      );
      if (diagnostics.length > 0) process.exitCode = 1;
    });
}
