import { existsSync, readdirSync } from 'node:fs';
import { extname, join, resolve } from 'node:path';
import { ConfigFileError, type Diagnostic } from '../config-loading/index.ts';
import type { MappingRegistry } from './contract.ts';
import { loadMappingFile, type LoadedMapping } from './compile.ts';

export type {
  BatchEntry,
  BatchFrame,
  BatchSettings,
  CompiledMapping,
  ExplainEntry,
  MappingRegistry,
  OnExisting,
  RenderContext,
  SequenceSettings,
  DocumentSettings,
  RenderedFile,
} from './contract.ts';
export { checkMapping, checkMappingFile, loadMappingFile, type LoadedMapping, type MappingCheck } from './compile.ts';
export { catalogueFromSchema, catalogueFromPayloads, type DatapointCatalogue } from './datapoints.ts';
export { sanitizeNameValue, sanitizeRelativePath } from './filename.ts';
export { mappingSchema } from './schema.ts';

/** Mapping files in a folder (top level only; sub-folders hold expected outputs). */
export function mappingFiles(dir: string): string[] {
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch (error) {
    const reason =
      (error as NodeJS.ErrnoException).code === 'ENOENT' ? 'mappings folder not found' : (error as Error).message;
    throw new ConfigFileError([{ file: resolve(dir), line: 1, column: 1, key: '', message: reason }]);
  }
  return entries
    .filter((name) => ['.yaml', '.yml'].includes(extname(name)))
    .sort()
    .map((name) => join(resolve(dir), name));
}

/** Loads every mapping in `dir`; throws one ConfigFileError listing every broken file's problems. */
export function loadMappings(dir: string): MappingRegistry & { get(name: string): LoadedMapping | undefined } {
  const mappings = new Map<string, LoadedMapping>();
  const diagnostics: Diagnostic[] = [];
  for (const file of mappingFiles(dir)) {
    try {
      const mapping = loadMappingFile(file);
      if (mappings.has(mapping.name)) {
        diagnostics.push({
          file,
          line: 1,
          column: 1,
          key: '',
          message: `a mapping named "${mapping.name}" already exists (${mappings.get(mapping.name)?.sourcePath})`,
          hint: 'keep only one of name.yaml / name.yml',
        });
        continue;
      }
      mappings.set(mapping.name, mapping);
    } catch (error) {
      if (!(error instanceof ConfigFileError)) throw error;
      diagnostics.push(...error.diagnostics);
    }
  }
  if (diagnostics.length > 0) throw new ConfigFileError(diagnostics);
  return {
    get: (name) => mappings.get(name),
    names: () => [...mappings.keys()],
  };
}

/** `--mapping NAME`: a file stem in `dir`, or a path to a mapping file. */
export function resolveMappingFile(nameOrPath: string, dir: string): string {
  if (/\.ya?ml$/.test(nameOrPath) || nameOrPath.includes('/')) return resolve(nameOrPath);
  for (const extension of ['.yaml', '.yml']) {
    const candidate = join(resolve(dir), `${nameOrPath}${extension}`);
    if (existsSync(candidate)) return candidate;
  }
  const known = existsSync(dir)
    ? mappingFiles(dir).map((file) => file.slice(resolve(dir).length + 1).replace(/\.ya?ml$/, ''))
    : [];
  throw new ConfigFileError([
    {
      file: join(resolve(dir), `${nameOrPath}.yaml`),
      line: 1,
      column: 1,
      key: '',
      message: `no mapping named "${nameOrPath}" in ${resolve(dir)}`,
      ...(known.length ? { hint: `available: ${known.join(', ')}` } : {}),
    },
  ]);
}

export { runMappingTests, unifiedDiff, type TestResult } from './testing.ts';
export {
  outlinePayload,
  starterFileExtension,
  starterMapping,
  STARTER_FORMATS,
  type StarterFormat,
} from './starter.ts';
