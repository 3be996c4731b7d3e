import { readFileSync } from 'node:fs';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import iconv from 'iconv-lite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { batchListing } from '../../src/cli/commands/status-batches.ts';
import { history } from '../../src/cli/commands/status.ts';
import { startTestBridge, TEST_SECRET, type TestBridge } from '../support/bridge.ts';
import { batchMappingFrom, batchPayload, writeMappings } from '../support/batch-mappings.ts';
import { signedHeaders, visibleFiles, waitUntil } from '../support/serve-harness.ts';
import { startSshd, type SshdInstance } from '../support/sshd.ts';

let dir: string;
let sshd: SshdInstance;
let bridge: TestBridge;

const COUNT_QUEUE = 1;
const TIME_QUEUE = 2;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'rsb-batches-'));
  sshd = await startSshd({ baseDir: join(dir, 'sshd') });
  const mappingsDir = writeMappings(join(dir, 'mappings'), {
    // By count: the hour never comes within the test; the third document closes the batch.
    'count-csv': batchMappingFrom('datev-csv-batch.yaml', { every: '1h', max_documents: 3 }),
    // By time: every 2 s (whole multiples of it), one element per document under <Invoices>.
    'time-xml': batchMappingFrom('generic-xml.yaml', { every: '2s', root: 'Invoices' }, 'INVOICES_{batch:4}.xml'),
  });
  bridge = await startTestBridge({
    sshd,
    mappingsDir,
    routes: [
      { mapping: 'count-csv', target: 'erp', queues: [COUNT_QUEUE], values: {} },
      { mapping: 'time-xml', target: 'erp', queues: [TIME_QUEUE], values: {} },
    ],
  });
}, 120_000);

afterAll(async () => {
  await bridge?.close();
  await sshd?.stop();
});

async function post(payload: Record<string, unknown>): Promise<{ status: number; message: string }> {
  const body = JSON.stringify(payload);
  const response = await fetch(bridge.url, { method: 'POST', headers: signedHeaders(body, TEST_SECRET), body });
  const reply = (await response.json()) as { messages: Array<{ content: string }> };
  return { status: response.status, message: reply.messages.map((m) => m.content).join(' | ') };
}

const inbound = (prefix: string): string[] => visibleFiles(sshd.inboundDir).filter((name) => name.startsWith(prefix));
const csvOf = (name: string): string => iconv.decode(readFileSync(join(sshd.inboundDir, name)), 'windows-1252');

describe('batches (real sshd, webhook in process)', () => {
  it('by count: each export is recorded at once, a re-export replaces its entry, the third document sends ONE file with one header', async () => {
    const first = await post(batchPayload(810_001, COUNT_QUEUE, 'B-1-OLD'));
    expect(first.status).toBe(200);
    expect(first.message).toMatch(
      /^Added to batch (\d+) \(mapping count-csv, target erp, 1 document so far\); it will be sent at \d{4}-\d\d-\d\dT\d\d:\d\dZ, or as soon as it holds 3 documents$/,
    );
    const number = Number(/batch (\d+)/.exec(first.message)?.[1]);
    expect((await post(batchPayload(810_002, COUNT_QUEUE, 'B-2'))).message).toMatch(/2 documents so far/);
    // The same content again: already waiting, nothing added.
    expect((await post(batchPayload(810_002, COUNT_QUEUE, 'B-2'))).message).toMatch(/^Already waiting in batch/);
    const replaced = await post(batchPayload(810_001, COUNT_QUEUE, 'B-1-NEW'));
    expect(replaced.message).toMatch(
      new RegExp(`^Replaced this document's earlier entry in batch ${number} .*2 documents`),
    );
    expect(inbound('EXTF_')).toEqual([]);

    const third = await post(batchPayload(810_003, COUNT_QUEUE, 'B-3'));
    expect(third.message).toMatch(/3 documents so far\); the batch is closed and is being sent now$/);
    const fileName = `EXTF_Buchungsstapel_${String(number).padStart(6, '0')}.csv`;
    await waitUntil(() => inbound('EXTF_').includes(fileName), 20_000, fileName);
    const lines = csvOf(fileName).split('\r\n');
    expect(lines.filter((line) => line.startsWith('"Umsatz'))).toHaveLength(1);
    expect(lines[0]).toMatch(/^"Umsatz/);
    const documents = lines.slice(1, -1).map((line) => line.split(';')[7]);
    // Three line items per invoice, in the order the documents came; the replaced version is gone.
    expect(documents).toEqual([...Array(3).fill('"B-1-NEW"'), ...Array(3).fill('"B-2"'), ...Array(3).fill('"B-3"')]);

    const ledger = bridge.bridge.ledger;
    // The file is renamed into place before the ledger records the batch as sent.
    await waitUntil(
      async () => {
        const listed = await ledger.list({ mappingName: 'count-csv' });
        return listed.length === 3 && listed.every((e) => e.status === 'uploaded');
      },
      20_000,
      'the batch recorded as sent',
    );
    const exports = await ledger.list({ mappingName: 'count-csv' });
    expect(exports.map((e) => [e.annotationId, e.status, e.remotePath, e.documentRef])).toEqual([
      [810_001, 'uploaded', fileName, 'B-1-NEW'],
      [810_002, 'uploaded', fileName, 'B-2'],
      [810_003, 'uploaded', fileName, 'B-3'],
    ]);

    // Sent content is answered from the ledger; a new version of a sent document goes into the next batch.
    const again = await post(batchPayload(810_002, COUNT_QUEUE, 'B-2'));
    expect(again.message).toContain(`Sent in batch ${number} as ${fileName}`);
    const next = await post(batchPayload(810_002, COUNT_QUEUE, 'B-2-V2'));
    expect(next.message).toMatch(new RegExp(`^Added to batch ${number + 1} .*1 document so far`));

    // status --batches lists both batches with their documents.
    const listing = await batchListing(ledger, { mapping: 'count-csv' });
    expect(listing).toMatch(new RegExp(`\\n${number + 1}\\s+open\\s+count-csv\\s+erp\\s+1`));
    expect(listing).toMatch(new RegExp(`\\n${number}\\s+sent\\s+count-csv\\s+erp\\s+3 .*${fileName}`));
    expect(listing).toMatch(/annotation 810001\s+B-1-NEW\s+export \d+\s+.*replaced/);
    // status ANNOTATION_ID: the document waiting in the open batch, and the batch it was sent in.
    const story = await history(ledger, 810_002, false);
    expect(story).toMatch(
      new RegExp(`^batch ${number + 1} \\(mapping count-csv, target erp\\): open, 1 documents, closes `),
    );
    expect(story).toMatch(
      new RegExp(`\\nbatch ${number} \\(mapping count-csv, target erp\\): sent, 3 documents, sent .* as ${fileName}`),
    );
    const json = JSON.parse(await batchListing(ledger, { mapping: 'count-csv', json: true })) as Array<{
      number: number;
      documents: Array<{ annotationId: number }>;
    }>;
    expect(json.map((b) => [b.number, b.documents.map((d) => d.annotationId)])).toEqual([
      [number + 1, [810_002]],
      [number, [810_001, 810_002, 810_003]],
    ]);
  }, 60_000);

  it('by time: documents collected within a period go out as one XML with one element per document under the batch root', async () => {
    const replies = [
      await post(batchPayload(820_001, TIME_QUEUE, 'T-1')),
      await post(batchPayload(820_002, TIME_QUEUE, 'T-2')),
    ];
    expect(replies.map((r) => r.status)).toEqual([200, 200]);
    const numbers = replies.map((r) => Number(/batch (\d+)/.exec(r.message)?.[1]));
    // The two may straddle a 2 s boundary: then they are in two consecutive batches.
    await waitUntil(
      async () => (await bridge.bridge.ledger.list({ mappingName: 'time-xml' })).length === 2,
      15_000,
      'both documents sent',
    );
    const files = inbound('INVOICES_');
    expect(files).toEqual([...new Set(numbers)].map((n) => `INVOICES_${String(n).padStart(4, '0')}.xml`));
    const xml = files.map((name) => readFileSync(join(sshd.inboundDir, name), 'utf8')).join('');
    expect(xml.match(/<Invoices>/g)).toHaveLength(files.length);
    expect(xml.match(/<\?xml /g)).toHaveLength(files.length);
    expect(xml.match(/\n {2}<Invoice annotationId="82000[12]">/g)).toHaveLength(2);
    expect(xml).toContain('<Number>T-1</Number>');
    expect(xml).toContain('<Number>T-2</Number>');
    expect(xml.endsWith('</Invoices>\n')).toBe(true);
  }, 30_000);

  it('a batch the ledger cannot record is answered 503, so Rossum retries', async () => {
    const db = new Database(bridge.config.ledger.url.slice('sqlite:'.length));
    db.exec('ALTER TABLE batch_entries RENAME TO batch_entries_away');
    try {
      const reply = await post(batchPayload(830_001, COUNT_QUEUE, 'X-1'));
      expect(reply.status).toBe(503);
      expect(reply.message).toMatch(
        /^Could not record the document in a batch of mapping count-csv \(ledger: .*\); Rossum will retry$/,
      );
    } finally {
      db.exec('ALTER TABLE batch_entries_away RENAME TO batch_entries');
      db.close();
    }
    expect((await post(batchPayload(830_001, COUNT_QUEUE, 'X-1'))).status).toBe(200);
  }, 30_000);
});
