import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * A separate process swaps `name` between a hard link to a regular file and a symlink to `secret`,
 * each by an atomic rename, every millisecond — what an ERP-side attacker with write access does.
 */
export function startSwapper(dir: string, name: string, secret: string, real: Buffer): ChildProcess {
  writeFileSync(join(dir, '.real'), real);
  const script = `
    my ($dir, $name, $secret) = @ARGV;
    while (1) {
      link("$dir/.real", "$dir/.swap-file"); rename("$dir/.swap-file", "$dir/$name");
      select(undef, undef, undef, 0.001);
      symlink($secret, "$dir/.swap-link"); rename("$dir/.swap-link", "$dir/$name");
      select(undef, undef, undef, 0.001);
    }`;
  return spawn('perl', ['-e', script, dir, name, secret], { stdio: 'ignore' });
}

export async function untilExists(path: string): Promise<void> {
  while (!existsSync(path)) await new Promise((resolve) => setTimeout(resolve, 5));
}

export async function stopSwapper(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  await exited;
}
