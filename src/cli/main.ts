import { Command } from 'commander';
import { describeError, isBridgeError } from '../errors.ts';

interface CommandModule {
  register(program: Command): void;
}

/**
 * Each command lives in `commands/<name>.ts` and exports `register(program)`; main only assembles them.
 * Only the command being run is loaded (a long-running `acks` should not carry fastify, the mapping
 * engine and the dev tools); help and unknown commands load them all.
 */
const commands: Record<string, () => Promise<CommandModule>> = {
  serve: () => import('./commands/serve.ts'),
  acks: () => import('./commands/acks.ts'),
  dev: () => import('./commands/dev.ts'),
  render: () => import('./commands/render.ts'),
  check: () => import('./commands/check.ts'),
  test: () => import('./commands/test.ts'),
  init: () => import('./commands/init.ts'),
  schema: () => import('./commands/schema.ts'),
  send: () => import('./commands/send.ts'),
  status: () => import('./commands/status.ts'),
  console: () => import('./commands/console.ts'),
  doctor: () => import('./commands/doctor.ts'),
  hook: () => import('./commands/hook.ts'),
};

export async function main(argv: string[]): Promise<void> {
  const program = new Command()
    .name('rossum-sftp-bridge')
    .description('Rossum export webhook → mapping → atomic SFTP upload, with a ledger and ERP acknowledgements')
    .showHelpAfterError();
  const requested = argv[2] !== undefined ? commands[argv[2]] : undefined;
  const loaders = requested ? [requested] : Object.values(commands);
  for (const module of await Promise.all(loaders.map((load) => load()))) module.register(program);
  await program.parseAsync(argv);
}

main(process.argv).catch((error: unknown) => {
  // Operators get the message (and file:line:column when known), never a stack trace.
  const where = isBridgeError(error) && error.where() ? `${error.where()}: ` : '';
  process.stderr.write(`error: ${where}${describeError(error)}\n`);
  process.exitCode = process.exitCode || 1;
});
