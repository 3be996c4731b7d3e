/**
 * `npm run schema`: publishes the mapping language and the bridge config from their one declaration
 * each (src/mapping/schema.ts, src/config/schema.ts): JSON Schemas for editors (yaml-language-server)
 * and the references in docs/mappings.md and docs/configuration.md. `--check` fails when stale.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { configJsonSchema, configReference } from '../src/config/docs.ts';
import { ERROR_CATALOGUE, type CatalogueEntry } from '../src/errors.ts';
import { mappingJsonSchema, mappingReference } from '../src/mapping/docs.ts';

const root = join(import.meta.dirname, '..');

function read(path: string, fallback: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return fallback;
  }
}

/** The hand-written guide above "## Reference" is kept; everything below it is generated. */
function withReference(docsPath: string, heading: string, reference: (intro: string) => string): string {
  return reference(read(docsPath, `${heading}\n`).split(/^## Reference$/m)[0] ?? '');
}

const RETRY_MEANING: Record<CatalogueEntry['retry'], string> = {
  permanent: 'permanent',
  transient: 'transient',
  either: 'either (see text)',
};

function cell(text: string): string {
  return text.replaceAll('|', '\\|').replaceAll('\n', ' ');
}

/** One table per area, codes in catalogue order. */
function errorReference(intro: string): string {
  const areas = new Map<string, Array<[string, CatalogueEntry]>>();
  for (const [code, entry] of Object.entries(ERROR_CATALOGUE) as Array<[string, CatalogueEntry]>) {
    areas.set(entry.area, [...(areas.get(entry.area) ?? []), [code, entry]]);
  }
  const sections = [...areas].map(([area, entries]) => {
    const rows = entries.map(
      ([code, entry]) =>
        `| \`${code}\` | ${RETRY_MEANING[entry.retry]} | ${cell(entry.meaning)} | ${cell(entry.action)} |`,
    );
    return [
      `### ${area}`,
      '',
      '| Code | Retry | What happened | What to do |',
      '| --- | --- | --- | --- |',
      ...rows,
    ].join('\n');
  });
  return `${intro.trimEnd()}\n\n## Reference\n\n<!-- Generated from src/errors.ts by npm run schema; edit the catalogue, not this table. -->\n\n${sections.join('\n\n')}\n`;
}

const mappingDocs = join(root, 'docs', 'mappings.md');
const errorDocs = join(root, 'docs', 'errors.md');
const configDocs = join(root, 'docs', 'configuration.md');
const outputs: Array<[string, string]> = [
  [join(root, 'schema', 'mapping.schema.json'), `${JSON.stringify(mappingJsonSchema(), null, 2)}\n`],
  [mappingDocs, withReference(mappingDocs, '# Mapping files', mappingReference)],
  [join(root, 'schema', 'config.schema.json'), `${JSON.stringify(configJsonSchema(), null, 2)}\n`],
  [configDocs, withReference(configDocs, '# Configuration', configReference)],
  [errorDocs, withReference(errorDocs, '# Error codes', errorReference)],
];

const check = process.argv.includes('--check');
let stale = false;
for (const [path, content] of outputs) {
  if (read(path, '') === content) continue;
  if (check) {
    process.stderr.write(`${path} is out of date: run npm run schema\n`);
    stale = true;
  } else {
    writeFileSync(path, content);
    process.stdout.write(`wrote ${path}\n`);
  }
}
if (stale) process.exitCode = 1;
