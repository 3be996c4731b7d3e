import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { repoRoot } from './bridge.ts';
import { buildCli } from './cli-entry.ts';

/**
 * vitest global setup: every test's temporary folders (sshd homes, ledgers, configs, upload targets)
 * go under one folder per run, removed when the run ends, so repeated runs leave nothing in /tmp.
 * Test workers are forked after this runs and inherit TMPDIR, which `os.tmpdir()` follows, and
 * RSB_TEST_CLI_ENTRY, the CLI compiled once for the run (see cli-entry.ts).
 * RSB_KEEP_TEST_FILES=1 keeps the folder for a post-mortem.
 */
export default async function setup(): Promise<() => void> {
  const root = mkdtempSync(join(tmpdir(), 'rsb-test-run-'));
  // Traversable by others (not listable): the sshd tests log in as a second, unprivileged user.
  chmodSync(root, 0o711);
  process.env.TMPDIR = root;
  // Inside the repository, so the compiled CLI resolves its packages from node_modules.
  const cliDir = join(repoRoot, 'node_modules', '.cache', 'rsb-test-cli', basename(root));
  process.env.RSB_TEST_CLI_ENTRY = await buildCli(cliDir);
  return () => {
    rmSync(cliDir, { recursive: true, force: true });
    if (process.env.RSB_KEEP_TEST_FILES === '1') {
      process.stdout.write(`test files kept in ${root}\n`);
      return;
    }
    rmSync(root, { recursive: true, force: true, maxRetries: 3 });
  };
}
