import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * vitest global setup: every test's temporary folders (sshd homes, ledgers, configs, upload targets)
 * go under one folder per run, removed when the run ends, so repeated runs leave nothing in /tmp.
 * Test workers are forked after this runs and inherit TMPDIR, which `os.tmpdir()` follows.
 * RSB_KEEP_TEST_FILES=1 keeps the folder for a post-mortem.
 */
export default function setup(): () => void {
  const root = mkdtempSync(join(tmpdir(), 'rsb-test-run-'));
  // Traversable by others (not listable): the sshd tests log in as a second, unprivileged user.
  chmodSync(root, 0o711);
  process.env.TMPDIR = root;
  return () => {
    if (process.env.RSB_KEEP_TEST_FILES === '1') {
      process.stdout.write(`test files kept in ${root}\n`);
      return;
    }
    rmSync(root, { recursive: true, force: true, maxRetries: 3 });
  };
}
