/**
 * `npm run schema`: publishes the mapping language from its one declaration (src/mapping/schema.ts):
 * schema/mapping.schema.json for editors (yaml-language-server) and the reference in docs/mappings.md.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { mappingJsonSchema, mappingReference } from '../src/mapping/docs.ts';

const root = join(import.meta.dirname, '..');
const schemaPath = join(root, 'schema', 'mapping.schema.json');
const docsPath = join(root, 'docs', 'mappings.md');
const schema = `${JSON.stringify(mappingJsonSchema(), null, 2)}\n`;
// The hand-written guide above "## Reference" is kept; everything below it is generated.
const currentDocs = (() => {
  try {
    return readFileSync(docsPath, 'utf8');
  } catch {
    return '# Mapping files\n';
  }
})();
const docs = mappingReference(currentDocs.split(/^## Reference$/m)[0] ?? '');
const check = process.argv.includes('--check');
let stale = false;
for (const [path, content] of [[schemaPath, schema], [docsPath, docs]] as const) {
  let current = '';
  try {
    current = readFileSync(path, 'utf8');
  } catch {}
  if (current === content) continue;
  if (check) {
    process.stderr.write(`${path} is out of date: run npm run schema\n`);
    stale = true;
  } else {
    writeFileSync(path, content);
    process.stdout.write(`wrote ${path}\n`);
  }
}
if (stale) process.exitCode = 1;
