import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { repoRoot } from '../support/bridge.ts';
import { runCli } from '../support/fault-serve.ts';

/** Broken files and the line:column each problem must be reported at (1-based, as editors count). */
const dir = mkdtempSync(join(tmpdir(), 'rsb-broken-'));
const mappings = join(repoRoot, 'mappings');
const validTarget = 'file:///tmp/rsb-broken-target';

const configs: Array<{ name: string; text: string; at: RegExp }> = [
  { name: 'tab-indented', text: `server:\n\tport: 8080\n`, at: /:2:\d+: / },
  { name: 'unclosed-quote', text: `server:\n  secret: "abc\nroutes: []\n`, at: /:\d+:\d+: / },
  {
    name: 'duplicate-key',
    text: `server:\n  port: 1\n  port: 2\nmappingsDir: ${mappings}\ntargets: {}\nroutes: []\n`,
    at: /:3:3: /,
  },
  {
    name: 'port-is-text',
    text: `server:\n  port: eighty\n  secret: ${'s'.repeat(20)}\nmappingsDir: ${mappings}\ntargets:\n  t: { url: "${validTarget}" }\nroutes:\n  - { mapping: generic-xml, target: t }\n`,
    at: /:2:9: server\.port/,
  },
  {
    name: 'unknown-key',
    text: `server:\n  secret: ${'s'.repeat(20)}\n  deadline: 5\nmappingsDir: ${mappings}\ntargets:\n  t: { url: "${validTarget}" }\nroutes:\n  - { mapping: generic-xml, target: t }\n`,
    at: /:3:3: .*deadline/,
  },
  {
    name: 'unknown-target',
    text: `server:\n  secret: ${'s'.repeat(20)}\nmappingsDir: ${mappings}\ntargets:\n  t: { url: "${validTarget}" }\nroutes:\n  - mapping: generic-xml\n    target: nowhere\n`,
    at: /:8:13: .*unknown target "nowhere"/,
  },
  {
    name: 'bad-url',
    text: `server:\n  secret: ${'s'.repeat(20)}\nmappingsDir: ${mappings}\ntargets:\n  t:\n    url: "gopher://x"\nroutes:\n  - { mapping: generic-xml, target: t }\n`,
    at: /:6:10: /,
  },
  { name: 'not-a-mapping-of-keys', text: `- just\n- a list\n`, at: /:1:1: / },
  {
    name: 'alias-bomb',
    text: `a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n`,
    at: /:\d+:\d+: /,
  },
  {
    name: 'missing-env',
    text: `server:\n  secret: \${RSB_SURELY_UNSET_VARIABLE}\nmappingsDir: ${mappings}\ntargets:\n  t: { url: "${validTarget}" }\nroutes:\n  - { mapping: generic-xml, target: t }\n`,
    at: /:2:11: .*RSB_SURELY_UNSET_VARIABLE/,
  },
];

const mappingFiles: Array<{ name: string; text: string; at: RegExp }> = [
  { name: 'bad-yaml', text: `format: xml\nfile:\n  name: "x.xml\n`, at: /:\d+:\d+: / },
  { name: 'unknown-format', text: `format: pdf\nfile: { name: "x.pdf" }\n`, at: /:1:9: .*format/ },
  {
    name: 'escaping-file-name',
    text: `format: xml\nfile: { name: "../../etc/{document_id}.xml" }\nxml:\n  root: { element: Invoice }\n`,
    at: /:2:\d+: .*file/,
  },
  {
    name: 'unknown-key',
    text: `format: xml\nfile: { name: "x.xml" }\nxml:\n  root: { element: Invoice, colour: red }\n`,
    at: /:4:\d+: .*colour/,
  },
  { name: 'duplicate-key', text: `format: xml\nformat: csv\nfile: { name: "x.xml" }\n`, at: /:2:1: / },
  { name: 'empty', text: ``, at: /:1:1: / },
];

function write(folder: string, name: string, text: string): string {
  const path = join(dir, folder, `${name}.yaml`);
  mkdirSync(join(dir, folder), { recursive: true });
  writeFileSync(path, text);
  return path;
}

const noStack = /^\s+at .+:\d+:\d+\)?$/m;

describe('broken config and mapping files: file:line:column, never a stack trace', () => {
  it('`check` reports each broken config at its line and column', async () => {
    const paths = configs.map((c) => write('configs', c.name, c.text));
    const result = await runCli(['check', ...paths], { env: { RSB_SURELY_UNSET_VARIABLE: '' } });
    expect(result.code).toBe(1);
    const text = `${result.stdout}${result.stderr}`;
    expect(text).not.toMatch(noStack);
    configs.forEach((c, i) => {
      const lines = text.split('\n').filter((line) => line.startsWith(`${paths[i]}:`));
      expect(lines.length, `${c.name}:\n${text}`).toBeGreaterThan(0);
      expect(lines.join('\n'), c.name).toMatch(c.at);
    });
  }, 30_000);

  it('`check` reports each broken mapping at its line and column', async () => {
    const paths = mappingFiles.map((c) => write('mappings', c.name, c.text));
    const result = await runCli(['check', ...paths]);
    expect(result.code).toBe(1);
    const text = `${result.stdout}${result.stderr}`;
    expect(text).not.toMatch(noStack);
    mappingFiles.forEach((c, i) => {
      const lines = text.split('\n').filter((line) => line.startsWith(`${paths[i]}:`));
      expect(lines.length, `${c.name}:\n${text}`).toBeGreaterThan(0);
      expect(lines.join('\n'), c.name).toMatch(c.at);
    });
  }, 30_000);

  it('`serve --config` refuses a broken config (and a broken mappings folder) with file:line:column and exit 1', async () => {
    const broken = [configs.find((c) => c.name === 'unknown-key')!, configs.find((c) => c.name === 'tab-indented')!];
    const folder = join(dir, 'serve-mappings');
    mkdirSync(folder, { recursive: true });
    writeFileSync(join(folder, 'broken.yaml'), mappingFiles.find((c) => c.name === 'unknown-key')!.text);
    const withBrokenMappings = write(
      'configs',
      'broken-mappings-folder',
      `server:\n  secret: ${'s'.repeat(20)}\n  port: 0\nmappingsDir: ${folder}\ntargets:\n  t: { url: "${validTarget}" }\nroutes:\n  - { mapping: broken, target: t }\n`,
    );
    const runs = [
      ...broken.map((c) => ({ path: join(dir, 'configs', `${c.name}.yaml`), at: c.at })),
      { path: withBrokenMappings, at: /:4:\d+: .*colour/, file: join(folder, 'broken.yaml') },
    ];
    for (const run of runs) {
      const result = await runCli(['serve', '--config', run.path], { timeoutMs: 20_000 });
      expect(result.code, run.path).toBe(1);
      expect(result.stderr).not.toMatch(noStack);
      const where = 'file' in run && run.file ? run.file : run.path;
      expect(result.stderr).toContain(`${where}:`);
      expect(
        result.stderr
          .split('\n')
          .filter((line) => line.includes(`${where}:`))
          .join('\n'),
      ).toMatch(run.at);
    }
  }, 60_000);
});
