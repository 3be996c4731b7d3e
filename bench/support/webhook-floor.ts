/**
 * The least any webhook receiver does per Rossum call, as a separate process for the export
 * benchmark to measure: read the body, check the HMAC with a timing-safe compare, parse the JSON,
 * answer 200. No framework, no validation, no mapping, no ledger, no upload.
 *
 *   node --import tsx bench/support/webhook-floor.ts PORT SECRET
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { createServer } from 'node:http';

const port = Number(process.argv[2]);
const secret = process.argv[3] ?? '';
const reply = JSON.stringify({ messages: [{ type: 'info', content: 'received' }] });

createServer((request, response) => {
  const chunks: Buffer[] = [];
  request.on('data', (chunk: Buffer) => chunks.push(chunk));
  request.on('end', () => {
    const body = Buffer.concat(chunks);
    const expected = Buffer.from(`sha256=${createHmac('sha256', secret).update(body).digest('hex')}`);
    const given = Buffer.from(String(request.headers['x-rossum-signature-sha256'] ?? ''));
    const signed = given.length === expected.length && timingSafeEqual(given, expected);
    const parsed = signed ? (JSON.parse(body.toString('utf8')) as { annotation?: unknown }) : undefined;
    const ok = parsed?.annotation !== undefined;
    response.writeHead(ok ? 200 : 400, {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(reply),
    });
    response.end(reply);
  });
}).listen(port, '127.0.0.1', () => process.stdout.write('ready\n'));
