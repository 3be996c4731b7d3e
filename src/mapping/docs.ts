import { markdownReference, publishJsonSchema, type PublishedSchema } from '../schema-docs/index.ts';
import { mappingSchema } from './schema.ts';

const published: PublishedSchema = {
  id: 'https://github.com/rossum-sftp-bridge/schema/mapping.schema.json',
  title: 'rossum-sftp-bridge mapping',
  source: 'src/mapping/schema.ts',
  rootTitle: 'Mapping file',
};

/** The JSON Schema editors use for autocomplete and validation of mappings/*.yaml. */
export function mappingJsonSchema(): Record<string, unknown> {
  return publishJsonSchema(mappingSchema, published);
}

/** The reference section of docs/mappings.md, generated from the same schema descriptions. */
export function mappingReference(intro: string): string {
  return markdownReference(mappingSchema, published, intro);
}
