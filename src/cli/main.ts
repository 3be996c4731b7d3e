import { Command } from 'commander';
import { describeError, isBridgeError } from '../errors.ts';

import { register as registerAcks } from './commands/acks.ts';
import { register as registerCheck } from './commands/check.ts';
import { register as registerDev } from './commands/dev.ts';
import { register as registerRender } from './commands/render.ts';
import { register as registerSend } from './commands/send.ts';
import { register as registerServe } from './commands/serve.ts';
import { register as registerStatus } from './commands/status.ts';
import { register as registerTest } from './commands/test.ts';

/** Each command lives in `commands/<name>.ts` and exports `register(program)`; main only assembles them. */
const commands: ReadonlyArray<(program: Command) => void> = [
  registerServe,
  registerAcks,
  registerDev,
  registerRender,
  registerCheck,
  registerTest,
  registerSend,
  registerStatus,
];

export async function main(argv: string[]): Promise<void> {
  const program = new Command()
    .name('rossum-sftp-bridge')
    .description('Rossum export webhook → mapping → atomic SFTP upload, with a ledger and ERP acknowledgements')
    .showHelpAfterError();
  for (const register of commands) register(program);
  await program.parseAsync(argv);
}

main(process.argv).catch((error: unknown) => {
  // Operators get the message (and file:line:column when known), never a stack trace.
  const where = isBridgeError(error) && error.where() ? `${error.where()}: ` : '';
  process.stderr.write(`error: ${where}${describeError(error)}\n`);
  process.exitCode = process.exitCode || 1;
});
