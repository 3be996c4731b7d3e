import { createInterface } from 'node:readline';
import type { Command } from 'commander';
import { hashPassword } from '../../console/index.ts';

/** The first line of piped input, or a prompt (twice, not echoed) on a terminal. */
async function readPassword(): Promise<string> {
  if (!process.stdin.isTTY) {
    let text = '';
    for await (const chunk of process.stdin) text += String(chunk);
    return text.split(/\r?\n/)[0] ?? '';
  }
  const ask = (question: string): Promise<string> =>
    new Promise((resolve) => {
      const prompt = createInterface({ input: process.stdin, output: process.stderr, terminal: true });
      const output = prompt as unknown as { _writeToOutput: (text: string) => void };
      process.stderr.write(question);
      output._writeToOutput = () => undefined;
      prompt.question('', (answer) => {
        prompt.close();
        process.stderr.write('\n');
        resolve(answer);
      });
    });
  const first = await ask('Password: ');
  const second = await ask('Again: ');
  if (first !== second) throw new Error('the two passwords differ');
  return first;
}

export function register(program: Command): void {
  const console = program
    .command('console')
    .description('The operator web console (served by `serve` when console.enabled is set)');
  console
    .command('hash-password')
    .description(
      'Print the scrypt hash of a password for console.users[].passwordHash (reads the password from stdin, or asks on a terminal)',
    )
    .action(async () => {
      const password = await readPassword();
      process.stdout.write(`${await hashPassword(password)}\n`);
    });
}
