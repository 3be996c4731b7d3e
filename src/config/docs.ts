import { markdownReference, publishJsonSchema, type PublishedSchema } from '../schema-docs/index.ts';
import { bridgeConfigSchema } from './schema.ts';

const published: PublishedSchema = {
  id: 'https://github.com/rossum-sftp-bridge/schema/config.schema.json',
  title: 'rossum-sftp-bridge configuration',
  source: 'src/config/schema.ts',
  rootTitle: 'Config file',
};

/** JSON Schema for bridge.yaml (editors: `# yaml-language-server: $schema=schema/config.schema.json`). */
export function configJsonSchema(): Record<string, unknown> {
  return publishJsonSchema(bridgeConfigSchema, published);
}

/** docs/configuration.md's reference, generated from the same declaration as the loader and `check`. */
export function configReference(intro: string): string {
  return markdownReference(bridgeConfigSchema, published, intro);
}
