import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { mappingReference } from '../../src/mapping/docs.ts';
import { CONDITION_SUBJECTS, CONDITION_TESTS, SOURCE_KEYS } from '../../src/mapping/schema.ts';
import { TRANSFORMS } from '../../src/mapping/transforms.ts';
import { annotation, mappingFrom } from './helpers.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const docs = readFileSync(join(ROOT, 'docs', 'mappings.md'), 'utf8');

describe('docs/mappings.md', () => {
  it('is generated from the declarations as committed, with no generated names left in docs/', () => {
    const intro = docs.split(/^## Reference$/m)[0] ?? '';
    expect(mappingReference(intro)).toBe(docs);
    for (const file of readdirSync(join(ROOT, 'docs')))
      expect(readFileSync(join(ROOT, 'docs', file), 'utf8'), file).not.toContain('__schema');
  });

  it('has a row with an example for every source, step, condition subject and test', () => {
    for (const key of SOURCE_KEYS) expect(docs).toMatch(new RegExp(`^\\| \`${key}\` \\| .+ \\| \`\\{ ${key}: `, 'm'));
    for (const entry of TRANSFORMS) expect(docs).toContain(`| \`${entry.name}\` | `);
    for (const key of [...CONDITION_SUBJECTS, ...CONDITION_TESTS])
      expect(docs).toMatch(new RegExp(`^\\| \`${key}\` \\| (subject|test) \\| .+ \\| \`\\{ `, 'm'));
    for (const heading of [
      '### Value sources',
      '### Value steps',
      '### Conditions',
      '### Number options',
      '### Date patterns',
    ])
      expect(docs).toContain(heading);
  });

  it.each(TRANSFORMS.map((entry) => [entry.name, entry.example] as const))(
    'the %s example renders as documented',
    (_name, example) => {
      const mapping = mappingFrom(
        `format: csv\nfile: { name: x.csv }\ncsv:\n  delimiter: ";"\n  header: false\n  columns:\n    - { name: v, value: ${example.value} }\n`,
      );
      const file = mapping.render(annotation({ x: { value: example.input, normalized: example.input } }));
      expect(file.bytes.toString('utf8')).toBe(`${example.output}\n`);
    },
  );
});
