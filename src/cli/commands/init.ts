import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, extname, join, relative, resolve } from 'node:path';
import { type Command, Option } from 'commander';
import { parseExportPayload, type ExportPayload } from '../../annotation/index.ts';
import { BridgeError, describeError } from '../../errors.ts';
import {
  loadMappingFile,
  runMappingTests,
  starterFileExtension,
  starterMapping,
  STARTER_FORMATS,
  type StarterFormat,
} from '../../mapping/index.ts';
import { mappingsDir } from './render.ts';

interface InitOptions {
  from: string;
  format: StarterFormat;
  mappings?: string;
  force?: boolean;
}

function readExportPayload(path: string): ExportPayload {
  try {
    return parseExportPayload(JSON.parse(readFileSync(path, 'utf8')));
  } catch (error) {
    throw new BridgeError('PAYLOAD_INVALID', `${path}: ${describeError(error)}`, { permanent: true });
  }
}

/** Writes NAME.yaml and its expected output; returns the mapping path. */
export function initMapping(name: string, options: InitOptions): { mappingPath: string; expectedPath: string } {
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(name))
    throw new BridgeError(
      'CONFIG_INVALID',
      `"${name}" cannot be a mapping name: use letters, digits, "-", "_" and "."`,
      { permanent: true },
    );
  const payloadFile = resolve(options.from);
  const payload = readExportPayload(payloadFile);
  const dir = mappingsDir(options.mappings);
  const mappingPath = join(dir, `${name}.yaml`);
  if (existsSync(mappingPath) && !options.force)
    throw new BridgeError('CONFIG_INVALID', `${mappingPath} already exists (--force replaces it)`, { permanent: true });
  const expected = `expected/${name}/${basename(payloadFile, extname(payloadFile))}.${starterFileExtension(options.format)}`;
  const starter = { name, format: options.format, payloadPath: relative(dir, payloadFile), expectedPath: expected };
  mkdirSync(dir, { recursive: true });
  // First without the file name, to learn it from a render; then with it, and the expected bytes written by the test runner.
  writeFileSync(mappingPath, starterMapping(payload, starter));
  const results = runMappingTests(loadMappingFile(mappingPath), { update: true });
  const fileName = results[0]?.fileName;
  writeFileSync(mappingPath, starterMapping(payload, { ...starter, fileName }));
  const failed = runMappingTests(loadMappingFile(mappingPath)).filter((result) => !result.ok);
  if (failed.length > 0)
    throw new BridgeError(
      'CONFIG_INVALID',
      `the starter mapping does not pass its own test: ${failed.flatMap((r) => r.details).join('; ')}`,
      { permanent: true },
    );
  return { mappingPath, expectedPath: join(dir, expected) };
}

export function register(program: Command): void {
  program
    .command('init')
    .description('Write a starter mapping listing every datapoint of a sample export payload, with a test case for it')
    .argument('<name>', 'mapping name: the file becomes <mappings>/<name>.yaml')
    .requiredOption('--from <payload>', 'an annotation_content.export payload JSON (e.g. saved from the hook log)')
    .addOption(new Option('--format <format>', 'output format').choices([...STARTER_FORMATS]).makeOptionMandatory())
    .option('--mappings <dir>', 'mappings folder (default $BRIDGE_MAPPINGS or ./mappings)')
    .option('--force', 'replace an existing mapping of that name')
    .action((name: string, options: InitOptions) => {
      const { mappingPath, expectedPath } = initMapping(name, options);
      process.stdout.write(
        `wrote ${mappingPath}\nwrote ${expectedPath}\nnext: edit it, then rossum-sftp-bridge check ${mappingPath} && rossum-sftp-bridge test ${mappingPath}\n`,
      );
    });
}
