import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { promisify } from 'node:util';
import { parseExportPayload, viewAnnotation } from '../../src/annotation/index.ts';
import { documentPath, prepareExport } from '../../src/export/index.ts';
import { loadMappings } from '../../src/mapping/index.ts';
import { callHook as deliver } from '../../src/rossum/hook-call.ts';
import { DocumentContentServer } from '../support/document-content.ts';
import { startSshd, type SshdInstance } from '../support/sshd.ts';
import {
  fixture,
  repoRoot,
  startTestBridge,
  TEST_SECRET,
  testTargetConfig,
  type TestBridge,
} from '../support/bridge.ts';
import { cliEntry } from '../support/cli-entry.ts';

const run = promisify(execFile);
const PDF = readFileSync(join(repoRoot, 'test/fixtures/rossum/INV-2024-00417.pdf'));
const WEBHOOK_TOKEN = 'webhook-token-0123456789';
const CONFIGURED_TOKEN = 'configured-token-9876543210';

let sshd: SshdInstance;
let documents: DocumentContentServer;
let bridge: TestBridge;
let mappingsDir: string;

/** The shipped mapping, plus variants (tests stripped: their payload paths are relative to mappings/). */
function writeMappings(): string {
  const dir = mkdtempSync(join(tmpdir(), 'rsb-files-mappings-'));
  const shipped = readFileSync(join(repoRoot, 'mappings/sap-idoc-xml-scan.yaml'), 'utf8');
  const base = shipped.slice(0, shipped.indexOf('\ntests:'));
  writeFileSync(join(dir, 'sap-idoc-xml-scan.yaml'), base);
  writeFileSync(
    join(dir, 'scan-optional.yaml'),
    base
      .replace('  required: true', '  required: false')
      .replace('counter: sap-idoc', 'counter: optional')
      .replace('IDOC_{seq:8}', 'OPT_{seq:8}'),
  );
  writeFileSync(
    join(dir, 'scan-small.yaml'),
    base
      .replace('max_bytes: 20000000', 'max_bytes: 100')
      .replace('IDOC_{seq:8}', 'SMALL_{seq}')
      .replace('counter: sap-idoc\n', '')
      .replace('start: 1', 'start: 500'),
  );
  return dir;
}

beforeAll(async () => {
  sshd = await startSshd({ baseDir: mkdtempSync(join(tmpdir(), 'rsb-files-sshd-')) });
  documents = await DocumentContentServer.start();
  documents.issueToken(WEBHOOK_TOKEN);
  documents.issueToken(CONFIGURED_TOKEN);
  mappingsDir = writeMappings();
  bridge = await startTestBridge({
    sshd,
    mappingsDir,
    mapping: 'sap-idoc-xml-scan',
    routes: [
      { mapping: 'scan-optional', target: 'erp', queues: [2], values: {} },
      { mapping: 'scan-small', target: 'erp', queues: [3], values: {} },
      { mapping: 'sap-idoc-xml-scan', target: 'erp', values: {} },
    ],
    rossum: { allowedHosts: ['127.0.0.1'], token: CONFIGURED_TOKEN, timeoutMs: 1500 },
  });
}, 60_000);

afterAll(async () => {
  await bridge?.close();
  await documents?.close();
  await sshd?.stop();
});

interface PayloadOptions {
  annotationId: number;
  documentId?: number;
  /** false: the hook has no token owner (no rossum_authorization_token). */
  webhookToken?: string | false;
  queue?: number;
  documentNumber?: string;
  storeDocument?: boolean;
}

function payload(options: PayloadOptions): string {
  const body = fixture('export-invoice.json');
  const documentId = options.documentId ?? options.annotationId + 200_000;
  const { url, document } =
    options.storeDocument === false
      ? {
          url: `${documents.baseUrl}/api/v1/documents/${documentId}`,
          document: {
            id: documentId,
            original_file_name: 'missing.pdf',
            content: `${documents.baseUrl}/api/v1/documents/${documentId}/content`,
          },
        }
      : documents.addDocument(documentId, PDF, 'INV-2024-00417.pdf');
  const annotation = body.annotation as Record<string, unknown>;
  annotation.id = options.annotationId;
  annotation.document = url;
  if (options.queue !== undefined) annotation.queue = `https://example.rossum.app/api/v1/queues/${options.queue}`;
  body.document = { ...(body.document as Record<string, unknown>), ...document };
  if (options.webhookToken === false) delete body.rossum_authorization_token;
  else body.rossum_authorization_token = options.webhookToken ?? WEBHOOK_TOKEN;
  setDocumentNumber(body, options.documentNumber ?? `INV-${options.annotationId}`);
  parseExportPayload(body);
  return JSON.stringify(body);
}

function setDocumentNumber(body: Record<string, unknown>, value: string): void {
  const walk = (node: { schema_id: string; category: string; children?: unknown[]; content?: { value: string } }) => {
    if (node.category === 'datapoint' && node.schema_id === 'document_id' && node.content) node.content.value = value;
    for (const child of (node.children ?? []) as Array<typeof node>) walk(child);
  };
  for (const section of (body.annotation as { content: Array<Parameters<typeof walk>[0]> }).content) walk(section);
}

const call = (body: string) => deliver({ url: bridge.url, body, secret: TEST_SECRET, retryCount: 0 });
const inbound = (): string[] => (existsSync(sshd.inboundDir) ? readdirSync(sshd.inboundDir).sort() : []);
const records = (annotationId: number) => bridge.bridge.ledger.list({ annotationId });

describe('sequence numbers and the original document beside the data file (real sshd)', () => {
  it('numbers files from the counter, puts the PDF in place first, and a re-delivery reuses both', async () => {
    const first = await call(payload({ annotationId: 710001 }));
    const second = await call(payload({ annotationId: 710002 }));
    expect(first.annotationStatus).toBe('exported');
    expect(second.annotationStatus).toBe('exported');
    const [one] = await records(710001);
    const [two] = await records(710002);
    expect(one?.sequenceNumber).toBe(1);
    expect(two?.sequenceNumber).toBe(2);
    expect(one?.remotePath).toBe('IDOC_00000001_INV-710001.xml');
    expect(two?.remotePath).toBe('IDOC_00000002_INV-710002.xml');
    expect(readFileSync(join(sshd.inboundDir, 'IDOC_00000002_INV-710002.xml'), 'latin1')).toContain(
      '<DOCNUM>0000000000000002</DOCNUM>',
    );
    // The pair: the PDF byte for byte under the same stem, recorded in the ledger before the data file.
    expect(readFileSync(join(sshd.inboundDir, 'IDOC_00000001_INV-710001.pdf'))).toEqual(PDF);
    expect(one).toMatchObject({ documentPath: 'IDOC_00000001_INV-710001.pdf', documentBytes: PDF.length });
    const kinds = (await bridge.bridge.ledger.events(one!.id)).map((event) => event.kind);
    expect(kinds.indexOf('document_uploaded')).toBeGreaterThan(-1);
    expect(kinds.indexOf('document_uploaded')).toBeLessThan(kinds.indexOf('uploaded'));
    expect(first.messages.map((m) => m.content).join('\n')).toContain(
      'Original document uploaded first as IDOC_00000001_INV-710001.pdf',
    );
    // The webhook's token was used (not the configured one).
    expect(documents.requests.filter((r) => r.documentId === 710001 + 200_000).map((r) => r.authorization)).toEqual([
      `Bearer ${WEBHOOK_TOKEN}`,
    ]);

    const before = inbound();
    const again = await call(payload({ annotationId: 710001 }));
    expect(again.annotationStatus).toBe('exported');
    expect(again.messages).toEqual(first.messages);
    expect(inbound()).toEqual(before);
    expect(await records(710001)).toHaveLength(1);
    const third = await call(payload({ annotationId: 710003 }));
    expect(third.annotationStatus).toBe('exported');
    expect((await records(710003))[0]?.sequenceNumber).toBe(3);
  });

  it('changed content gets the next number; concurrent deliveries of new documents get distinct numbers', async () => {
    await call(payload({ annotationId: 710010 }));
    const fixed = await call(payload({ annotationId: 710010, documentNumber: 'INV-710010-B' }));
    expect(fixed.annotationStatus).toBe('exported');
    const numbers = (await records(710010)).map((record) => record.sequenceNumber);
    expect(numbers).toHaveLength(2);
    expect(numbers[1]).toBe((numbers[0] as number) + 1);
    const ids = Array.from({ length: 8 }, (_, i) => 710020 + i);
    const outcomes = await Promise.all(
      ids.flatMap((id) => [call(payload({ annotationId: id })), call(payload({ annotationId: id }))]),
    );
    expect(outcomes.every((outcome) => outcome.annotationStatus === 'exported')).toBe(true);
    const allocated = (await Promise.all(ids.map(records))).map((list) => {
      expect(list).toHaveLength(1);
      return list[0]!.sequenceNumber as number;
    });
    expect(new Set(allocated).size).toBe(ids.length);
    for (const [i, id] of ids.entries())
      expect(existsSync(join(sshd.inboundDir, `IDOC_${String(allocated[i]).padStart(8, '0')}_INV-${id}.pdf`))).toBe(
        true,
      );
  });

  it('without a webhook token the configured token fetches the document', async () => {
    const outcome = await call(payload({ annotationId: 710030, webhookToken: false }));
    expect(outcome.annotationStatus).toBe('exported');
    expect(documents.requests.filter((r) => r.documentId === 710030 + 200_000).map((r) => r.authorization)).toEqual([
      `Bearer ${CONFIGURED_TOKEN}`,
    ]);
  });

  it('a document Rossum no longer has fails the export naming it; the data file is not uploaded alone', async () => {
    const before = inbound();
    const outcome = await call(payload({ annotationId: 710040, storeDocument: false }));
    expect(outcome.finalStatusCode).toBe(200);
    expect(outcome.annotationStatus).toBe('failed_export');
    expect(outcome.messages[0]?.content).toMatch(
      /original document 910040 \(missing\.pdf\) could not be fetched: HTTP 404/,
    );
    expect(inbound()).toEqual(before);
    expect((await records(710040))[0]).toMatchObject({ status: 'failed', errorCode: 'DOCUMENT_UNAVAILABLE' });
  });

  it('a refused token, a 5xx and a timeout answer 503 (Rossum retries); the retry finishes the pair with the same number', async () => {
    const before = inbound();
    const body = payload({ annotationId: 710050, webhookToken: 'expired-token' });
    const refused = await call(body);
    expect(refused.finalStatusCode).toBe(503);
    expect(refused.messages[0]?.content).toMatch(
      /document 910050 \(INV-2024-00417\.pdf\) could not be fetched: HTTP 401/,
    );
    documents.fail(910050, { status: 502, times: 1 });
    const flaky = await call(payload({ annotationId: 710050 }));
    expect(flaky.finalStatusCode).toBe(503);
    documents.fail(910050, { hang: true, times: 1 });
    const slow = await call(payload({ annotationId: 710050 }));
    expect(slow.finalStatusCode).toBe(503);
    expect(slow.messages[0]?.content).toMatch(/no answer within 1500 ms/);
    expect(inbound()).toEqual(before);
    const retried = await call(payload({ annotationId: 710050 }));
    expect(retried.annotationStatus).toBe('exported');
    const [record] = await records(710050);
    expect(record?.attempts).toBe(4);
    const name = `IDOC_${String(record!.sequenceNumber).padStart(8, '0')}_INV-710050`;
    expect(inbound().filter((file) => file.startsWith(name))).toEqual([`${name}.pdf`, `${name}.xml`]);
  });

  it("Rossum's 429 on the download is waited out (its Retry-After) within the same delivery; a long one answers 503 at once", async () => {
    documents.fail(910170, { status: 429, retryAfter: '1', times: 2 });
    const requestsBefore = documents.requests.filter((r) => r.documentId === 910170).length;
    const started = Date.now();
    const throttled = await call(payload({ annotationId: 710170 }));
    expect(throttled.annotationStatus).toBe('exported');
    expect(Date.now() - started).toBeGreaterThanOrEqual(2_000);
    expect(documents.requests.filter((r) => r.documentId === 910170).length - requestsBefore).toBe(3);
    expect((await records(710170))[0]?.attempts).toBe(1);

    documents.fail(910180, { status: 429, retryAfter: '30', times: 1 });
    const before = inbound();
    const long = await call(payload({ annotationId: 710180 }));
    expect(long.finalStatusCode).toBe(503);
    expect(long.messages[0]?.content).toMatch(/document 910180 \(INV-2024-00417\.pdf\) could not be fetched: HTTP 429/);
    expect(inbound()).toEqual(before);
    expect((await call(payload({ annotationId: 710180 }))).annotationStatus).toBe('exported');
  });

  it('a download cut off mid-way is transient and leaves nothing behind', async () => {
    documents.fail(910060, { cutAfter: 100, times: 1 });
    const before = inbound();
    const cut = await call(payload({ annotationId: 710060 }));
    expect(cut.finalStatusCode).toBe(503);
    expect(cut.messages[0]?.content).toMatch(/broke off after/);
    expect(inbound()).toEqual(before);
    expect((await call(payload({ annotationId: 710060 }))).annotationStatus).toBe('exported');
  });

  it('never sends a token to a host outside rossum.allowedHosts', async () => {
    const body = JSON.parse(payload({ annotationId: 710070 })) as Record<string, unknown>;
    const document = body.document as Record<string, unknown>;
    document.content = 'https://attacker.example/api/v1/documents/910070/content';
    const outcome = await call(JSON.stringify(body));
    expect(outcome.annotationStatus).toBe('failed_export');
    expect(outcome.messages[0]?.content).toMatch(
      /Refusing to fetch the original document 910070 .* from https:\/\/attacker\.example/,
    );
    expect((await records(710070))[0]?.errorCode).toBe('DOCUMENT_NOT_TRUSTED');
  });

  it('a document over max_bytes is refused naming it; a named counter starts at its configured value', async () => {
    const outcome = await call(payload({ annotationId: 710080, queue: 3 }));
    expect(outcome.annotationStatus).toBe('failed_export');
    expect(outcome.messages[0]?.content).toMatch(
      /original document 910080 .* is \d+ bytes, more than the mapping's document\.max_bytes \(100\)/,
    );
    expect((await records(710080))[0]?.sequenceNumber).toBe(500);
  });

  it('document.required: false uploads the data file alone with a warning', async () => {
    const outcome = await call(payload({ annotationId: 710090, queue: 2, storeDocument: false }));
    expect(outcome.annotationStatus).toBe('exported');
    expect(outcome.messages.some((m) => m.type === 'warning' && /without its original document/.test(m.content))).toBe(
      true,
    );
    const [record] = await records(710090);
    expect(record?.remotePath).toBe('OPT_00000001_INV-710090.xml');
    expect(existsSync(join(sshd.inboundDir, 'OPT_00000001_INV-710090.pdf'))).toBe(false);
    expect(record?.documentUploadedAt).toBeNull();
  });

  it.each([
    { recorded: false, annotationId: 710100 },
    { recorded: true, annotationId: 710110 },
  ])(
    'after a crash between the document and the data file (document recorded: $recorded), the retry finishes the pair',
    async ({ recorded, annotationId }) => {
      const { ledger } = bridge.bridge;
      const body = payload({ annotationId });
      // What a process killed right after renaming the PDF into place leaves: its number, a claim whose
      // owner is gone (lease run out), the PDF on the server (recorded or not yet), no data file.
      const prepared = prepareExport(
        parseExportPayload(JSON.parse(body)),
        viewAnnotation(parseExportPayload(JSON.parse(body))),
        {
          mappings: loadMappings(mappingsDir),
          routes: bridge.config.routes,
          targetNames: new Set(['erp']),
        },
      );
      const sequence = prepared.sequence!;
      const number = await ledger.allocateSequence({
        counter: sequence.counter,
        key: prepared.idempotencyKey,
        start: sequence.start,
      });
      const file = sequence.render(number, new Date(prepared.renderedAt));
      const pdfPath = documentPath(file.fileName, prepared.document!);
      const crashedOwner = 'crashed-host:4242:dead';
      const claimed = await ledger.claim({
        idempotencyKey: prepared.idempotencyKey,
        annotationId,
        requestId: 'crashed',
        mappingName: prepared.mappingName,
        mappingHash: prepared.mappingHash,
        target: 'erp',
        plannedPath: file.fileName,
        sha256: createHash('sha256').update(file.bytes).digest('hex'),
        bytes: file.bytes.length,
        owner: crashedOwner,
        leaseMs: -1,
        receivedAt: prepared.renderedAt,
        sequenceNumber: number,
        documentPath: pdfPath,
      });
      expect(claimed.outcome).toBe('claimed');
      writeFileSync(join(sshd.inboundDir, pdfPath), PDF);
      if (recorded)
        await ledger.recordDocument(claimed.record.id, crashedOwner, {
          path: pdfPath,
          sha256: createHash('sha256').update(PDF).digest('hex'),
          bytes: PDF.length,
        });
      const downloadsBefore = documents.requests.filter((r) => r.documentId === annotationId + 200_000).length;

      const retried = await call(body);
      expect(retried.annotationStatus).toBe('exported');
      const [record] = await records(annotationId);
      expect(record).toMatchObject({
        status: 'uploaded',
        remotePath: file.fileName,
        sequenceNumber: number,
        documentPath: pdfPath,
      });
      expect(readFileSync(join(sshd.inboundDir, file.fileName))).toEqual(file.bytes);
      expect(readFileSync(join(sshd.inboundDir, pdfPath))).toEqual(PDF);
      const stem = file.fileName.replace(/\.xml$/, '');
      expect(inbound().filter((name) => name.startsWith(stem))).toEqual([pdfPath, file.fileName]);
      const downloads =
        documents.requests.filter((r) => r.documentId === annotationId + 200_000).length - downloadsBefore;
      // A recorded document is not even fetched again; an unrecorded one is fetched, found byte for byte, not re-uploaded.
      expect(downloads).toBe(recorded ? 0 : 1);
      const kinds = (await ledger.events(record!.id)).map((event) => event.kind);
      expect(kinds).toContain('takeover');
      expect(kinds.filter((kind) => kind === 'document_uploaded')).toHaveLength(1);
    },
  );

  it('`status` shows the data file and its document, with the sequence number', async () => {
    const configFile = join(mkdtempSync(join(tmpdir(), 'rsb-files-status-')), 'bridge.yaml');
    writeFileSync(
      configFile,
      JSON.stringify({
        server: { secret: TEST_SECRET },
        ledger: { url: bridge.config.ledger.url },
        mappingsDir,
        targets: { erp: testTargetConfig(sshd) },
        routes: [{ mapping: 'sap-idoc-xml-scan', target: 'erp' }],
      }),
    );
    const status = (...args: string[]) =>
      run(process.execPath, [cliEntry(), 'status', '--config', configFile, ...args]);
    const table = (await status('--mapping', 'sap-idoc-xml-scan')).stdout;
    expect(table).toContain('IDOC_00000001_INV-710001.xml + IDOC_00000001_INV-710001.pdf');
    const json = JSON.parse((await status('--json', '--mapping', 'sap-idoc-xml-scan')).stdout) as Array<
      Record<string, unknown>
    >;
    expect(json.find((entry) => entry.annotationId === 710001)).toMatchObject({
      file: 'IDOC_00000001_INV-710001.xml',
      document: 'IDOC_00000001_INV-710001.pdf',
      sequenceNumber: 1,
    });
  }, 60_000);

  it('never logs a document token', () => {
    const logged = bridge.log.text();
    expect(logged).toContain('exported');
    expect(logged).not.toContain(WEBHOOK_TOKEN);
    expect(logged).not.toContain(CONFIGURED_TOKEN);
    expect(logged).not.toContain('expired-token');
  });
});
