import { existsSync, statSync } from 'node:fs';
import type { Command } from 'commander';
import { ConfigFileError, formatDiagnostic } from '../../config-loading/index.ts';
import {
  loadMappingFile,
  mappingFiles,
  resolveMappingFile,
  runMappingTests,
  type TestResult,
} from '../../mapping/index.ts';
import { mappingsDir } from './render.ts';

/** Mapping files named on the command line: files, folders, or names in the mappings folder. */
export function mappingPaths(args: string[], dir: string): string[] {
  if (args.length === 0) return mappingFiles(dir);
  return args.flatMap((arg) =>
    existsSync(arg) && statSync(arg).isDirectory() ? mappingFiles(arg) : [resolveMappingFile(arg, dir)],
  );
}

export function register(program: Command): void {
  program
    .command('test')
    .description(
      'Run the test cases in mapping files (payload → exact expected bytes or expected errors); shows a diff on failure',
    )
    .argument('[mappings...]', 'mapping files, folders or names (default: every mapping in the mappings folder)')
    .option('--mappings <dir>', 'mappings folder (default $BRIDGE_MAPPINGS or ./mappings)')
    .option('--update', 'write the current output into each output_file (review the change with git diff)')
    .action((args: string[], options: { mappings?: string; update?: boolean }) => {
      const out = (line: string): void => void process.stdout.write(`${line}\n`);
      const results: TestResult[] = [];
      let broken = 0;
      for (const path of mappingPaths(args, mappingsDir(options.mappings))) {
        let mapping: ReturnType<typeof loadMappingFile>;
        try {
          mapping = loadMappingFile(path);
        } catch (error) {
          if (!(error instanceof ConfigFileError)) throw error;
          broken++;
          for (const diagnostic of error.diagnostics) out(`FAIL ${formatDiagnostic(diagnostic)}`);
          continue;
        }
        if (mapping.tests.length === 0) out(`---- ${mapping.name}: no test cases`);
        for (const result of runMappingTests(mapping, { update: options.update === true })) {
          results.push(result);
          out(`${result.ok ? (result.updated ? 'UPD ' : 'ok  ') : 'FAIL'} ${result.mapping} › ${result.name}`);
          for (const detail of result.details) out(detail.replace(/^/gm, '     '));
        }
      }
      const failed = results.filter((r) => !r.ok).length;
      out(
        `\n${results.length - failed} passed, ${failed} failed${broken ? `, ${broken} mapping file(s) invalid` : ''}`,
      );
      if (failed > 0 || broken > 0) process.exitCode = 1;
    });
}
