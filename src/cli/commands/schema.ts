import { writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import { configPath, loadConfig } from '../../config/index.ts';
import { BridgeError } from '../../errors.ts';
import { catalogueFromSchema } from '../../mapping/index.ts';
import { RossumClient } from '../../rossum/index.ts';

interface PullOptions {
  queue: string;
  config?: string;
  out?: string;
}

/** The queue's schema JSON, fetched with the bridge config's `rossum` API access: queue → its schema URL → the schema. */
export async function pullQueueSchema(options: PullOptions): Promise<{ json: unknown; text: string }> {
  const queueId = Number(options.queue);
  if (!Number.isInteger(queueId) || queueId <= 0)
    throw new BridgeError('CONFIG_INVALID', `--queue must be a queue id (a positive number), got "${options.queue}"`, {
      permanent: true,
    });
  const { config, path } = loadConfig(configPath(options.config));
  if (!config.rossum)
    throw new BridgeError(
      'ROSSUM_CONFIG_INVALID',
      `${path} has no \`rossum\` section: add the API access (baseUrl and token, or username/password)`,
      { permanent: true },
    );
  const client = new RossumClient({ config: config.rossum });
  const json = await client.getQueueSchema(queueId);
  // Refuse to save something `check --schema` would not read.
  catalogueFromSchema(json, `schema of queue ${queueId}`);
  return { json, text: `${JSON.stringify(json, null, 2)}\n` };
}

export function register(program: Command): void {
  const schema = program
    .command('schema')
    .description('Rossum queue schemas: the datapoints `check --schema` checks mappings against');
  schema
    .command('pull')
    .description(
      "Fetch a queue's schema from the Rossum API (GET /v1/queues/{id}, then its schema) and print or save it",
    )
    .requiredOption('--queue <id>', 'Rossum queue id')
    .option('--config <path>', 'bridge config with the `rossum` API access (default $BRIDGE_CONFIG or ./bridge.yaml)')
    .option('--out <file>', 'write the schema JSON here instead of stdout')
    .action(async (options: PullOptions) => {
      const { text } = await pullQueueSchema(options);
      if (options.out === undefined) process.stdout.write(text);
      else {
        writeFileSync(options.out, text);
        process.stderr.write(
          `wrote ${options.out}; check mappings with: rossum-sftp-bridge check --schema ${options.out}\n`,
        );
      }
    });
}
