import { createHash, createHmac } from 'node:crypto';
import { fixture } from '../support/bridge.ts';

/**
 * Bad requests and the exact answer each must get. `rejected` cases must leave the ledger and the
 * folder untouched; `contained` cases are path-escape attempts in values that reach a file name:
 * they may export, but only under a sanitized name inside the target folder.
 */

export const HOSTILE_SECRET = 'hostile-suite-secret-7c1f9a0b2d4e6f81';
/** Small enough to test 413 cheaply, large enough for every realistic payload. */
export const HOSTILE_BODY_LIMIT = 256 * 1024;
export const HOSTILE_MAX_DEPTH = 64;

export interface Expected {
  status: number;
  /** Matched against the reply's `error` (4xx) or the first message's content (200 replies). */
  error: RegExp;
  /** For 200 replies: the Rossum message type the operator sees. */
  messageType?: 'error' | 'info';
  /** A `warning` message that must come along (what the render had to change). */
  warning?: RegExp;
  /** The `id` of the error message: the datapoint the operator is sent to. */
  datapointId?: number;
}

export interface HostileCase {
  name: string;
  group: string;
  body: Buffer;
  headers: Record<string, string>;
  /** Extra values for a header sent twice. */
  repeatedHeader?: [string, string[]];
  expected: Expected;
  /** rejected = nothing may change; contained = may export, never outside the folder. */
  kind: 'rejected' | 'contained';
}

type Json = Record<string, unknown>;
interface Node {
  id: number;
  schema_id: string;
  category: string;
  children?: Node[];
  content?: Record<string, unknown>;
}

export function signSha256(body: Buffer | string, secret = HOSTILE_SECRET): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}

let nextAnnotationId = 770_000;

/** The invoice fixture with a fresh annotation id (so nothing collides with an earlier case). */
function invoice(): Json {
  const payload = fixture('export-invoice.json');
  (payload.annotation as Json).id = ++nextAnnotationId;
  return payload;
}

function contentOf(payload: Json): Node[] {
  return (payload.annotation as { content: Node[] }).content;
}

function findNode(payload: Json, schemaId: string): Node {
  const stack = [...contentOf(payload)];
  while (stack.length > 0) {
    const node = stack.shift() as Node;
    if (node.schema_id === schemaId) return node;
    stack.push(...(node.children ?? []));
  }
  throw new Error(`fixture has no ${schemaId}`);
}

function mutate(change: (payload: Json) => void): Json {
  const payload = invoice();
  change(payload);
  return payload;
}

const json = (value: unknown): Buffer => Buffer.from(JSON.stringify(value), 'utf8');

function signed(
  name: string,
  group: string,
  body: Buffer | string,
  expected: Expected,
  kind: HostileCase['kind'] = 'rejected',
  contentType = 'application/json',
): HostileCase {
  const bytes = Buffer.isBuffer(body) ? body : Buffer.from(body, 'utf8');
  return {
    name,
    group,
    body: bytes,
    headers: { 'content-type': contentType, 'x-rossum-signature-sha256': signSha256(bytes) },
    expected,
    kind,
  };
}

const badRequest = (pattern: RegExp): Expected => ({ status: 400, error: pattern });
const invalidAt = (path: string, what: RegExp = /./): Expected => ({
  status: 400,
  error: new RegExp(`^Invalid export payload at ${path.replace(/[.[\]]/g, (c) => `\\${c}`)}: .*${what.source}`),
});
const unauthorized = (pattern: RegExp): Expected => ({ status: 401, error: pattern });

export function buildCorpus(): HostileCase[] {
  const cases: HostileCase[] = [];
  const good = json(invoice());
  const add = (c: HostileCase): void => void cases.push(c);

  // ── signature attacks ─────────────────────────────────────────────────────────────
  const sig = (name: string, headers: Record<string, string>, expected: Expected, body: Buffer = good): void =>
    add({
      name,
      group: 'signature',
      body,
      headers: { 'content-type': 'application/json', ...headers },
      expected,
      kind: 'rejected',
    });
  const hex = createHmac('sha256', HOSTILE_SECRET).update(good).digest('hex');
  sig('no signature header', {}, unauthorized(/^Missing X-Rossum-Signature-SHA256 header/));
  sig(
    'sha1= prefix on the sha256 header',
    { 'x-rossum-signature-sha256': `sha1=${hex}` },
    unauthorized(/must look like sha256=<hex digest>/),
  );
  sig(
    'bare hex without prefix',
    { 'x-rossum-signature-sha256': hex },
    unauthorized(/must look like sha256=<hex digest>/),
  );
  sig(
    'upper-case SHA256= prefix',
    { 'x-rossum-signature-sha256': `SHA256=${hex}` },
    unauthorized(/must look like sha256=<hex digest>/),
  );
  sig('empty header value', { 'x-rossum-signature-sha256': '' }, unauthorized(/must look like sha256=<hex digest>/));
  sig('prefix only', { 'x-rossum-signature-sha256': 'sha256=' }, unauthorized(/wrong length for sha256/));
  sig(
    'digest one byte short',
    { 'x-rossum-signature-sha256': `sha256=${hex.slice(0, 62)}` },
    unauthorized(/wrong length for sha256/),
  );
  sig(
    'digest one byte long',
    { 'x-rossum-signature-sha256': `sha256=${hex}00` },
    unauthorized(/wrong length for sha256/),
  );
  sig(
    'odd number of hex digits',
    { 'x-rossum-signature-sha256': `sha256=${hex}0` },
    unauthorized(/wrong length for sha256/),
  );
  sig(
    'non-hex characters of the right length',
    { 'x-rossum-signature-sha256': `sha256=${'zz'.repeat(32)}` },
    unauthorized(/wrong length for sha256/),
  );
  sig(
    'sha1-length digest',
    { 'x-rossum-signature-sha256': `sha256=${hex.slice(0, 40)}` },
    unauthorized(/wrong length for sha256/),
  );
  sig(
    'signed with another secret',
    { 'x-rossum-signature-sha256': signSha256(good, 'not-the-secret-0123456789abcdef') },
    unauthorized(/does not match the body/),
  );
  sig(
    'valid signature over a different body',
    { 'x-rossum-signature-sha256': signSha256(json(invoice())) },
    unauthorized(/does not match the body/),
  );
  sig(
    'valid signature over the body plus one space',
    { 'x-rossum-signature-sha256': signSha256(Buffer.concat([good, Buffer.from(' ')])) },
    unauthorized(/does not match the body/),
  );
  sig(
    'signature of the full body, body truncated',
    { 'x-rossum-signature-sha256': signSha256(good) },
    unauthorized(/does not match the body/),
    good.subarray(0, good.length - 10),
  );
  sig(
    'plain sha256 of the body (no HMAC)',
    { 'x-rossum-signature-sha256': `sha256=${createHash('sha256').update(good).digest('hex')}` },
    unauthorized(/does not match the body/),
  );
  sig(
    'HMAC keyed with the empty secret',
    { 'x-rossum-signature-sha256': signSha256(good, '') },
    unauthorized(/does not match the body/),
  );
  sig(
    'legacy sha1 signature while sha1 is off',
    { 'x-elis-signature': `sha1=${createHmac('sha1', HOSTILE_SECRET).update(good).digest('hex')}` },
    unauthorized(/sha1 signatures are disabled/),
  );
  sig(
    'valid sha1 next to a wrong sha256',
    {
      'x-elis-signature': `sha1=${createHmac('sha1', HOSTILE_SECRET).update(good).digest('hex')}`,
      'x-rossum-signature-sha256': `sha256=${'0'.repeat(64)}`,
    },
    unauthorized(/does not match the body/),
  );
  add({
    name: 'the header sent twice (valid + forged)',
    group: 'signature',
    body: good,
    headers: { 'content-type': 'application/json' },
    repeatedHeader: ['x-rossum-signature-sha256', [signSha256(good), `sha256=${'f'.repeat(64)}`]],
    expected: unauthorized(/wrong length for sha256|does not match the body/),
    kind: 'rejected',
  });

  // ── transport-level body problems ───────────────────────────────────────────────
  add(signed('empty body', 'body', '', badRequest(/^Empty body/)));
  add(
    signed(
      'truncated JSON (half of a real payload)',
      'json',
      good.subarray(0, Math.floor(good.length / 2)),
      badRequest(/^Malformed JSON: /),
    ),
  );
  add(
    signed(
      'truncated JSON (last byte missing)',
      'json',
      good.subarray(0, good.length - 1),
      badRequest(/^Malformed JSON: /),
    ),
  );
  add(
    signed(
      'unterminated string',
      'json',
      '{"event": "annotation_content", "action": "exp',
      badRequest(/^Malformed JSON: /),
    ),
  );
  add(
    signed(
      'trailing garbage after the object',
      'json',
      Buffer.concat([good, Buffer.from('}x')]),
      badRequest(/^Malformed JSON: /),
    ),
  );
  add(
    signed(
      'single-quoted strings',
      'json',
      "{'event': 'annotation_content', 'action': 'export'}",
      badRequest(/^Malformed JSON: /),
    ),
  );
  add(
    signed(
      'NaN literal',
      'json',
      '{"event": "annotation_content", "action": "export", "x": NaN}',
      badRequest(/^Malformed JSON: /),
    ),
  );
  add(
    signed(
      'comments in JSON',
      'json',
      '{"event": "annotation_content", /* hi */ "action": "export"}',
      badRequest(/^Malformed JSON: /),
    ),
  );
  add(
    signed(
      'trailing comma',
      'json',
      '{"event": "annotation_content", "action": "export",}',
      badRequest(/^Malformed JSON: /),
    ),
  );
  add(signed('bare NUL bytes', 'json', Buffer.from([0, 0, 0, 0]), badRequest(/^Malformed JSON: /)));
  add(signed('top-level array', 'json', '[]', badRequest(/^Not a Rossum hook payload/)));
  add(signed('top-level string', 'json', '"annotation_content"', badRequest(/^Not a Rossum hook payload/)));
  add(signed('top-level null', 'json', 'null', badRequest(/^Not a Rossum hook payload/)));
  add(
    signed('event is a number', 'json', '{"event": 1, "action": "export"}', badRequest(/^Not a Rossum hook payload/)),
  );
  add(signed('action missing', 'json', '{"event": "annotation_content"}', badRequest(/^Not a Rossum hook payload/)));
  add(
    signed(
      'nested 65 levels (limit 64)',
      'depth',
      `${'['.repeat(65)}${']'.repeat(65)}`,
      badRequest(/^JSON nested 65 levels deep; at most 64 are accepted/),
    ),
  );
  add(
    signed(
      'nested 100000 levels',
      'depth',
      `${'['.repeat(100_000)}${']'.repeat(100_000)}`,
      badRequest(/^JSON nested 100000 levels deep/),
    ),
  );
  add(
    signed(
      'deep nesting hidden inside annotation metadata',
      'depth',
      json(
        mutate(
          (p) => ((p.annotation as Json).metadata = JSON.parse(`${'{"x":'.repeat(80)}1${'}'.repeat(80)}`) as Json),
        ),
      ),
      badRequest(/^JSON nested \d+ levels deep; at most 64/),
    ),
  );
  add(
    signed('body over the limit', 'size', json({ ...invoice(), padding: 'x'.repeat(HOSTILE_BODY_LIMIT) }), {
      status: 413,
      error: /^Body larger than the configured limit of 262144 bytes/,
    }),
  );
  add(
    signed(
      'content type text/html',
      'content-type',
      good,
      { status: 415, error: /^Unsupported content type "text\/html": send application\/json/ },
      'rejected',
      'text/html',
    ),
  );
  add(
    signed(
      'content type form-urlencoded',
      'content-type',
      'a=b',
      { status: 415, error: /^Unsupported content type "application\/x-www-form-urlencoded"/ },
      'rejected',
      'application/x-www-form-urlencoded',
    ),
  );
  add(
    signed(
      'content type multipart',
      'content-type',
      good,
      { status: 415, error: /^Unsupported content type "multipart\/form-data; boundary=x"/ },
      'rejected',
      'multipart/form-data; boundary=x',
    ),
  );
  add(
    signed(
      'content type application/xml',
      'content-type',
      good,
      { status: 415, error: /^Unsupported content type "application\/xml"/ },
      'rejected',
      'application/xml',
    ),
  );
  add(
    signed(
      'content type application/jsonx',
      'content-type',
      good,
      { status: 415, error: /^Unsupported content type "application\/jsonx"/ },
      'rejected',
      'application/jsonx',
    ),
  );

  // ── not UTF-8, lone surrogates ──────────────────────────────────────────────────
  const withBytes = (marker: string, bytes: number[]): Buffer => {
    const text = JSON.stringify(mutate((p) => (findNode(p, 'sender_name').content!.value = marker)));
    const at = text.indexOf(marker);
    return Buffer.concat([
      Buffer.from(text.slice(0, at)),
      Buffer.from(bytes),
      Buffer.from(text.slice(at + marker.length)),
    ]);
  };
  add(
    signed(
      '0xFF byte inside a string',
      'utf8',
      withBytes('@@', [0x41, 0xff, 0x42]),
      badRequest(/^Body is not valid UTF-8 \(first bad byte near offset \d+\)/),
    ),
  );
  add(
    signed('overlong encoding of "/"', 'utf8', withBytes('@@', [0xc0, 0xaf]), badRequest(/^Body is not valid UTF-8/)),
  );
  add(
    signed(
      'UTF-8-encoded lone surrogate (CESU-8)',
      'utf8',
      withBytes('@@', [0xed, 0xa0, 0x80]),
      badRequest(/^Body is not valid UTF-8/),
    ),
  );
  add(
    signed(
      'truncated multi-byte sequence at the end',
      'utf8',
      Buffer.concat([good.subarray(0, good.length - 1), Buffer.from([0xe2, 0x82])]),
      badRequest(/^Body is not valid UTF-8/),
    ),
  );
  add(
    signed(
      'Latin-1 encoded body',
      'utf8',
      Buffer.from(JSON.stringify(invoice()), 'latin1'),
      badRequest(/^Body is not valid UTF-8/),
    ),
  );
  add(
    signed(
      'UTF-16 encoded body',
      'utf8',
      Buffer.from(`\ufeff${JSON.stringify(invoice())}`, 'utf16le'),
      badRequest(/^(Body is not valid UTF-8|Malformed JSON)/),
    ),
  );
  // XML cannot carry them: the mapping drops them and the operator is told which datapoint lost what.
  add(
    signed(
      'escaped lone high surrogate in a field the XML carries',
      'utf8',
      json(mutate((p) => (findNode(p, 'sender_name').content!.value = 'Müller \ud800 GmbH'))),
      {
        status: 200,
        messageType: 'info',
        error: /^Exported INV_/,
        warning: /sender_name, datapoint \d+\): removed .*U\+D800/,
      },
      'contained',
    ),
  );
  add(
    signed(
      'escaped lone low surrogate in the document id (reaches the file name)',
      'utf8',
      json(mutate((p) => (findNode(p, 'document_id').content!.value = 'INV-\udc00-1'))),
      {
        status: 200,
        messageType: 'info',
        error: /^Exported INV_/,
        warning: /document_id, datapoint \d+\): removed .*U\+DC00/,
      },
      'contained',
    ),
  );
  {
    let datapointId = 0;
    const body = json(
      mutate((p) => {
        p.settings = { mapping: 'generic-csv' };
        const node = findNode(p, 'document_id');
        node.content!.value = 'INV-\udc00-1';
        datapointId = node.id;
      }),
    );
    add(
      signed('lone surrogate into a CSV mapping', 'utf8', body, {
        status: 200,
        messageType: 'error',
        error: /U\+DC00 cannot be written in utf-8/,
        datapointId,
      }),
    );
  }

  // ── wrong field types anywhere in the annotation tree ────────────────────────────
  const tree = (name: string, change: (payload: Json) => void, expected: Expected): void =>
    add(signed(name, 'types', json(mutate(change)), expected));
  tree('annotation missing', (p) => delete p.annotation, invalidAt('annotation'));
  tree('annotation is a string', (p) => (p.annotation = 'annotation'), invalidAt('annotation'));
  tree('annotation is an array', (p) => (p.annotation = []), invalidAt('annotation'));
  tree('annotation.id is a string', (p) => ((p.annotation as Json).id = '314521'), invalidAt('annotation.id'));
  tree('annotation.id is a fraction', (p) => ((p.annotation as Json).id = 1.5), invalidAt('annotation.id'));
  tree(
    'annotation.id beyond the safe integer range',
    (p) => ((p.annotation as Json).id = 1e300),
    invalidAt('annotation.id'),
  );
  tree('annotation.id is null', (p) => ((p.annotation as Json).id = null), invalidAt('annotation.id'));
  tree('annotation.content missing', (p) => delete (p.annotation as Json).content, invalidAt('annotation.content'));
  tree(
    'annotation.content is an object',
    (p) => ((p.annotation as Json).content = {}),
    invalidAt('annotation.content'),
  );
  tree('annotation.content is null', (p) => ((p.annotation as Json).content = null), invalidAt('annotation.content'));
  tree(
    'a section is a string',
    (p) => ((p.annotation as { content: unknown[] }).content[1] = 'vendor'),
    invalidAt('annotation.content[1]'),
  );
  tree(
    'section id is a string',
    (p) => ((contentOf(p)[0] as unknown as Json).id = 'x'),
    invalidAt('annotation.content[0].id'),
  );
  tree(
    'unknown category',
    (p) => ((contentOf(p)[0] as unknown as Json).category = 'widget'),
    invalidAt('annotation.content[0].category'),
  );
  tree(
    'category missing',
    (p) => delete (contentOf(p)[0] as unknown as Json).category,
    invalidAt('annotation.content[0].category'),
  );
  tree(
    'datapoint without schema_id',
    (p) => delete (findNode(p, 'document_id') as unknown as Json).schema_id,
    invalidAt('annotation.content[0].children[0].schema_id'),
  );
  tree(
    'datapoint with an empty schema_id',
    (p) => (findNode(p, 'document_id').schema_id = ''),
    invalidAt('annotation.content[0].children[0].schema_id'),
  );
  tree(
    'datapoint schema_id is a number',
    (p) => ((findNode(p, 'currency') as unknown as Json).schema_id = 7),
    invalidAt('annotation.content[0].children[6].schema_id'),
  );
  tree(
    'children is an object',
    (p) => ((contentOf(p)[1] as unknown as Json).children = {}),
    invalidAt('annotation.content[1].children'),
  );
  tree(
    'children holds a number',
    (p) => ((contentOf(p)[1] as unknown as Json).children = [1]),
    invalidAt('annotation.content[1].children[0]'),
  );
  tree(
    'content.value is a number',
    (p) => (findNode(p, 'amount_total').content!.value = 165.41),
    invalidAt('annotation.content[2].children[2].content.value'),
  );
  tree(
    'content.value is an object',
    (p) => (findNode(p, 'sender_name').content!.value = { text: 'x' }),
    invalidAt('annotation.content[1].children[0].content.value'),
  );
  tree(
    'normalized_value is an array',
    (p) => (findNode(p, 'date_issue').content!.normalized_value = ['2024-01-31']),
    invalidAt('annotation.content[0].children[2].content.normalized_value'),
  );
  tree(
    'content is a string',
    (p) => ((findNode(p, 'order_id') as unknown as Json).content = 'PO'),
    invalidAt('annotation.content[0].children[1].content'),
  );
  tree(
    'line item value three levels down is a boolean',
    (p) => (findNode(p, 'item_quantity').content!.value = true),
    invalidAt('annotation.content[3].children[0].children[0].children[2].content.value'),
  );
  tree(
    'tuple id is a float',
    (p) => (findNode(p, 'line_item').id = 0.5),
    invalidAt('annotation.content[3].children[0].children[0].id'),
  );
  tree('request_id missing', (p) => delete p.request_id, invalidAt('request_id'));
  tree('request_id is a number', (p) => (p.request_id = 42), invalidAt('request_id'));
  tree('settings is an array', (p) => (p.settings = ['mapping']), invalidAt('settings'));
  tree('secrets is a string', (p) => (p.secrets = 'hunter2'), invalidAt('secrets'));
  tree(
    'annotation.metadata is an array',
    (p) => ((p.annotation as Json).metadata = []),
    invalidAt('annotation.metadata'),
  );
  tree('annotation.queue is a number', (p) => ((p.annotation as Json).queue = 8236), invalidAt('annotation.queue'));
  tree('document.id is a string', (p) => ((p.document as Json).id = '314621'), invalidAt('document.id'));
  tree(
    'document.original_file_name is an object',
    (p) => ((p.document as Json).original_file_name = { name: 'x.pdf' }),
    invalidAt('document.original_file_name'),
  );

  // ── duplicate ids ────────────────────────────────────────────────────────────────
  const duplicate = (name: string, change: (payload: Json) => number): void => {
    let id = 0;
    const body = json(mutate((p) => (id = change(p))));
    add(
      signed(
        name,
        'duplicate-ids',
        body,
        badRequest(new RegExp(`datapoint id ${id} appears more than once in annotation\\.content`)),
      ),
    );
  };
  duplicate('two header datapoints share an id', (p) => (findNode(p, 'order_id').id = findNode(p, 'document_id').id));
  duplicate('a line-item datapoint reuses a section id', (p) => (findNode(p, 'item_code').id = contentOf(p)[0]!.id));
  duplicate('two line items (tuples) share an id', (p) => {
    const items = findNode(p, 'line_items').children!;
    items[2]!.id = items[0]!.id;
    return items[0]!.id;
  });
  add(
    signed(
      'duplicate JSON key: a second "annotation" replaces the first',
      'duplicate-ids',
      `${good.toString('utf8').slice(0, -1)}, "annotation": 5}`,
      invalidAt('annotation'),
    ),
  );

  // ── huge strings ─────────────────────────────────────────────────────────────────
  add(
    signed(
      'huge schema_id on the required document_id',
      'huge',
      json(mutate((p) => (findNode(p, 'document_id').schema_id = 'd'.repeat(100_000)))),
      { status: 200, messageType: 'error', error: /document_id/ },
    ),
  );
  {
    let datapointId = 0;
    const body = json(
      mutate((p) => {
        const node = findNode(p, 'date_issue');
        node.content = { value: '1'.repeat(100_000), normalized_value: '1'.repeat(100_000) };
        datapointId = node.id;
      }),
    );
    add(
      signed('huge value (200 kB) in a required date', 'huge', body, {
        status: 200,
        messageType: 'error',
        error: /date_issue/,
        datapointId,
      }),
    );
  }
  add(
    signed(
      'huge request_id (200 kB) with a broken tree',
      'huge',
      json(
        mutate((p) => {
          p.request_id = 'r'.repeat(200_000);
          (p.annotation as Json).content = 'x';
        }),
      ),
      invalidAt('annotation.content'),
    ),
  );
  add(
    signed(
      'huge number literal as annotation.id',
      'huge',
      good.toString('utf8').replace(/"id":\d+/, `"id":${'9'.repeat(5000)}`),
      invalidAt('annotation.id'),
    ),
  );

  // ── values that reach a file or mapping name ─────────────────────────────────────
  const route = (name: string, settings: Json, expected: Expected): void =>
    add(signed(name, 'path-escape', json(mutate((p) => (p.settings = settings))), expected));
  route(
    'settings.mapping climbs out of the mappings folder',
    { mapping: '../../../etc/passwd' },
    {
      status: 200,
      messageType: 'error',
      error: /^Mapping "\.\.\/\.\.\/\.\.\/etc\/passwd" \(chosen by hook settings\) does not exist/,
    },
  );
  route(
    'settings.mapping is an absolute path',
    { mapping: '/etc/passwd' },
    { status: 200, messageType: 'error', error: /^Mapping "\/etc\/passwd" \(chosen by hook settings\) does not exist/ },
  );
  route(
    'settings.mapping names a .yaml file',
    { mapping: 'generic-xml.yaml' },
    { status: 200, messageType: 'error', error: /^Mapping "generic-xml\.yaml" .* does not exist/ },
  );
  route(
    'settings.mapping with a NUL byte',
    { mapping: 'generic-xml\u0000' },
    { status: 200, messageType: 'error', error: /^Mapping "generic-xml\u0000" .* does not exist/ },
  );
  route(
    'settings.target climbs',
    { target: '../erp' },
    { status: 200, messageType: 'error', error: /^Target "\.\.\/erp" \(chosen by hook settings\) is not configured/ },
  );
  route(
    'settings.target is __proto__',
    { target: '__proto__' },
    { status: 200, messageType: 'error', error: /^Target "__proto__" .* is not configured/ },
  );
  route(
    'settings.mapping is constructor',
    { mapping: 'constructor' },
    { status: 200, messageType: 'error', error: /^Mapping "constructor" .* does not exist/ },
  );

  const escapes: Array<[string, string, RegExp?]> = [
    ['parent climb', '../../../../tmp/hostile-escape'],
    ['absolute path', '/etc/cron.d/hostile'],
    ['climb after a folder', 'a/../../b'],
    ['Windows separators', '..\\..\\windows\\system32'],
    ['only dots', '..'],
    ['NUL byte', 'INV\u0000.xml', /document_id, datapoint \d+\): removed NUL \(U\+0000\)/],
    [
      'CR LF and control characters',
      'INV\r\n\u0007\u001b[31m',
      /document_id, datapoint \d+\): removed control character U\+0007/,
    ],
    ['reserved device name', 'CON'],
    ['percent-encoded climb', '%2e%2e%2f%2e%2e%2fetc'],
    ['unicode slash look-alikes', '\u2215etc\u2215passwd\uff0f..'],
    ['leading dot (hidden / temp name)', '.INV-1.xml.part'],
    ['500 characters', 'x'.repeat(500)],
  ];
  for (const [name, value, warning] of escapes) {
    add(
      signed(
        `document_id path escape: ${name}`,
        'path-escape',
        json(mutate((p) => (findNode(p, 'document_id').content!.value = value))),
        { status: 200, messageType: 'info', error: /^Exported INV_/, ...(warning ? { warning } : {}) },
        'contained',
      ),
    );
  }
  return cases;
}
