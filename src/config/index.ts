import { existsSync, readdirSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { bridgeConfigSchema, type BridgeConfig } from './schema.ts';
import { ConfigFileError, loadYamlFile, type Diagnostic, type LoadedYaml } from '../config-loading/index.ts';

export { bridgeConfigSchema, serverConfigSchema, type BridgeConfig } from './schema.ts';
export {
  ConfigFileError,
  formatDiagnostic,
  loadYamlFile,
  parseYamlSource,
  type Diagnostic,
} from '../config-loading/index.ts';

export interface LoadedConfig {
  config: BridgeConfig;
  /** Absolute path of the file it came from. */
  path: string;
}

/** Config file from `--config`, else `$BRIDGE_CONFIG`, else `./bridge.yaml`. */
export function configPath(explicit?: string): string {
  return resolve(explicit ?? process.env.BRIDGE_CONFIG ?? 'bridge.yaml');
}

/**
 * Loads, interpolates `${ENV}`, validates (every problem with file:line:column) and resolves relative
 * paths against the config file's folder.
 */
export function loadConfig(path: string, env: NodeJS.ProcessEnv = process.env): LoadedConfig {
  const absolute = resolve(path);
  const loaded = loadYamlFile(absolute, bridgeConfigSchema, { env });
  const diagnostics = semanticProblems(absolute, loaded);
  if (diagnostics.length > 0)
    throw new ConfigFileError(diagnostics.sort((a, b) => a.line - b.line || a.column - b.column));
  return { config: resolvePaths(loaded.value, dirname(absolute)), path: absolute };
}

/** For `check`: every problem in a config file, or none. */
export function checkConfigFile(path: string, env: NodeJS.ProcessEnv = process.env): Diagnostic[] {
  try {
    loadConfig(path, env);
    return [];
  } catch (error) {
    if (error instanceof ConfigFileError) return error.diagnostics;
    throw error;
  }
}

function semanticProblems(file: string, loaded: LoadedYaml<BridgeConfig>): Diagnostic[] {
  const { value: config, locate } = loaded;
  const problems: Diagnostic[] = [];
  const targetNames = Object.keys(config.targets);
  const mappingsDir = resolve(dirname(file), config.mappingsDir);
  const mappingNames = existsSync(mappingsDir)
    ? readdirSync(mappingsDir)
        .filter((name) => /\.ya?ml$/.test(name))
        .map((name) => name.replace(/\.ya?ml$/, ''))
    : null;
  if (mappingNames === null) {
    problems.push({
      file,
      ...locate(['mappingsDir']),
      key: 'mappingsDir',
      message: `folder ${mappingsDir} does not exist`,
    });
  }
  let fallbacks = 0;
  config.routes.forEach((route, index) => {
    if (!targetNames.includes(route.target)) {
      problems.push({
        file,
        ...locate(['routes', index, 'target']),
        key: `routes[${index}].target`,
        message: `unknown target "${route.target}"`,
        hint: targetNames.length ? `defined targets: ${targetNames.join(', ')}` : 'define it under "targets"',
      });
    }
    if (mappingNames && !mappingNames.includes(route.mapping)) {
      problems.push({
        file,
        ...locate(['routes', index, 'mapping']),
        key: `routes[${index}].mapping`,
        message: `no mapping file "${route.mapping}.yaml" in ${mappingsDir}`,
        hint: mappingNames.length ? `available: ${mappingNames.join(', ')}` : 'the folder has no mappings',
      });
    }
    if (route.queues === undefined && ++fallbacks === 2) {
      problems.push({
        file,
        ...locate(['routes', index]),
        key: `routes[${index}]`,
        message: 'a second fallback route (without "queues") is never used',
      });
    }
  });
  return problems;
}

function resolvePaths(config: BridgeConfig, base: string): BridgeConfig {
  const at = (path: string): string => (isAbsolute(path) ? path : resolve(base, path));
  const ledgerUrl =
    config.ledger.url.startsWith('sqlite:') && config.ledger.url !== 'sqlite::memory:'
      ? `sqlite:${at(config.ledger.url.slice('sqlite:'.length))}`
      : config.ledger.url;
  const targets: BridgeConfig['targets'] = {};
  for (const [name, target] of Object.entries(config.targets)) {
    const copy = { ...target } as Record<string, unknown>;
    for (const key of ['knownHosts', 'privateKeyPath']) {
      if (typeof copy[key] === 'string') copy[key] = at(copy[key] as string);
    }
    targets[name] = copy as BridgeConfig['targets'][string];
  }
  return { ...config, mappingsDir: at(config.mappingsDir), ledger: { ...config.ledger, url: ledgerUrl }, targets };
}
