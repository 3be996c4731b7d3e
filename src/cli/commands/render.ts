import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { parseExportPayload, viewAnnotation, type AnnotationView } from '../../annotation/index.ts';
import { BridgeError, describeError, isBridgeError } from '../../errors.ts';
import { loadMappingFile, resolveMappingFile } from '../../mapping/index.ts';

interface RenderOptions {
  mapping: string;
  mappings?: string;
  json?: boolean;
  explain?: boolean;
  now?: string;
}

export function mappingsDir(explicit: string | undefined): string {
  return resolve(explicit ?? process.env.BRIDGE_MAPPINGS ?? 'mappings');
}

export function readPayload(path: string): AnnotationView {
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(path === '-' ? 0 : path, 'utf8'));
  } catch (error) {
    throw new BridgeError('PAYLOAD_INVALID', `${path}: ${describeError(error)}`, { permanent: true });
  }
  return viewAnnotation(parseExportPayload(json));
}

/** An error as the operator needs it: message, and the datapoint Rossum would highlight. */
export function describeRenderError(error: unknown): string {
  if (!isBridgeError(error)) return describeError(error);
  const datapoint = error.location.datapointId === undefined ? '' : ` [datapoint ${error.location.datapointId}]`;
  return `${error.code}: ${error.message}${datapoint}`;
}

export function register(program: Command): void {
  program
    .command('render')
    .description('Render a Rossum export payload with a mapping and print the file exactly as it would be uploaded')
    .argument('<payload>', 'annotation_content.export payload JSON (`-` reads stdin)')
    .requiredOption('--mapping <name>', 'mapping name (file stem in the mappings folder) or path to a mapping file')
    .option('--mappings <dir>', 'mappings folder (default $BRIDGE_MAPPINGS or ./mappings)')
    .option('--json', 'print {"file", "encoding", "warnings", "contentBase64"} instead of the raw bytes')
    .option('--explain', 'print, for every output value, the datapoints it came from (instead of the bytes)')
    .option('--now <iso>', 'pin the clock for meta.now (default: current time)')
    .action((payload: string, options: RenderOptions) => {
      const mapping = loadMappingFile(resolveMappingFile(options.mapping, mappingsDir(options.mappings)));
      const view = readPayload(payload);
      const context = options.now ? { now: new Date(options.now) } : {};
      try {
        if (options.explain) {
          const { file, trace } = mapping.explain(view, context);
          const lines = [
            `file: ${file.fileName} (${file.encoding}, ${file.bytes.length} bytes, mapping ${mapping.name}@${mapping.versionHash})`,
          ];
          for (const entry of trace) {
            const checked = entry.checked?.length ? `  (conditions read ${entry.checked.join(', ')})` : '';
            lines.push(
              `${entry.output} = ${JSON.stringify(entry.value)}  ← ${entry.from.length ? entry.from.join(', ') : '(no datapoint)'}${checked}`,
            );
          }
          for (const warning of file.warnings ?? []) lines.push(`warning: ${warning}`);
          process.stdout.write(`${lines.join('\n')}\n`);
          return;
        }
        const file = mapping.render(view, context);
        for (const warning of file.warnings ?? []) process.stderr.write(`warning: ${warning}\n`);
        if (options.json) {
          process.stdout.write(
            `${JSON.stringify({ file: file.fileName, encoding: file.encoding, warnings: file.warnings ?? [], contentBase64: file.bytes.toString('base64') })}\n`,
          );
        } else {
          // The bytes go to stdout untouched (redirectable as the file); the name goes beside them.
          process.stderr.write(`file: ${file.fileName} (${file.encoding}, ${file.bytes.length} bytes)\n`);
          process.stdout.write(file.bytes);
        }
      } catch (error) {
        process.stderr.write(`error: ${describeRenderError(error)}\n`);
        process.exitCode = 1;
      }
    });
}
