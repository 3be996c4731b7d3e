import { mkdirSync, mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { bridgeConfigSchema } from '../../src/config/index.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { startBridge } from '../../src/process/index.ts';
import { CapturedLog, repoRoot, TEST_SECRET } from '../support/bridge.ts';
import { startLyingSftpServer, type LyingSftpServer } from '../support/lying-sftp-server.ts';
import { invoicePayload, signedHeaders } from '../support/serve-harness.ts';

/**
 * A first delivery whose upload needed a second connection: the first one died after its temp file was
 * created, and the server refused to remove it from the second. Not a takeover, so only the upload's own
 * word tells the export to sweep: the folder must end with the published file alone.
 */

let liar: LyingSftpServer | undefined;
afterEach(async () => {
  await liar?.stop();
});

async function exportOnce(options: { refuseRemoves: number }): Promise<{ files: string[]; log: string }> {
  liar = await startLyingSftpServer({ offerPosixRename: true, dropConnectionAtFirst: 'write', ...options });
  mkdirSync(join(liar.root, 'inbound'));
  const dir = mkdtempSync(join(tmpdir(), 'rsb-leftover-temps-'));
  const config = bridgeConfigSchema.parse({
    server: { host: '127.0.0.1', port: 0, secret: TEST_SECRET },
    ledger: { url: `sqlite:${join(dir, 'ledger.db')}` },
    mappingsDir: join(repoRoot, 'mappings'),
    targets: { erp: { url: liar.url('inbound'), hostKey: liar.hostKeyFingerprint, password: liar.password } },
    routes: [{ mapping: 'generic-xml', target: 'erp' }],
  });
  const log = new CapturedLog();
  const bridge = await startBridge(config, { logger: createLogger({ level: 'info', destination: log.stream }) });
  try {
    const body = JSON.stringify(invoicePayload(640_001));
    const response = await fetch(bridge.url, { method: 'POST', headers: signedHeaders(body, TEST_SECRET), body });
    expect(response.status).toBe(200);
    const reply = (await response.json()) as { messages: Array<{ type: string; content: string }> };
    expect(reply.messages[0]?.type).toBe('info');
  } finally {
    await bridge.close();
  }
  return { files: readdirSync(join(liar.root, 'inbound')), log: log.text() };
}

describe('a temp file a try within the upload could not remove', () => {
  it('is swept once the upload succeeded, and the log says so', async () => {
    const { files, log } = await exportOnce({ refuseRemoves: 1 });
    expect(files).toEqual(['INV_INV-2024-00417_640001.xml']);
    expect(log).toContain('connection was dead; retrying on a fresh one');
    expect(log).toContain('removed temporary files of an earlier attempt');
  });

  it('is not looked for when the retry removed it (no listing of the folder on the common path)', async () => {
    const { files, log } = await exportOnce({ refuseRemoves: 0 });
    expect(files).toEqual(['INV_INV-2024-00417_640001.xml']);
    expect(log).toContain('connection was dead; retrying on a fresh one');
    expect(log).not.toContain('temporary files');
  });
});
