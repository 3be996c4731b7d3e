import { createHmac } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBridge, type RunningBridge } from '../../src/process/index.ts';
import { bridgeConfigSchema } from '../../src/config/index.ts';
import { HOLD_CEILING_MS } from '../../src/ack/index.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { CapturedLog, fixture, repoRoot, TEST_SECRET, testTargetConfig } from '../support/bridge.ts';
import { startSshd, type SshdInstance } from '../support/sshd.ts';

let sshd: SshdInstance;
let dir: string;
const running: RunningBridge[] = [];

async function start(server: Record<string, unknown>, log = new CapturedLog()): Promise<RunningBridge> {
  const config = bridgeConfigSchema.parse({
    server: { host: '127.0.0.1', port: 0, secret: TEST_SECRET, ...server },
    ledger: { url: `sqlite:${join(mkdtempSync(join(dir, 'ledger-')), 'ledger.db')}` },
    mappingsDir: join(repoRoot, 'mappings'),
    targets: { erp: testTargetConfig(sshd), 'erp-out': testTargetConfig(sshd, { url: sshd.url('acks') }) },
    routes: [{ mapping: 'generic-xml', target: 'erp' }],
    acks: {
      targets: { erp: { folder: '.', readFrom: 'erp-out' } },
      byMapping: { 'generic-xml': { convention: 'companion', hold: { maxWaitMs: 290_000, retryAfterS: 1 } } },
    },
  });
  const bridge = await startBridge(config, { logger: createLogger({ level: 'debug', destination: log.stream }) });
  running.push(bridge);
  return bridge;
}

async function exportHeld(
  bridge: RunningBridge,
  annotationId: number,
  headers: Record<string, string> = {},
): Promise<Response> {
  const payload = fixture('export-invoice.json');
  (payload.annotation as { id: number }).id = annotationId;
  const body = JSON.stringify(payload);
  const signature = `sha256=${createHmac('sha256', TEST_SECRET).update(body).digest('hex')}`;
  return fetch(bridge.url, {
    method: 'POST',
    body,
    headers: { 'content-type': 'application/json', 'x-rossum-signature-sha256': signature, ...headers },
  });
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'rsb-held-location-'));
  sshd = await startSshd({ baseDir: join(dir, 'sshd') });
});

afterAll(async () => {
  for (const bridge of running) await bridge.close();
  await sshd?.stop();
});

describe('the Location Rossum polls for a held export', () => {
  it('is server.publicUrl, whatever Host and X-Forwarded-* headers the call carries', async () => {
    const bridge = await start({ publicUrl: 'https://bridge.example.com/' });
    const response = await exportHeld(bridge, 530_001, {
      'x-forwarded-host': 'evil.example',
      'x-forwarded-proto': 'http',
    });
    expect(response.status).toBe(202);
    expect(response.headers.get('location')).toMatch(
      /^https:\/\/bridge\.example\.com\/webhooks\/rossum\/held\/\d+\/[\w-]+$/,
    );
  });

  it('with server.trustProxy comes from X-Forwarded-Proto / X-Forwarded-Host', async () => {
    const bridge = await start({ trustProxy: true });
    const response = await exportHeld(bridge, 530_002, {
      'x-forwarded-host': 'public.example',
      'x-forwarded-proto': 'https',
    });
    expect(response.status).toBe(202);
    expect(response.headers.get('location')).toMatch(/^https:\/\/public\.example\/webhooks\/rossum\/held\//);
  });

  it('without either, X-Forwarded-* are ignored, the Host header is used and serve warns at start-up', async () => {
    const log = new CapturedLog();
    const bridge = await start({}, log);
    expect(log.text()).toMatch(/unsigned Host header: set server\.publicUrl/);
    const response = await exportHeld(bridge, 530_003, {
      'x-forwarded-host': 'evil.example',
      'x-forwarded-proto': 'https',
    });
    expect(response.status).toBe(202);
    expect(response.headers.get('location')).toMatch(
      new RegExp(`^http://127\\.0\\.0\\.1:${bridge.port}/webhooks/rossum/held/`),
    );
  });

  it("the wait counts from Rossum's call and ends one poll interval inside Rossum's 300 s, even when configured longer", async () => {
    const bridge = await start({ publicUrl: 'https://bridge.example.com' });
    const before = Date.now();
    const response = await exportHeld(bridge, 530_004);
    expect(response.status).toBe(202);
    const [record] = await bridge.ledger.list({ annotationId: 530_004 });
    expect(HOLD_CEILING_MS).toBe(270_000);
    expect(record!.holdUntil! - before).toBeGreaterThanOrEqual(HOLD_CEILING_MS);
    // Counted from the call's arrival, before the upload, not from the end of the upload.
    expect(record!.holdUntil!).toBeLessThanOrEqual(record!.uploadedAt! + HOLD_CEILING_MS);
    expect(record!.holdUntil! - before).toBeLessThan(300_000 - 25_000);
  });
});
