import { execFile } from 'node:child_process';
import { appendFileSync, cpSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const run = promisify(execFile);
const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
const CRUISE_TIMEOUT_MS = 120_000;

interface LintResult {
  exitCode: number;
  output: string;
}

/** A copy of src/ and the rules, as a planted change would leave them, so the real tree is never touched. */
function copyOfTheTree(): string {
  const dir = mkdtempSync(join(tmpdir(), 'rsb-layers-'));
  cpSync(join(repoRoot, 'src'), join(dir, 'src'), { recursive: true });
  cpSync(join(repoRoot, '.dependency-cruiser.cjs'), join(dir, '.dependency-cruiser.cjs'));
  return dir;
}

async function lintLayers(root: string): Promise<LintResult> {
  try {
    const { stdout, stderr } = await run(
      process.execPath,
      ['--import', 'tsx', join(repoRoot, 'scripts', 'lint-layers.ts'), '--root', root],
      {
        cwd: repoRoot,
        timeout: CRUISE_TIMEOUT_MS,
      },
    );
    return { exitCode: 0, output: stdout + stderr };
  } catch (error) {
    const failed = error as { code?: number; stdout?: string; stderr?: string };
    return {
      exitCode: typeof failed.code === 'number' ? failed.code : -1,
      output: `${failed.stdout ?? ''}${failed.stderr ?? ''}`,
    };
  }
}

describe('the layer rules', () => {
  it('pass on the tree as it is', { timeout: CRUISE_TIMEOUT_MS }, async () => {
    const result = await lintLayers(copyOfTheTree());
    expect(result.output).toContain('no dependency violations found');
    expect(result.exitCode).toBe(0);
  });

  it('refuse a wrong-way import and a reach into another folder, naming the rule and the files', {
    timeout: CRUISE_TIMEOUT_MS,
  }, async () => {
    const dir = copyOfTheTree();
    appendFileSync(join(dir, 'src', 'observability', 'logger.ts'), "import '../transport/index.ts';\n");
    appendFileSync(join(dir, 'src', 'export', 'routes.ts'), "import '../transport/paths.ts';\n");
    appendFileSync(join(dir, 'src', 'ledger', 'types.ts'), "import '../dev/index.ts';\n");
    writeFileSync(join(dir, 'src', 'mapping', 'planted.ts'), '// planted\n'.repeat(451));

    const result = await lintLayers(dir);

    expect(result.exitCode).not.toBe(0);
    expect(result.output).toContain(
      'foundations-import-no-layer-above: src/observability/logger.ts → src/transport/index.ts',
    );
    expect(result.output).toContain('enter-folders-through-index: src/export/routes.ts → src/transport/paths.ts');
    expect(result.output).toContain('dev-tools-only-from-cli: src/ledger/types.ts → src/dev/index.ts');
    expect(result.output).toContain('file-size: src/mapping/planted.ts: 451 lines (over 450: split it by concern)');
  });

  it('refuse an import that goes up only through types', { timeout: CRUISE_TIMEOUT_MS }, async () => {
    const dir = copyOfTheTree();
    appendFileSync(
      join(dir, 'src', 'mapping', 'format.ts'),
      "import type { BridgeConfig } from '../config/index.ts';\nexport type Planted = BridgeConfig;\n",
    );

    const result = await lintLayers(dir);

    expect(result.exitCode).not.toBe(0);
    expect(result.output).toContain('modules-stay-below-export: src/mapping/format.ts → src/config/index.ts');
  });
});
