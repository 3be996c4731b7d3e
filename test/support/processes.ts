import { readdirSync, readFileSync, readlinkSync, realpathSync } from 'node:fs';

/**
 * Live child processes of `pid` running Node (from /proc: Linux only, like the rest of the test setup).
 * Other children, such as the esbuild service tsx starts, are left out.
 */
export function nodeChildPids(pid: number): number[] {
  const node = realpathSync(process.execPath);
  const children: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // Fields after the command name (which may contain spaces) start at the last ')'.
      const [state, parent] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(parent) === pid && state !== 'Z' && readlinkSync(`/proc/${entry}/exe`) === node)
        children.push(Number(entry));
    } catch {
      // The process ended while we looked.
    }
  }
  return children;
}
