import { Command } from 'commander';
import { describeError, isBridgeError } from '../errors.ts';

/**
 * Each command lives in `commands/<name>.ts` and exports `register(program)`; main only assembles them.
 */
const commandModules = [
  './commands/serve.ts',
  './commands/dev.ts',
  './commands/render.ts',
  './commands/check.ts',
  './commands/test.ts',
  './commands/send.ts',
  './commands/acks.ts',
  './commands/status.ts',
];

interface CommandModule {
  register(program: Command): void;
}

export async function main(argv: string[]): Promise<void> {
  const program = new Command()
    .name('rossum-sftp-bridge')
    .description('Rossum export webhook → mapping → atomic SFTP upload, with a ledger and ERP acknowledgements')
    .showHelpAfterError();
  for (const path of commandModules) {
    let loaded: Partial<CommandModule>;
    try {
      loaded = (await import(path)) as Partial<CommandModule>;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ERR_MODULE_NOT_FOUND' && String(error).includes(path.slice(2))) continue;
      throw error;
    }
    loaded.register?.(program);
  }
  await program.parseAsync(argv);
}

main(process.argv).catch((error: unknown) => {
  // Operators get the message (and file:line:column when known), never a stack trace.
  const where = isBridgeError(error) && error.where() ? `${error.where()}: ` : '';
  process.stderr.write(`error: ${where}${describeError(error)}\n`);
  process.exitCode = process.exitCode || 1;
});
