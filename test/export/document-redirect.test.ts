import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fetchDocument, type PreparedDocument } from '../../src/export/document-fetch.ts';

/**
 * A document URL that redirects (Rossum may hand the content out from storage): followed like a
 * browser's fetch, and the token goes only where the configured API lives, never to another origin.
 */
const TOKEN = 'document-redirect-token-7c1d';
const PDF = Buffer.from('%PDF-1.4\nredirected\n');

function listen(
  handler: (url: string, headers: IncomingHttpHeaders) => { status: number; location?: string },
): Promise<Server> {
  const server = createServer((request, response) => {
    const { status, location } = handler(request.url ?? '', request.headers);
    if (location) response.writeHead(status, { location }).end();
    else response.writeHead(status, { 'content-type': 'application/pdf', 'content-length': PDF.length }).end(PDF);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

const origin = (server: Server): string => `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

describe('a document download that is redirected', () => {
  let api: Server;
  let storage: Server;
  const seen: Array<{ where: string; authorization: string | undefined }> = [];

  beforeAll(async () => {
    storage = await listen((url, headers) => {
      seen.push({ where: `storage ${url}`, authorization: headers.authorization });
      return { status: 200 };
    });
    api = await listen((url, headers) => {
      seen.push({ where: `api ${url}`, authorization: headers.authorization });
      if (url === '/api/v1/documents/1/content') return { status: 302, location: '/api/v1/documents/1/file' };
      if (url === '/api/v1/documents/2/content') return { status: 302, location: `${origin(storage)}/bucket/2.pdf` };
      return { status: 200 };
    });
  });
  afterAll(() => {
    api?.close();
    storage?.close();
  });

  const documentAt = (id: number): PreparedDocument => ({
    settings: {
      name: '{stem}{ext}',
      folder: undefined,
      extension: undefined,
      required: true,
      maxBytes: 1_000_000,
      bufferBytes: 1_000_000,
    },
    url: `${origin(api)}/api/v1/documents/${id}/content`,
    label: `document ${id}`,
    originalFileName: `${id}.pdf`,
    webhookToken: TOKEN,
  });

  it('is followed within the origin, with the token', async () => {
    seen.length = 0;
    const fetched = await fetchDocument(documentAt(1), { apiRoot: `${origin(api)}/api` });
    expect(fetched.kind === 'whole' && fetched.bytes.equals(PDF)).toBe(true);
    expect(seen).toEqual([
      { where: 'api /api/v1/documents/1/content', authorization: `Bearer ${TOKEN}` },
      { where: 'api /api/v1/documents/1/file', authorization: `Bearer ${TOKEN}` },
    ]);
  });

  it('is followed to another origin without the token', async () => {
    seen.length = 0;
    const fetched = await fetchDocument(documentAt(2), { apiRoot: `${origin(api)}/api` });
    expect(fetched.kind === 'whole' && fetched.bytes.equals(PDF)).toBe(true);
    expect(seen).toEqual([
      { where: 'api /api/v1/documents/2/content', authorization: `Bearer ${TOKEN}` },
      { where: 'storage /bucket/2.pdf', authorization: undefined },
    ]);
  });
});
