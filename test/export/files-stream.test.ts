import { createHash } from 'node:crypto';
import {
  createReadStream,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  statSync,
  watch,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseExportPayload, viewAnnotation } from '../../src/annotation/index.ts';
import { documentPath, prepareExport } from '../../src/export/index.ts';
import { loadMappings } from '../../src/mapping/index.ts';
import { callHook as deliver } from '../../src/rossum/hook-call.ts';
import { fixture, repoRoot, startTestBridge, TEST_SECRET, type TestBridge } from '../support/bridge.ts';
import { DocumentContentServer } from '../support/document-content.ts';
import { startSshd, type SshdInstance } from '../support/sshd.ts';

/*
 * Documents larger than document.buffer_bytes go from Rossum's answer straight into the upload's temp
 * name: never held whole, the size limit enforced while they pass, the hash computed on the way.
 */

const TOKEN = 'webhook-token-stream-0123456789';
const BUFFER_BYTES = 64 * 1024;
const CAPPED_MAX_BYTES = 3_000_000;
/** Many times the buffer threshold and the pacing window, small enough for a second or two on loopback. */
const LARGE_BYTES = 8 * 1024 * 1024;
/** How far Rossum may run ahead of what the temp file on the server holds. */
const WINDOW_BYTES = 1024 * 1024;
const TEMP_NAME = /^\..*\.[0-9a-f]{8}\.part$/;

let sshd: SshdInstance;
let documents: DocumentContentServer;
let bridge: TestBridge;
let mappingsDir: string;

function writeMappings(): string {
  const dir = mkdtempSync(join(tmpdir(), 'rsb-stream-mappings-'));
  const shipped = readFileSync(join(repoRoot, 'mappings/sap-idoc-xml-scan.yaml'), 'utf8');
  const base = shipped.slice(0, shipped.indexOf('\ntests:'));
  const variant = (name: string, maxBytes: number): string =>
    base
      .replace('  max_bytes: 20000000', `  max_bytes: ${maxBytes}\n  buffer_bytes: ${BUFFER_BYTES}`)
      .replace('counter: sap-idoc', `counter: ${name}`)
      .replace('IDOC_{seq:8}', `${name.toUpperCase()}_{seq:8}`);
  writeFileSync(join(dir, 'scan-stream.yaml'), variant('stream', 200_000_000));
  writeFileSync(join(dir, 'scan-capped.yaml'), variant('capped', CAPPED_MAX_BYTES));
  return dir;
}

beforeAll(async () => {
  sshd = await startSshd({ baseDir: mkdtempSync(join(tmpdir(), 'rsb-stream-sshd-')) });
  documents = await DocumentContentServer.start();
  documents.issueToken(TOKEN);
  mappingsDir = writeMappings();
  bridge = await startTestBridge({
    sshd,
    mappingsDir,
    routes: [
      { mapping: 'scan-capped', target: 'erp', queues: [5], values: {} },
      { mapping: 'scan-stream', target: 'erp', values: {} },
    ],
    rossum: { allowedHosts: ['127.0.0.1'], token: 'configured-token-unused-42', timeoutMs: 1500 },
  });
}, 60_000);

afterAll(async () => {
  await bridge?.close();
  await documents?.close();
  await sshd?.stop();
});

function payload(annotationId: number, document: Record<string, unknown>, url: string, queue?: number): string {
  const body = fixture('export-invoice.json');
  const annotation = body.annotation as Record<string, unknown>;
  annotation.id = annotationId;
  annotation.document = url;
  if (queue !== undefined) annotation.queue = `https://example.rossum.app/api/v1/queues/${queue}`;
  body.document = { ...(body.document as Record<string, unknown>), ...document };
  body.rossum_authorization_token = TOKEN;
  parseExportPayload(body);
  return JSON.stringify(body);
}

/** A generated document of `size` bytes (served lazily) and the export payload that names it. */
function generated(annotationId: number, size: number, options: { chunked?: boolean; queue?: number } = {}) {
  const documentId = annotationId + 300_000;
  const { url, document, sha256 } = documents.addGeneratedDocument(documentId, size, options);
  return { documentId, sha256, body: payload(annotationId, document, url, options.queue) };
}

const call = (body: string) => deliver({ url: bridge.url, body, secret: TEST_SECRET, retryCount: 0 });
const inbound = (): string[] => (existsSync(sshd.inboundDir) ? readdirSync(sshd.inboundDir).sort() : []);
const records = (annotationId: number) => bridge.bridge.ledger.list({ annotationId });

/** Size of the upload's temp file for a name starting with `prefix` (0 while there is none). */
function tempBytes(prefix: string): number {
  const temp = inbound().find((name) => TEMP_NAME.test(name) && name.startsWith(`.${prefix}`));
  if (!temp) return 0;
  try {
    return statSync(join(sshd.inboundDir, temp)).size;
  } catch {
    return 0;
  }
}

async function sha256Of(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** Every name that appeared in the inbound folder while `during` ran (inotify), to see temp files come and go. */
async function namesSeenDuring<T>(during: () => Promise<T>): Promise<{ result: T; seen: Set<string> }> {
  const seen = new Set<string>();
  const watcher = watch(sshd.inboundDir, (_event, name) => {
    if (name) seen.add(name.toString());
  });
  try {
    return { result: await during(), seen };
  } finally {
    watcher.close();
  }
}

describe('the original document streamed from Rossum into the upload (real sshd)', () => {
  it('a document far over document.buffer_bytes is never held whole: Rossum sends more only as the upload writes it', async () => {
    const { documentId, sha256, body } = generated(720001, LARGE_BYTES);
    // Rossum holds back each next chunk until the temp file on the server has all but WINDOW_BYTES of what
    // was sent. A bridge that held the document whole before uploading would never get past the first
    // WINDOW_BYTES: the download would stall and the export fail.
    let onServer = 0;
    let mostAhead = 0;
    documents.fail(documentId, {
      pace: async (sent) => {
        const deadline = Date.now() + 10_000;
        while (onServer < sent - WINDOW_BYTES && Date.now() < deadline) {
          await sleep(2);
          onServer = Math.max(onServer, tempBytes('STREAM_'));
        }
        mostAhead = Math.max(mostAhead, sent - onServer);
      },
    });
    const outcome = await call(body);
    expect(outcome.messages.map((message) => message.content).join('\n')).not.toMatch(/could not be fetched/);
    expect(outcome.annotationStatus).toBe('exported');
    expect(mostAhead).toBeLessThanOrEqual(WINDOW_BYTES + 64 * 1024);
    const [record] = await records(720001);
    const pdf = record!.documentPath as string;
    expect(pdf).toMatch(/^STREAM_\d{8}_INV-2024-00417\.pdf$/);
    // Byte for byte on the server, and the ledger holds the hash computed on the way.
    expect(await sha256Of(join(sshd.inboundDir, pdf))).toBe(sha256);
    expect(record).toMatchObject({ status: 'uploaded', documentSha256: sha256, documentBytes: LARGE_BYTES });
    expect(documents.requests.filter((r) => r.documentId === documentId)).toHaveLength(1);
    const kinds = (await bridge.bridge.ledger.events(record!.id)).map((event) => event.kind);
    expect(kinds.indexOf('document_uploaded')).toBeGreaterThan(-1);
    expect(kinds.indexOf('document_uploaded')).toBeLessThan(kinds.indexOf('uploaded'));
  }, 60_000);

  it('over max_bytes while streaming (no content-length): aborted naming the document and the limit, no temp file left', async () => {
    const { documentId, body } = generated(720010, 10 * 1024 * 1024, { chunked: true, queue: 5 });
    const before = inbound();
    const { result: outcome, seen } = await namesSeenDuring(() => call(body));
    expect(outcome.annotationStatus).toBe('failed_export');
    expect(outcome.messages[0]?.content).toContain(
      `The original document ${documentId} (scan_${documentId}.pdf) is over ${CAPPED_MAX_BYTES} bytes, more than the mapping's document.max_bytes (${CAPPED_MAX_BYTES})`,
    );
    expect((await records(720010))[0]).toMatchObject({ status: 'failed', errorCode: 'DOCUMENT_TOO_LARGE' });
    // The temp file was written (streamed, not refused up front) and is gone; the data file never appeared.
    expect([...seen].some((name) => TEMP_NAME.test(name) && name.includes('CAPPED_'))).toBe(true);
    expect(inbound()).toEqual(before);
  });

  it('a streamed download cut off or stalled answers 503 and leaves no temp file; the retry finishes the pair', async () => {
    const size = 8 * 1024 * 1024;
    const { documentId, sha256, body } = generated(720020, size);
    const before = inbound();
    documents.fail(documentId, { cutAfter: 1024 * 1024, times: 1 });
    const { result: cut, seen } = await namesSeenDuring(() => call(body));
    expect(cut.finalStatusCode).toBe(503);
    expect(cut.messages[0]?.content).toMatch(
      new RegExp(`original document ${documentId} .* could not be fetched: the download broke off after \\d+ bytes`),
    );
    expect([...seen].some((name) => TEMP_NAME.test(name))).toBe(true);
    expect(inbound()).toEqual(before);

    documents.fail(documentId, { stallAfter: 1024 * 1024, times: 1 });
    const stalled = await call(body);
    expect(stalled.finalStatusCode).toBe(503);
    expect(stalled.messages[0]?.content).toMatch(/the download stalled after \d+ bytes \(no data within 1500 ms\)/);
    expect(inbound()).toEqual(before);

    const retried = await call(body);
    expect(retried.annotationStatus).toBe('exported');
    const [record] = await records(720020);
    expect(record?.attempts).toBe(3);
    const pdf = record!.documentPath as string;
    expect(await sha256Of(join(sshd.inboundDir, pdf))).toBe(sha256);
    expect(inbound().filter((name) => !before.includes(name))).toEqual([pdf, record!.remotePath]);
  });

  it('a slow but steady download outlasts the timeout (an idle timeout, not a total one)', async () => {
    const size = 2 * 1024 * 1024;
    const { documentId, sha256, body } = generated(720030, size);
    documents.fail(documentId, { bytesPerSecond: 1024 * 1024 });
    const started = Date.now();
    const outcome = await call(body);
    expect(outcome.annotationStatus).toBe('exported');
    expect(Date.now() - started).toBeGreaterThan(1500);
    const [record] = await records(720030);
    expect(await sha256Of(join(sshd.inboundDir, record!.documentPath as string))).toBe(sha256);
  });

  it('after a crash between a streamed document and the data file, the retry finds it byte for byte and finishes the pair', async () => {
    const annotationId = 720040;
    const size = 1024 * 1024;
    const { documentId, body } = generated(annotationId, size);
    const { ledger } = bridge.bridge;
    const prepared = prepareExport(
      parseExportPayload(JSON.parse(body)),
      viewAnnotation(parseExportPayload(JSON.parse(body))),
      { mappings: loadMappings(mappingsDir), routes: bridge.config.routes, targetNames: new Set(['erp']) },
    );
    const sequence = prepared.sequence!;
    const number = await ledger.allocateSequence({
      counter: sequence.counter,
      key: prepared.idempotencyKey,
      start: sequence.start,
    });
    const file = sequence.render(number, new Date(prepared.renderedAt));
    const pdfPath = documentPath(file.fileName, prepared.document!);
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
      owner: 'crashed-host:4242:dead',
      leaseMs: -1,
      receivedAt: prepared.renderedAt,
      sequenceNumber: number,
      documentPath: pdfPath,
    });
    expect(claimed.outcome).toBe('claimed');
    // What the killed attempt left: the document renamed into place (unrecorded) and a temp of it.
    const served = await fetch(`${documents.baseUrl}/api/v1/documents/${documentId}/content`, {
      headers: { Authorization: `Bearer ${TOKEN}` },
    });
    writeFileSync(join(sshd.inboundDir, pdfPath), Buffer.from(await served.arrayBuffer()));
    writeFileSync(join(sshd.inboundDir, `.${pdfPath}.0badc0de.part`), 'partial');

    const retried = await call(body);
    expect(retried.annotationStatus).toBe('exported');
    const [record] = await records(annotationId);
    expect(record).toMatchObject({ status: 'uploaded', remotePath: file.fileName, documentPath: pdfPath });
    expect(record?.documentBytes).toBe(size);
    const stem = file.fileName.replace(/\.xml$/, '');
    expect(inbound().filter((name) => name.includes(stem))).toEqual([pdfPath, file.fileName]);
    const kinds = (await ledger.events(record!.id)).map((event) => event.kind);
    expect(kinds).toContain('takeover');
    expect(bridge.log.text()).toContain('an earlier attempt had already uploaded the document');
  });
});
