import { mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBridge, type RunningBridge } from '../../src/process/index.ts';
import { bridgeConfigSchema } from '../../src/config/index.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { callHook } from '../../src/rossum/hook-call.ts';
import { CapturedLog, fixture, repoRoot, TEST_SECRET, testTargetConfig } from '../support/bridge.ts';
import { startSshd, type SshdInstance } from '../support/sshd.ts';

let sshd: SshdInstance;
let bridge: RunningBridge;
let mappingsDir: string;

/** generic-xml plus the render time in the file and its name: the case where retries used to upload again. */
function writeClockMapping(extraAttribute = ''): void {
  const source = readFileSync(join(repoRoot, 'mappings/generic-xml.yaml'), 'utf8')
    .replace(
      'name: "INV_{document_id}_{meta.annotation_id}.xml"',
      'name: "INV_{document_id}_{meta.annotation_id}_{meta.now}.xml"',
    )
    .replace(
      '      annotationId: "{meta.annotation_id}"',
      `      annotationId: "{meta.annotation_id}"\n      exportedAt: "{meta.now}"${extraAttribute}`,
    )
    .replace(/\ntests:[\s\S]*$/, '\n');
  writeFileSync(join(mappingsDir, 'clock-xml.yaml'), source);
}

function body(annotationId: number, orderId?: string): string {
  const payload = fixture('export-invoice.json');
  (payload.annotation as { id: number }).id = annotationId;
  const text = JSON.stringify(payload);
  return orderId ? text.replace(/"PO-[^"]*"/, `"${orderId}"`) : text;
}

async function startWithMappings(): Promise<RunningBridge> {
  const config = bridgeConfigSchema.parse({
    server: { host: '127.0.0.1', port: 0, secret: TEST_SECRET },
    ledger: { url: `sqlite:${join(mappingsDir, '..', 'ledger.db')}` },
    mappingsDir,
    targets: { erp: testTargetConfig(sshd) },
    routes: [{ mapping: 'clock-xml', target: 'erp' }],
  });
  return startBridge(config, { logger: createLogger({ level: 'debug', destination: new CapturedLog().stream }) });
}

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const filesOf = (annotationId: number) =>
  readdirSync(sshd.inboundDir).filter((name) => name.includes(`_${annotationId}_`));

beforeAll(async () => {
  const dir = mkdtempSync(join(tmpdir(), 'rsb-clock-'));
  sshd = await startSshd({ baseDir: join(dir, 'sshd') });
  mappingsDir = join(dir, 'mappings');
  mkdirSync(mappingsDir);
  writeClockMapping();
  bridge = await startWithMappings();
});

afterAll(async () => {
  await bridge?.close();
  await sshd?.stop();
});

describe('exactly-once when the mapping reads the clock (meta.now)', () => {
  it('the same export delivered three times, with time passing, uploads one file and answers all three alike', async () => {
    const text = body(520_001);
    const outcomes = [];
    for (let attempt = 0; attempt < 3; attempt++) {
      outcomes.push(await callHook({ url: bridge.url, body: text, secret: TEST_SECRET, retryCount: 0 }));
      await pause(1_100);
    }
    expect(outcomes.map((outcome) => outcome.annotationStatus)).toEqual(['exported', 'exported', 'exported']);
    expect(filesOf(520_001)).toHaveLength(1);
    expect(await bridge.ledger.list({ annotationId: 520_001 })).toHaveLength(1);
    expect(outcomes[2]!.messages).toEqual(outcomes[0]!.messages);
  });

  it('the file carries the time the export was first received, not a later delivery’s', async () => {
    const before = Date.now();
    await callHook({ url: bridge.url, body: body(520_002), secret: TEST_SECRET, retryCount: 0 });
    const [record] = await bridge.ledger.list({ annotationId: 520_002 });
    const written = readFileSync(join(sshd.inboundDir, record!.remotePath!), 'utf8');
    const exportedAt = /exportedAt="([^"]+)"/.exec(written)?.[1];
    expect(exportedAt).toBe(new Date(record!.createdAt).toISOString());
    expect(record!.createdAt).toBeGreaterThanOrEqual(before);
  });

  it('a re-export after a fix of the data is a new file', async () => {
    await callHook({ url: bridge.url, body: body(520_003), secret: TEST_SECRET, retryCount: 0 });
    await pause(50);
    await callHook({ url: bridge.url, body: body(520_003, 'PO-FIXED-9'), secret: TEST_SECRET, retryCount: 0 });
    expect(filesOf(520_003)).toHaveLength(2);
    expect(await bridge.ledger.list({ annotationId: 520_003 })).toHaveLength(2);
  });

  it('a mapping edit that changes nothing in the output uploads nothing again; one that changes it is a new version', async () => {
    await callHook({ url: bridge.url, body: body(520_004), secret: TEST_SECRET, retryCount: 0 });
    await bridge.close();
    // Same output, different mapping source (a comment): a new mapping version.
    writeFileSync(
      join(mappingsDir, 'clock-xml.yaml'),
      `# edited\n${readFileSync(join(mappingsDir, 'clock-xml.yaml'), 'utf8')}`,
    );
    bridge = await startWithMappings();
    await pause(1_100);
    const again = await callHook({ url: bridge.url, body: body(520_004), secret: TEST_SECRET, retryCount: 0 });
    expect(again.annotationStatus).toBe('exported');
    expect(filesOf(520_004)).toHaveLength(1);
    await bridge.close();
    writeClockMapping('\n      source: "bridge"');
    bridge = await startWithMappings();
    await callHook({ url: bridge.url, body: body(520_004), secret: TEST_SECRET, retryCount: 0 });
    expect(filesOf(520_004)).toHaveLength(2);
  });
});
