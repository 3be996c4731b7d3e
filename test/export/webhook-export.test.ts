import { createHmac } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseExportPayload, viewAnnotation } from '../../src/annotation/index.ts';
import type { SqliteLedger } from '../../src/ledger/index.ts';
import { loadMappings } from '../../src/mapping/index.ts';
import { callHook as deliver } from '../../src/rossum/hook-call.ts';
import { FAST_HOOK_TIMINGS, RossumSimulator } from '../support/rossum-simulator.ts';
import { startSshd, type SshdInstance } from '../support/sshd.ts';
import { fixture, repoRoot, startTestBridge, TEST_SECRET, type TestBridge } from '../support/bridge.ts';

let sshd: SshdInstance;
let simulator: RossumSimulator;
let bridge: TestBridge;
const mappings = loadMappings(join(repoRoot, 'mappings'));

function hook(overrides: Record<string, unknown> = {}) {
  return { hookUrl: bridge.url, secret: TEST_SECRET, ...FAST_HOOK_TIMINGS, ...overrides };
}

function inboundFiles(): string[] {
  return existsSync(sshd.inboundDir) ? readdirSync(sshd.inboundDir).sort() : [];
}

/** Sets a header datapoint's value by schema_id in a fixture payload. */
function setField(payload: Record<string, unknown>, schemaId: string, value: string): number {
  let found: number | undefined;
  const walk = (node: {
    schema_id: string;
    id: number;
    category: string;
    children?: unknown[];
    content?: { value: string };
  }): void => {
    if (node.category === 'datapoint' && node.schema_id === schemaId && node.content) {
      node.content.value = value;
      found ??= node.id;
    }
    for (const child of (node.children ?? []) as Array<typeof node>) walk(child);
  };
  for (const section of (payload.annotation as { content: Array<Parameters<typeof walk>[0]> }).content) walk(section);
  if (found === undefined) throw new Error(`fixture has no ${schemaId}`);
  return found;
}

function withAnnotationId(payload: Record<string, unknown>, id: number): Record<string, unknown> {
  (payload.annotation as { id: number }).id = id;
  return payload;
}

function sign(body: string, secret = TEST_SECRET): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}

async function post(
  body: string,
  headers: Record<string, string>,
): Promise<{ status: number; json: Record<string, unknown> }> {
  const response = await fetch(bridge.url, {
    method: 'POST',
    body,
    headers: { 'content-type': 'application/json', ...headers },
  });
  return { status: response.status, json: (await response.json()) as Record<string, unknown> };
}

beforeAll(async () => {
  sshd = await startSshd({ baseDir: mkdtempSync(join(tmpdir(), 'rsb-e2e-sshd-')) });
  simulator = await RossumSimulator.start();
  bridge = await startTestBridge({ sshd });
});

afterAll(async () => {
  await bridge?.close();
  await simulator?.close();
  await sshd?.stop();
});

describe('export webhook end to end (real sshd, simulated Rossum)', () => {
  it('uploads the rendered file byte for byte and Rossum marks the annotation exported with an info message', async () => {
    const body = JSON.stringify(withAnnotationId(fixture('export-invoice.json'), 500001));
    const outcome = await deliver({ url: bridge.url, body, secret: TEST_SECRET });
    expect(outcome.annotationStatus).toBe('exported');
    expect(outcome.attempts).toHaveLength(1);
    expect(outcome.messages[0]?.type).toBe('info');

    const [record] = await bridge.bridge.ledger.list({ annotationId: 500001 });
    expect(record?.status).toBe('uploaded');
    expect(outcome.messages[0]?.content).toContain(record!.remotePath!);
    const expected = mappings.get('generic-xml')!.render(viewAnnotation(parseExportPayload(JSON.parse(body))));
    expect(record!.remotePath).toBe(expected.fileName);
    expect(readFileSync(join(sshd.inboundDir, record!.remotePath!))).toEqual(expected.bytes);
  });

  it('a missing required field fails the export at once (no retries), pointing at the datapoint', async () => {
    const payload = withAnnotationId(fixture('export-invoice.json'), 500002);
    const datapointId = setField(payload, 'document_id', '');
    const { outcome, annotation } = await simulator.exportAnnotation(payload, hook());
    expect(annotation.status).toBe('failed_export');
    expect(outcome.attempts).toHaveLength(1);
    expect(outcome.finalStatusCode).toBe(200);
    expect(annotation.messages[0]).toMatchObject({ type: 'error', id: datapointId });
    expect(await bridge.bridge.ledger.list({ annotationId: 500002 })).toEqual([]);
  });

  it('a duplicate delivery uploads nothing and returns the first answer', async () => {
    const body = JSON.stringify(withAnnotationId(fixture('export-invoice.json'), 500003));
    const before = inboundFiles().length;
    const first = await deliver({ url: bridge.url, body, secret: TEST_SECRET, retryCount: 0 });
    const second = await deliver({ url: bridge.url, body, secret: TEST_SECRET, retryCount: 0 });
    expect(first.annotationStatus).toBe('exported');
    expect(second.messages).toEqual(first.messages);
    expect(inboundFiles().length).toBe(before + 1);
  });

  it('concurrent duplicates with their own request_ids: one file, and every request_id recorded against the one export', async () => {
    const payload = withAnnotationId(fixture('export-invoice.json'), 500005) as { request_id: string };
    const requestIds = Array.from({ length: 12 }, (_, i) => `dup-request-${i}`);
    const before = inboundFiles().length;
    const outcomes = await Promise.all(
      requestIds.map((requestId) =>
        deliver({
          url: bridge.url,
          body: JSON.stringify({ ...payload, request_id: requestId }),
          secret: TEST_SECRET,
          retryCount: 0,
        }),
      ),
    );
    expect(outcomes.every((outcome) => outcome.annotationStatus === 'exported')).toBe(true);
    expect(inboundFiles().length).toBe(before + 1);
    const records = await bridge.bridge.ledger.list({ annotationId: 500005 });
    expect(records).toHaveLength(1);
    expect([...records[0]!.requestIds].sort()).toEqual([...requestIds].sort());
    const events = await bridge.bridge.ledger.events(records[0]!.id);
    expect(events.filter((event) => event.kind === 'claimed')).toHaveLength(1);
    expect(events.filter((event) => event.kind === 'uploaded')).toHaveLength(1);
  });

  it('concurrent duplicate deliveries upload exactly one file and all get the same answer', async () => {
    const payload = withAnnotationId(fixture('export-invoice.json'), 500004);
    const body = JSON.stringify(payload);
    const before = inboundFiles().length;
    const outcomes = await Promise.all(
      Array.from({ length: 12 }, () => deliver({ url: bridge.url, body, secret: TEST_SECRET, retryCount: 0 })),
    );
    expect(outcomes.every((outcome) => outcome.annotationStatus === 'exported')).toBe(true);
    expect(new Set(outcomes.map((outcome) => JSON.stringify(outcome.messages))).size).toBe(1);
    expect(inboundFiles().length).toBe(before + 1);
    const records = await bridge.bridge.ledger.list({ annotationId: 500004 });
    expect(records).toHaveLength(1);
    // All 12 carried the same request_id: it is recorded once, against the one export, which was claimed and uploaded once.
    expect(records[0]!.requestIds).toEqual([payload.request_id]);
    const events = await bridge.bridge.ledger.events(records[0]!.id);
    expect(events.filter((event) => event.kind === 'claimed')).toHaveLength(1);
    expect(events.filter((event) => event.kind === 'uploaded')).toHaveLength(1);
    expect(events.map((event) => event.kind)).not.toContain('takeover');
  });

  it('a re-export after the operator fixed the data produces a new, traceable file', async () => {
    const payload = withAnnotationId(fixture('export-invoice.json'), 500005);
    await simulator.exportAnnotation(payload, hook());
    setField(payload, 'order_id', 'PO-FIXED-1');
    const { annotation } = await simulator.exportAnnotation(payload, hook());
    expect(annotation.status).toBe('exported');
    const records = await bridge.bridge.ledger.list({ annotationId: 500005 });
    expect(records).toHaveLength(2);
    expect(records[0]!.sha256).not.toBe(records[1]!.sha256);
    expect(records[0]!.remotePath).not.toBe(records[1]!.remotePath);
    for (const record of records) expect(existsSync(join(sshd.inboundDir, record.remotePath!))).toBe(true);
  });

  it('re-sending the exact data the ERP rejected is refused with the reason, not replayed as "Exported"', async () => {
    const body = JSON.stringify(withAnnotationId(fixture('export-invoice.json'), 500006));
    const first = await deliver({ url: bridge.url, body, secret: TEST_SECRET, retryCount: 0 });
    expect(first.annotationStatus).toBe('exported');
    const [record] = await bridge.bridge.ledger.list({ annotationId: 500006 });
    // What the acks process records when the ERP's .err arrives (see test/ack for that path itself).
    (bridge.bridge.ledger as SqliteLedger).db
      .prepare("UPDATE exports SET ack_state = 'rejected', ack_file = ? WHERE id = ?")
      .run('INV_500006.err', record!.id);
    const again = await deliver({ url: bridge.url, body, secret: TEST_SECRET, retryCount: 0 });
    expect(again.annotationStatus).toBe('failed_export');
    expect(again.messages[0]?.content).toMatch(
      /The ERP rejected this exact file .*INV_500006\.err.*Correct the data in Rossum/,
    );
    expect(await bridge.bridge.ledger.list({ annotationId: 500006 })).toHaveLength(1);
  });

  it('document data cannot steer the file outside the target folder', async () => {
    const attempts = [
      '../../../../tmp/escape',
      '/etc/passwd',
      'a/../../b',
      'x\u0000y',
      'CON',
      '..',
      'sub\\..\\..\\z',
      '\u0007bell\r\n',
    ];
    let id = 500100;
    for (const documentId of attempts) {
      const payload = withAnnotationId(fixture('export-invoice.json'), ++id);
      setField(payload, 'document_id', documentId);
      const { annotation } = await simulator.exportAnnotation(payload, hook());
      expect(annotation.status, documentId).toBe('exported');
      const [record] = await bridge.bridge.ledger.list({ annotationId: id });
      const remote = record!.remotePath!;
      expect(remote.startsWith('/') || remote.split(/[\\/]/).includes('..'), remote).toBe(false);
      expect(existsSync(join(sshd.inboundDir, remote)), remote).toBe(true);
    }
    expect(existsSync('/tmp/escape.xml')).toBe(false);
    expect(readdirSync(sshd.root).sort()).toEqual(
      readdirSync(sshd.root)
        .filter((name) => !name.startsWith('escape'))
        .sort(),
    );
  });

  it('non-export events get 200 {} and export nothing', async () => {
    const body = JSON.stringify({ ...fixture('export-invoice.json'), event: 'annotation_status', action: 'changed' });
    const reply = await post(body, { 'X-Rossum-Signature-SHA256': sign(body) });
    expect(reply).toEqual({ status: 200, json: {} });
  });
});

describe('webhook input checks', () => {
  const body = JSON.stringify(fixture('export-no-line-items.json'));

  it.each([
    ['missing signature', {}, /Missing X-Rossum-Signature-SHA256/],
    ['wrong prefix', { 'X-Rossum-Signature-SHA256': sign(body).replace('sha256=', 'sha1=') }, /must look like sha256=/],
    ['wrong length', { 'X-Rossum-Signature-SHA256': sign(body).slice(0, 40) }, /wrong length/],
    ['wrong secret', { 'X-Rossum-Signature-SHA256': sign(body, 'another-secret-0123456789') }, /does not match/],
    ['signature over a different body', { 'X-Rossum-Signature-SHA256': sign(`${body} `) }, /does not match/],
    [
      'sha1 only while sha1 is off',
      { 'X-Elis-Signature': `sha1=${createHmac('sha1', TEST_SECRET).update(body).digest('hex')}` },
      /sha1 signatures are disabled/,
    ],
  ])('%s → 401 with the reason', async (_name, headers, reason) => {
    const reply = await post(body, headers as Record<string, string>);
    expect(reply.status).toBe(401);
    expect(String(reply.json.error)).toMatch(reason);
  });

  it('malformed JSON → 400 naming the problem', async () => {
    const bad = '{"event": "annotation_content", "action": "export", ';
    const reply = await post(bad, { 'X-Rossum-Signature-SHA256': sign(bad) });
    expect(reply.status).toBe(400);
    expect(String(reply.json.error)).toMatch(/Malformed JSON/);
  });

  it('an export without annotation.content → 400 naming the path', async () => {
    const payload = fixture('export-no-line-items.json');
    delete (payload.annotation as Record<string, unknown>).content;
    const text = JSON.stringify(payload);
    const reply = await post(text, { 'X-Rossum-Signature-SHA256': sign(text) });
    expect(reply.status).toBe(400);
    expect(String(reply.json.error)).toContain('annotation.content');
  });

  it('a body over the limit → 413, and the server keeps serving', async () => {
    const huge = JSON.stringify({ padding: 'x'.repeat(bridge.config.server.bodyLimitBytes + 10) });
    const reply = await post(huge, { 'X-Rossum-Signature-SHA256': sign(huge) });
    expect(reply.status).toBe(413);
    expect(String(reply.json.error)).toMatch(/larger than the configured limit/);
    const health = await fetch(bridge.url.replace('/webhooks/rossum', '/healthz'));
    expect(health.status).toBe(200);
  });

  it('a wrong content type → 415', async () => {
    const response = await fetch(bridge.url, {
      method: 'POST',
      body: 'a=b',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    expect(response.status).toBe(415);
  });
});

describe('transient failures and deadlines', () => {
  it('SFTP down → 503 with a message naming the host; Rossum retries and the export succeeds once it is back', async () => {
    const payload = withAnnotationId(fixture('export-invoice.json'), 500200);
    await sshd.stop();
    let restarted = false;
    const { outcome, annotation } = await simulator.exportAnnotation(payload, {
      ...hook({ retryDelayS: 0.3 }),
      onAttempt: (record: { attempt: number }) => {
        if (record.attempt === 1 && !restarted) {
          restarted = true;
          void sshd.restart();
        }
      },
    });
    expect(outcome.attempts[0]?.resultStatusCode).toBe(503);
    expect(outcome.attempts[0]?.bodyExcerpt).toContain(`127.0.0.1:${sshd.port}`);
    expect(annotation.status).toBe('exported');
  });

  it('SFTP down for all of Rossum’s attempts → failed_export showing our message', async () => {
    const payload = withAnnotationId(fixture('export-invoice.json'), 500201);
    await sshd.stop();
    try {
      const { outcome, annotation } = await simulator.exportAnnotation(payload, hook());
      expect(outcome.attempts).toHaveLength(5);
      expect(outcome.attempts.every((attempt) => attempt.resultStatusCode === 503)).toBe(true);
      expect(annotation.status).toBe('failed_export');
      expect(annotation.messages[0]?.content).toContain(`127.0.0.1:${sshd.port}`);
    } finally {
      await sshd.restart();
    }
  });

  it('a host key that does not match the pin refuses the connection, naming both fingerprints', async () => {
    const wrongPin = 'SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA';
    const pinned = await startTestBridge({ sshd, target: { hostKey: wrongPin } });
    try {
      const body = JSON.stringify(withAnnotationId(fixture('export-invoice.json'), 500300));
      const outcome = await deliver({ url: pinned.url, body, secret: TEST_SECRET, retryCount: 0 });
      expect(outcome.finalStatusCode).toBe(503);
      const message = outcome.messages[0]?.content ?? '';
      expect(message).toContain(wrongPin);
      expect(message).toContain(sshd.hostKeyFingerprint);
    } finally {
      await pinned.close();
    }
  });

  it('answers Rossum before its deadline even when the SFTP server accepts TCP and then says nothing', async () => {
    const sockets: Socket[] = [];
    const blackhole: Server = createServer((socket) => void sockets.push(socket));
    await new Promise<void>((resolve) => blackhole.listen(0, '127.0.0.1', resolve));
    const port = (blackhole.address() as { port: number }).port;
    const stalled = await startTestBridge({
      sshd,
      server: { deadlineMs: 1500 },
      target: { url: `sftp://nobody@127.0.0.1:${port}/inbound`, pool: { size: 1, connectTimeoutMs: 20_000 } },
    });
    try {
      const body = JSON.stringify(withAnnotationId(fixture('export-invoice.json'), 500400));
      // Rossum's own timeout set to 5 s: an answer after it would show up as a timeout, not a 503.
      const outcome = await deliver({ url: stalled.url, body, secret: TEST_SECRET, retryCount: 0, timeoutS: 5 });
      expect(outcome.attempts[0]?.error).toBeUndefined();
      expect(outcome.finalStatusCode).toBe(503);
      expect(outcome.messages[0]?.content).toMatch(/did not finish within (the )?2 s/);
    } finally {
      for (const socket of sockets) socket.destroy();
      blackhole.close();
      await stalled.close();
    }
  });
});

describe('operations endpoints', () => {
  it('healthz (targets in its verbose detail), readyz (the bridge itself: ledger) and Prometheus metrics', async () => {
    const base = bridge.url.replace('/webhooks/rossum', '');
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    const ready = await fetch(`${base}/readyz`);
    const report = (await ready.json()) as { ready: boolean; checks: Record<string, { ok: boolean }> };
    expect(ready.status).toBe(200);
    expect(report.checks).toEqual({ ledger: { ok: true } });
    const health = await fetch(`${base}/healthz?verbose`);
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({ status: 'ok', targets: { erp: { ok: true } } });
    const metrics = await (await fetch(`${base}/metrics`)).text();
    expect(metrics).toMatch(/bridge_exports_total\{outcome="exported",target="erp"\} \d+/);
    expect(metrics).toContain('bridge_export_duration_seconds_bucket');
    expect(metrics).toMatch(/bridge_sftp_pool_connections\{target="erp",state="open"\}/);
    expect(metrics).toContain('bridge_transfer_queue_depth');
  });

  it('an unreachable target keeps the pod ready (Rossum gets the 503 of the bridge naming it) and is reported by healthz and metrics', async () => {
    const base = bridge.url.replace('/webhooks/rossum', '');
    await sshd.stop();
    try {
      const ready = await fetch(`${base}/readyz`);
      expect(ready.status).toBe(200);
      const health = await fetch(`${base}/healthz?verbose`);
      expect(health.status).toBe(200);
      const detail = (await health.json()) as { targets: Record<string, { ok: boolean; error?: string }> };
      expect(detail.targets.erp?.ok).toBe(false);
      expect(detail.targets.erp?.error).toMatch(/refused|connect/i);
      expect(await (await fetch(`${base}/metrics`)).text()).toMatch(/^bridge_target_up\{target="erp"\} 0$/m);
    } finally {
      await sshd.restart();
    }
    expect(await (await fetch(`${base}/metrics`)).text()).toMatch(/^bridge_target_up\{target="erp"\} 1$/m);
  });

  it('never logs the hook secret, the private key or the Rossum token', () => {
    const text = bridge.log.text();
    expect(text.length).toBeGreaterThan(0);
    expect(text).not.toContain(TEST_SECRET);
    expect(text).not.toContain(sshd.privateKey.split('\n')[1]!);
    expect(text).not.toContain('1024873d424a007d8eebff7b3684d283abdf7d0d');
  });
});
