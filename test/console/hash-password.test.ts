import { execFile } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { consoleUserSchema, verifyPassword } from '../../src/console/index.ts';
import { cliEntry } from '../support/cli-entry.ts';

function hashPasswordCli(stdin: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile('node', [cliEntry(), 'console', 'hash-password'], (error, stdout, stderr) =>
      resolve({ code: error ? Number(error.code ?? 1) : 0, stdout, stderr }),
    );
    child.stdin?.end(stdin);
  });
}

describe('console hash-password', () => {
  it('prints a scrypt hash the config accepts and that verifies only the same password', async () => {
    const { code, stdout } = await hashPasswordCli('correct horse battery\n');
    expect(code).toBe(0);
    const hash = stdout.trim();
    expect(hash).toMatch(/^scrypt\$131072\$8\$1\$/);
    expect(hash).not.toContain('correct horse');
    expect(consoleUserSchema.parse({ name: 'olga', passwordHash: hash, role: 'operator' }).passwordHash).toBe(hash);
    expect(await verifyPassword('correct horse battery', hash)).toBe(true);
    expect(await verifyPassword('correct horse batterY', hash)).toBe(false);
    const again = (await hashPasswordCli('correct horse battery\n')).stdout.trim();
    expect(again).not.toBe(hash);
  }, 30_000);

  it('refuses a short password and says why', async () => {
    const { code, stdout, stderr } = await hashPasswordCli('short\n');
    expect(code).toBe(1);
    expect(stdout).toBe('');
    expect(stderr).toContain('at least 12 characters');
  }, 30_000);
});
