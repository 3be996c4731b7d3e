import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { initMapping } from '../../src/cli/commands/init.ts';
import { catalogueFromSchema, checkMapping } from '../../src/mapping/index.ts';
import { repoRoot } from '../support/bridge.ts';
import { runCli } from '../support/fault-serve.ts';

const CLI = join(repoRoot, 'bin', 'rossum-sftp-bridge');
const FIXTURES = join(repoRoot, 'test', 'fixtures', 'rossum');
const cli = (args: string[], env: Record<string, string> = {}) =>
  spawnSync(process.execPath, [CLI, ...args], { cwd: repoRoot, encoding: 'utf8', env: { ...process.env, ...env } });

describe('init', () => {
  it('writes starter mappings (xml, csv, fixed, edifact) listing every datapoint, which pass check and test as written', () => {
    const dir = mkdtempSync(join(tmpdir(), 'init-'));
    for (const format of ['xml', 'csv', 'fixed', 'edifact'] as const)
      initMapping(`starter-${format}`, { from: join(FIXTURES, 'export-invoice.json'), format, mappings: dir });
    initMapping('tricky', { from: join(FIXTURES, 'export-tricky-characters.json'), format: 'csv', mappings: dir });
    initMapping('empty', { from: join(FIXTURES, 'export-no-line-items.json'), format: 'fixed', mappings: dir });
    initMapping('tricky-edi', {
      from: join(FIXTURES, 'export-tricky-characters.json'),
      format: 'edifact',
      mappings: dir,
    });
    initMapping('empty-edi', { from: join(FIXTURES, 'export-no-line-items.json'), format: 'edifact', mappings: dir });

    const xml = readFileSync(join(dir, 'starter-xml.yaml'), 'utf8');
    for (const id of ['document_id', 'sender_vat_id', 'amount_total', 'tax_detail_rate'])
      expect(xml).toContain(`value: { ${id.startsWith('tax_detail') ? 'row' : 'field'}: ${id} }`);
    for (const id of [
      'item_code',
      'item_description',
      'item_quantity',
      'item_uom',
      'item_amount_base',
      'item_rate',
      'item_amount_total',
    ])
      expect(xml).toContain(`value: { row: ${id} }`);
    expect(readFileSync(join(dir, 'expected', 'starter-csv', 'export-invoice.csv'), 'utf8')).toContain(
      'item_description',
    );

    const edifact = readFileSync(join(dir, 'starter-edifact.yaml'), 'utf8');
    for (const id of ['document_id', 'sender_vat_id', 'amount_total'])
      expect(edifact).toContain(`[{ const: ${id} }, { field: ${id}, collapse_whitespace: true }]`);
    for (const id of ['item_code', 'item_description', 'item_amount_total', 'tax_detail_rate'])
      expect(edifact).toContain(`[{ const: ${id} }, { row: ${id}, collapse_whitespace: true }]`);
    const interchange = readFileSync(join(dir, 'expected', 'starter-edifact', 'export-invoice.edi'), 'latin1');
    expect(interchange).toMatch(/^UNA:\+\.\? '\nUNB\+UNOC:3\+SENDER:ZZZ\+RECIPIENT:ZZZ\+/);
    expect(interchange).toContain("\nFTX+ZZZ+++document_id:INV-2024-00417'\n");
    expect(interchange).toMatch(/\nLIN\+1'\nFTX\+ZZZ\+\+\+item_code:/);
    expect(interchange).toMatch(/\nUNZ\+1\+314521'\n$/);

    const check = cli(['check', dir]);
    expect(check.stdout, check.stderr).toContain('ok: 8 file(s) checked, no problems');
    expect(check.status).toBe(0);
    const test = cli(['test', '--mappings', dir]);
    expect(test.stdout).toMatch(/\n8 passed, 0 failed/);
    expect(test.status).toBe(0);
  }, 240_000);

  it('the starter names only datapoints of the queue schema, and refuses to overwrite a mapping', () => {
    const dir = mkdtempSync(join(tmpdir(), 'init-'));
    const schema = JSON.parse(readFileSync(join(FIXTURES, 'schemas', 'queue-8236-schema.json'), 'utf8'));
    const { mappingPath } = initMapping('erp', {
      from: join(FIXTURES, 'export-invoice.json'),
      format: 'xml',
      mappings: dir,
    });
    expect(checkMapping(mappingPath, { schema: catalogueFromSchema(schema, 'schema.json') }).errors).toEqual([]);
    expect(() =>
      initMapping('erp', { from: join(FIXTURES, 'export-invoice.json'), format: 'xml', mappings: dir }),
    ).toThrow(/erp\.yaml already exists \(--force replaces it\)/);
  });
});

describe('schema pull', () => {
  let server: Server;
  let base: string;
  const seen: Array<{ url: string | undefined; headers: IncomingHttpHeaders }> = [];
  let schemaUrl = '';
  beforeAll(async () => {
    server = createServer((request, response) => {
      seen.push({ url: request.url, headers: request.headers });
      response.setHeader('content-type', 'application/json');
      if (request.headers.authorization !== 'Bearer test-token-123') {
        response.statusCode = 401;
        response.end('{"detail":"Invalid token."}');
      } else if (request.url === '/api/v1/queues/8236')
        response.end(
          JSON.stringify({ id: 8236, url: `${base}/api/v1/queues/8236`, name: 'Invoices DE', schema: schemaUrl }),
        );
      else if (request.url === '/api/v1/schemas/223')
        response.end(readFileSync(join(FIXTURES, 'schemas', 'queue-8236-schema.json')));
      else {
        response.statusCode = 404;
        response.end('{"detail":"Not found."}');
      }
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    schemaUrl = `${base}/api/v1/schemas/223`;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  function config(): string {
    const dir = mkdtempSync(join(tmpdir(), 'pull-'));
    const path = join(dir, 'bridge.yaml');
    const document = {
      server: { secret: 'pull-test-secret-0123456789' },
      mappingsDir: join(repoRoot, 'mappings'),
      targets: { erp: { url: `file://${dir}` } },
      routes: [{ mapping: 'generic-xml', target: 'erp' }],
      rossum: { baseUrl: `${base}/api`, token: '${ROSSUM_TOKEN}', retry: { attempts: 1 } },
    };
    writeFileSync(path, stringify(document));
    return path;
  }

  it('fetches the queue, follows its schema URL and saves the schema; check --schema reads it', async () => {
    const out = join(mkdtempSync(join(tmpdir(), 'pulled-')), 'schema.json');
    // Asynchronous: the local Rossum answers from this process while the CLI runs.
    const pull = await runCli(['schema', 'pull', '--queue', '8236', '--config', config(), '--out', out], {
      env: { ROSSUM_TOKEN: 'test-token-123' },
      timeoutMs: 150_000,
    });
    expect(pull.code, pull.stderr).toBe(0);
    expect(JSON.parse(readFileSync(out, 'utf8'))).toEqual(
      JSON.parse(readFileSync(join(FIXTURES, 'schemas', 'queue-8236-schema.json'), 'utf8')),
    );
    expect(seen.map((request) => request.url)).toEqual(['/api/v1/queues/8236', '/api/v1/schemas/223']);
    expect(pull.stderr).not.toContain('test-token-123');
    const check = cli(['check', '--schema', out, join(repoRoot, 'mappings')]);
    expect(check.stdout).toContain('no problems');
  }, 240_000);

  it('never sends the credentials to a schema URL outside the API root', async () => {
    const { pullQueueSchema } = await import('../../src/cli/commands/schema.ts');
    schemaUrl = 'https://elsewhere.example/api/v1/schemas/223';
    process.env.ROSSUM_TOKEN = 'test-token-123';
    try {
      await expect(pullQueueSchema({ queue: '8236', config: config() })).rejects.toThrow(
        /names its schema at https:\/\/elsewhere\.example\/api\/v1\/schemas\/223, outside/,
      );
    } finally {
      schemaUrl = `${base}/api/v1/schemas/223`;
      delete process.env.ROSSUM_TOKEN;
    }
  });
});

describe('render output', () => {
  it('prints the file name on stderr beside the bytes, and --json carries the warnings', () => {
    const dir = mkdtempSync(join(tmpdir(), 'render-'));
    const mapping = join(dir, 'm.yaml');
    writeFileSync(
      mapping,
      'format: csv\nencoding: iso-8859-15\nunencodable: replace\nfile: {name: "N_{document_id}.csv"}\ncsv: {columns: [{name: seller, value: {field: sender_name}}]}\n',
    );
    const payload = JSON.parse(readFileSync(join(FIXTURES, 'export-invoice.json'), 'utf8'));
    const walk = (nodes: Array<{ schema_id: string; content?: { value: string }; children?: unknown[] }>): void => {
      for (const node of nodes) {
        if (node.schema_id === 'sender_name' && node.content) node.content.value = 'Dvořák';
        walk((node.children ?? []) as typeof nodes);
      }
    };
    walk(payload.annotation.content);
    const payloadPath = join(dir, 'p.json');
    writeFileSync(payloadPath, JSON.stringify(payload));
    const plain = spawnSync(process.execPath, [CLI, 'render', '--mapping', mapping, payloadPath], { cwd: repoRoot });
    expect(plain.status, plain.stderr.toString()).toBe(0);
    expect(plain.stdout.toString('latin1')).toBe('seller\nDvo?ák\n');
    expect(plain.stderr.toString()).toContain('file: N_INV-2024-00417.csv (iso-8859-15, 14 bytes)');
    const json = JSON.parse(cli(['render', '--mapping', mapping, '--json', payloadPath]).stdout) as {
      file: string;
      warnings: string[];
    };
    expect(json.file).toBe('N_INV-2024-00417.csv');
    expect(json.warnings).toHaveLength(1);
    expect(json.warnings[0]).toContain('"ř" (U+0159) → "?"');
  }, 180_000);
});

describe('dev --demo, run twice', () => {
  it('the second run marks every answer as a replay of the first export and shows the current server', async () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'dev-twice-')), 'dev');
    const first = await runCli(['dev', '--dir', dir, '--port', '0', '--demo', '--exit'], { timeoutMs: 170_000 });
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).not.toContain('replay');
    const second = await runCli(['dev', '--dir', dir, '--port', '0', '--demo', '--exit'], { timeoutMs: 170_000 });
    expect(second.code, second.stderr).toBe(0);
    expect(
      second.stdout.match(/→ annotation exported {2}\(replay: exported in an earlier run, nothing uploaded now\)/g),
    ).toHaveLength(3);
    const url = /webhook URL\s+(\S+)/.exec(second.stdout)?.[1];
    expect(second.stdout).toContain(`This run's server: webhook ${url}, SFTP sftp://`);
    expect(second.stdout.match(/\(from an earlier run\)/g)).toHaveLength(3);
  }, 360_000);
});
