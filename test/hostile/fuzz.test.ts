import { createHmac } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseExportPayload, viewAnnotation } from '../../src/annotation/index.ts';
import { isBridgeError } from '../../src/errors.ts';
import { loadMappings } from '../../src/mapping/index.ts';
import { fixture, repoRoot, startTestBridge, TEST_SECRET, type TestBridge } from '../support/bridge.ts';
import { startSshd, type SshdInstance } from '../support/sshd.ts';

let sshd: SshdInstance;
let bridge: TestBridge;
const FIXTURES = ['export-invoice.json', 'export-tricky-characters.json', 'export-no-line-items.json'];

beforeAll(async () => {
  sshd = await startSshd({ baseDir: mkdtempSync(join(tmpdir(), 'rsb-fuzz-sshd-')) });
  bridge = await startTestBridge({ sshd, server: { bodyLimitBytes: 512 * 1024, deadlineMs: 15_000 } });
});

afterAll(async () => {
  await bridge?.close();
  await sshd?.stop();
});

type Path = Array<string | number>;

/** Every path to a value in a JSON tree (objects and arrays included). */
function pathsOf(value: unknown, prefix: Path = [], out: Path[] = []): Path[] {
  out.push(prefix);
  if (Array.isArray(value)) for (const [i, item] of value.entries()) pathsOf(item, [...prefix, i], out);
  else if (typeof value === 'object' && value !== null)
    for (const [key, item] of Object.entries(value)) pathsOf(item, [...prefix, key], out);
  return out;
}

function setAt(root: Record<string, unknown>, path: Path, value: unknown, remove: boolean): void {
  if (path.length === 0) return;
  let node: unknown = root;
  for (const key of path.slice(0, -1)) node = (node as Record<string | number, unknown>)[key];
  const last = path[path.length - 1]!;
  if (typeof node !== 'object' || node === null) return;
  if (remove) {
    if (Array.isArray(node)) node.splice(last as number, 1);
    else delete (node as Record<string, unknown>)[last];
  } else (node as Record<string | number, unknown>)[last] = value;
}

const hostileString = fc.oneof(
  fc.string({ unit: 'grapheme', maxLength: 40 }),
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.constantFrom(
    '../../etc/passwd',
    '\u0000',
    '\ud800',
    'CON',
    '=1+1',
    '<![CDATA[',
    '&amp;',
    '%s%n',
    '-5,00',
    '1e999',
    '',
  ),
);
const hostileValue = fc.oneof(
  fc.jsonValue({ maxDepth: 3 }),
  hostileString,
  fc.constant(null),
  fc.integer(),
  fc.double(),
);

const mutation = fc.record({ path: fc.nat(), value: hostileValue, remove: fc.boolean() });
let nextId = 990_000;

function mutated(
  name: string,
  mutations: Array<{ path: number; value: unknown; remove: boolean }>,
): Record<string, unknown> {
  const payload = fixture(name);
  (payload.annotation as { id: number }).id = ++nextId;
  for (const m of mutations) {
    const paths = pathsOf(payload);
    setAt(payload, paths[m.path % paths.length]!, m.value, m.remove);
  }
  return payload;
}

async function post(body: string): Promise<{ status: number; json: unknown }> {
  const response = await fetch(bridge.url, {
    method: 'POST',
    body,
    headers: {
      'content-type': 'application/json',
      'x-rossum-signature-sha256': `sha256=${createHmac('sha256', TEST_SECRET).update(body).digest('hex')}`,
    },
  });
  const text = await response.text();
  return { status: response.status, json: JSON.parse(text) as unknown };
}

/** A well-formed reply: `{}` for ignored events, else Rossum messages (and `error` on 4xx). */
function expectWellFormed(reply: { status: number; json: unknown }): void {
  expect([200, 400, 413]).toContain(reply.status);
  const json = reply.json as { error?: unknown; messages?: Array<{ type: unknown; content: unknown }> };
  if (reply.status === 200 && json.messages === undefined) {
    expect(json).toEqual({});
    return;
  }
  expect(Array.isArray(json.messages)).toBe(true);
  expect(json.messages!.length).toBeGreaterThan(0);
  for (const message of json.messages!) {
    expect(['info', 'warning', 'error']).toContain(message.type);
    expect(typeof message.content).toBe('string');
  }
  if (reply.status >= 400) expect(typeof json.error).toBe('string');
}

describe('property: the webhook answers every signed input well-formed, never with a 5xx', () => {
  it('random JSON documents', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.jsonValue({ maxDepth: 6 }),
          fc.record({
            event: fc.constant('annotation_content'),
            action: fc.constant('export'),
            annotation: fc.jsonValue({ maxDepth: 5 }),
          }),
        ),
        async (value) => {
          expectWellFormed(await post(JSON.stringify(value)));
        },
      ),
      { numRuns: 150 },
    );
  }, 120_000);

  it('real payloads with values replaced or removed anywhere in the tree', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...FIXTURES),
        fc.array(mutation, { minLength: 1, maxLength: 4 }),
        async (name, mutations) => {
          expectWellFormed(await post(JSON.stringify(mutated(name, mutations))));
        },
      ),
      { numRuns: 200 },
    );
  }, 180_000);
});

describe('property: the mapping engine renders or refuses with a MAPPING_* error, and names stay inside the folder', () => {
  const mappings = loadMappings(join(repoRoot, 'mappings'));
  it('every mapping, mutated payloads', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...mappings.names()),
        fc.constantFrom(...FIXTURES),
        fc.array(mutation, { minLength: 1, maxLength: 4 }),
        (mappingName, name, mutations) => {
          let view: ReturnType<typeof viewAnnotation>;
          try {
            view = viewAnnotation(parseExportPayload(mutated(name, mutations)));
          } catch (error) {
            // Invalid trees are the webhook's 400, not the mapping's business.
            expect(isBridgeError(error) && error.code === 'PAYLOAD_INVALID').toBe(true);
            return;
          }
          try {
            const file = mappings.get(mappingName)!.render(view, { now: new Date('2024-02-02T10:00:00Z') });
            expect(Buffer.isBuffer(file.bytes)).toBe(true);
            for (const segment of file.fileName.split('/')) {
              expect(['', '.', '..']).not.toContain(segment);
              expect(Buffer.byteLength(segment)).toBeLessThanOrEqual(200);
              expect(segment).not.toMatch(
                /[\u0000-\u001f\\]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/,
              );
            }
          } catch (error) {
            expect(isBridgeError(error), String(error)).toBe(true);
            if (isBridgeError(error)) {
              expect(error.code).toMatch(/^MAPPING_/);
              expect(error.permanent).toBe(true);
            }
          }
        },
      ),
      { numRuns: 400 },
    );
  }, 120_000);
});
