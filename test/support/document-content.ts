import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * Rossum's `GET /api/v1/documents/{id}/content` (the original file), beside the Rossum simulator:
 * it answers only with a token it issued, and can be told to fail a document (status, hang, cut off).
 */
export interface DocumentFault {
  status?: number;
  /** Never answers (the caller's timeout must fire). */
  hang?: boolean;
  /** Sends this many bytes, then destroys the connection. */
  cutAfter?: number;
  /** How many requests the fault applies to (default: all). */
  times?: number;
}

export class DocumentContentServer {
  readonly requests: Array<{ documentId: number; authorization: string | undefined }> = [];
  private readonly documents = new Map<number, { bytes: Buffer; mimeType: string }>();
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
      if (fault.status) return void response.writeHead(fault.status).end();
    }
    const document = this.documents.get(documentId);
    if (!document)
      return void response.writeHead(404, { 'content-type': 'application/json' }).end('{"detail":"Not found."}');
    response.writeHead(200, { 'content-type': document.mimeType, 'content-length': document.bytes.length });
    if (fault?.cutAfter !== undefined) {
      response.write(document.bytes.subarray(0, fault.cutAfter), () => response.destroy());
      return;
    }
    response.end(document.bytes);
  }
}
