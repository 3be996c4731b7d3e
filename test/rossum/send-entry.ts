import { Command } from 'commander';
import { describeError } from '../../src/errors.ts';
import { register } from '../../src/cli/commands/send.ts';

// The `send` command alone, as bin/rossum-sftp-bridge assembles it, so its tests do not depend on the other commands.
const program = new Command().name('rossum-sftp-bridge').showHelpAfterError();
register(program);
program.parseAsync(process.argv).catch((error: unknown) => {
  process.stderr.write(`error: ${describeError(error)}\n`);
  process.exitCode = process.exitCode || 1;
});
