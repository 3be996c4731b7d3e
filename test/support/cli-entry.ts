import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { build, type Plugin } from 'esbuild';
import { repoRoot } from './bridge.ts';

/**
 * The CLI as the tests spawn it. `bin/rossum-sftp-bridge` compiles the TypeScript sources with tsx at
 * every start (about 2 s of CPU); the suite starts the CLI well over a hundred times, so the global
 * setup compiles `src/` once with esbuild into the run's temp folder and the spawns run that.
 * `test/cli/cli.test.ts` keeps spawning `bin/` itself, so the shipped entry point stays covered.
 */
export function cliEntry(): string {
  return process.env.RSB_TEST_CLI_ENTRY ?? join(repoRoot, 'bin/rossum-sftp-bridge');
}

/** `[entry, ...args]` for `spawn(process.execPath, …)`. */
export function cliArgs(...args: string[]): string[] {
  return [cliEntry(), ...args];
}

// A bundle has one import.meta.url; the sources use theirs to find files beside them (views, assets).
const keepSourceLocation: Plugin = {
  name: 'keep-import-meta-url',
  setup(pluginBuild) {
    pluginBuild.onLoad({ filter: /[/\\]src[/\\].*\.ts$/ }, async (args) => {
      const source = await readFile(args.path, 'utf8');
      if (!source.includes('import.meta.url')) return undefined;
      return {
        contents: source.replaceAll('import.meta.url', JSON.stringify(pathToFileURL(args.path).href)),
        loader: 'ts',
      };
    });
  },
};

/** Compiles `src/cli/main.ts` (commands stay lazily loaded chunks) into `outDir`; returns the entry's path. */
export async function buildCli(outDir: string): Promise<string> {
  await build({
    entryPoints: { main: join(repoRoot, 'src/cli/main.ts') },
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    packages: 'external',
    outdir: outDir,
    outExtension: { '.js': '.mjs' },
    logLevel: 'error',
    plugins: [keepSourceLocation],
  });
  return join(outDir, 'main.mjs');
}
