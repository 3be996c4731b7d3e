import { createHash, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * Rossum's `GET /api/v1/documents/{id}/content` (the original file), beside the Rossum simulator:
 * it answers only with a token it issued, and can be told to fail a document (status, hang, cut off).
 */
export interface DocumentFault {
  status?: number;
  /** `Retry-After` sent with `status` (Rossum's 429 says how long to wait, in seconds). */
  retryAfter?: string;
  /** Never answers (the caller's timeout must fire). */
  hang?: boolean;
  /** Sends this many bytes, then destroys the connection. */
  cutAfter?: number;
  /** Sends this many bytes, then nothing more while keeping the connection open (a stalled download). */
  stallAfter?: number;
  /** Sends the body at about this rate (a slow but steady download). */
  bytesPerSecond?: number;
  /** Awaited before each chunk with the bytes sent so far: lets a test hold the body back until the bridge caught up. */
  pace?: (sentBytes: number) => Promise<void>;
  /** How many requests the fault applies to (default: all). */
  times?: number;
}

export class DocumentContentServer {
  readonly requests: Array<{ documentId: number; authorization: string | undefined }> = [];
  private readonly documents = new Map<number, StoredDocument>();
  private readonly faults = new Map<number, DocumentFault>();
  private readonly tokens = new Set<string>();

  private constructor(
    private readonly server: Server,
    readonly baseUrl: string,
  ) {}

  static async start(): Promise<DocumentContentServer> {
    let instance: DocumentContentServer | undefined;
    const server = createServer((request, response) => instance?.handle(request, response));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    instance = new DocumentContentServer(server, `http://127.0.0.1:${port}`);
    return instance;
  }

  /** Stores a document; returns the payload's `document` object and `annotation.document` URL for it. */
  addDocument(
    id: number,
    bytes: Buffer,
    originalFileName = `scan_${id}.pdf`,
    mimeType = 'application/pdf',
  ): { url: string; document: Record<string, unknown> } {
    this.documents.set(id, { bytes, mimeType });
    const url = `${this.baseUrl}/api/v1/documents/${id}`;
    return {
      url,
      document: { id, url, mime_type: mimeType, original_file_name: originalFileName, content: `${url}/content` },
    };
  }

  /**
   * A document of `size` bytes made on the fly as it is served (a 64 KiB random block repeated), so a
   * large one never sits in this process' memory. `chunked`: sent without a content-length, as a
   * server streaming it would. Returns its sha256 beside the payload parts.
   */
  addGeneratedDocument(
    id: number,
    size: number,
    options: { chunked?: boolean; originalFileName?: string } = {},
  ): { url: string; document: Record<string, unknown>; sha256: string } {
    const block = randomBytes(64 * 1024);
    const generated = { block, size };
    const hash = createHash('sha256');
    for (const chunk of generatedChunks(generated, size)) hash.update(chunk);
    this.documents.set(id, { generated, mimeType: 'application/pdf', chunked: options.chunked ?? false });
    const url = `${this.baseUrl}/api/v1/documents/${id}`;
    return {
      url,
      sha256: hash.digest('hex'),
      document: {
        id,
        url,
        mime_type: 'application/pdf',
        original_file_name: options.originalFileName ?? `scan_${id}.pdf`,
        content: `${url}/content`,
      },
    };
  }

  /** A token as Rossum puts it into the webhook payload (`rossum_authorization_token`). */
  issueToken(token: string): string {
    this.tokens.add(token);
    return token;
  }

  revokeToken(token: string): void {
    this.tokens.delete(token);
  }

  fail(id: number, fault: DocumentFault): void {
    this.faults.set(id, fault);
  }

  heal(id: number): void {
    this.faults.delete(id);
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private handle(request: IncomingMessage, response: ServerResponse): void {
    const match = /^\/api\/v1\/documents\/(\d+)\/content$/.exec(request.url ?? '');
    const documentId = Number(match?.[1] ?? Number.NaN);
    this.requests.push({ documentId, authorization: request.headers.authorization });
    if (!match || request.method !== 'GET') return void response.writeHead(404).end();
    const token = /^(?:Bearer|Token) (.+)$/.exec(request.headers.authorization ?? '')?.[1];
    if (!token || !this.tokens.has(token))
      return void response.writeHead(401, { 'content-type': 'application/json' }).end('{"detail":"Invalid token."}');
    const fault = this.faults.get(documentId);
    if (fault) {
      if (fault.times !== undefined && --fault.times <= 0) this.faults.delete(documentId);
      if (fault.hang) return;
      if (fault.status)
        return void response
          .writeHead(fault.status, fault.retryAfter === undefined ? {} : { 'retry-after': fault.retryAfter })
          .end();
    }
    const document = this.documents.get(documentId);
    if (!document)
      return void response.writeHead(404, { 'content-type': 'application/json' }).end('{"detail":"Not found."}');
    serveDocumentBody(response, document, fault);
  }
}

/**
 * Answers 200 with a stored or generated document's body, as `fault` says (cut off, stalled, slow, paced).
 * Shared with the Rossum simulator, which serves document content on its own API.
 */
export function serveDocumentBody(response: ServerResponse, document: StoredDocument, fault?: DocumentFault): void {
  const size = document.bytes?.length ?? document.generated?.size ?? 0;
  response.writeHead(200, {
    'content-type': document.mimeType,
    ...(document.chunked ? {} : { 'content-length': size }),
  });
  const limit = fault?.cutAfter ?? fault?.stallAfter ?? size;
  const chunks = document.bytes ? sliced(document.bytes, limit) : generatedChunks(document.generated!, limit);
  const body = fault?.bytesPerSecond ? throttled(chunks, fault.bytesPerSecond) : chunks;
  void send(response, fault?.pace ? paced(body, fault.pace) : body).then((sent) => {
    if (!sent) return;
    if (fault?.cutAfter !== undefined) response.destroy();
    else if (fault?.stallAfter === undefined) response.end();
  });
}

export interface StoredDocument {
  bytes?: Buffer;
  generated?: { block: Buffer; size: number };
  mimeType: string;
  chunked?: boolean;
}

/** Writes each chunk once the one before was flushed (backpressure); false when the client went away. */
async function send(response: ServerResponse, chunks: Iterable<Buffer> | AsyncIterable<Buffer>): Promise<boolean> {
  const closed = new Promise<false>((resolve) => response.once('close', () => resolve(false)));
  for await (const chunk of chunks) {
    if (response.destroyed) return false;
    const flushed = new Promise<true>((resolve) => response.write(chunk, () => resolve(true)));
    if (!(await Promise.race([flushed, closed]))) return false;
  }
  return !response.destroyed;
}

function* sliced(bytes: Buffer, limit: number): Generator<Buffer> {
  for (let at = 0; at < Math.min(limit, bytes.length); at += 64 * 1024)
    yield bytes.subarray(at, Math.min(at + 64 * 1024, limit, bytes.length));
}

function* generatedChunks(generated: { block: Buffer; size: number }, limit: number): Generator<Buffer> {
  const end = Math.min(limit, generated.size);
  for (let at = 0; at < end; at += generated.block.length)
    yield generated.block.subarray(0, Math.min(generated.block.length, end - at));
}

async function* paced(
  chunks: Iterable<Buffer> | AsyncIterable<Buffer>,
  pace: (sentBytes: number) => Promise<void>,
): AsyncGenerator<Buffer> {
  let sent = 0;
  for await (const chunk of chunks) {
    await pace(sent);
    yield chunk;
    sent += chunk.length;
  }
}

async function* throttled(chunks: Iterable<Buffer>, bytesPerSecond: number): AsyncGenerator<Buffer> {
  for (const chunk of chunks) {
    for (let at = 0; at < chunk.length; at += 16 * 1024) {
      const piece = chunk.subarray(at, at + 16 * 1024);
      await sleep((piece.length / bytesPerSecond) * 1000);
      yield piece;
    }
  }
}
