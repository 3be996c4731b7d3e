import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAcks, type RunningAcks } from '../../src/process/index.ts';
import { bridgeConfigSchema, type BridgeConfig } from '../../src/config/index.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { createTarget } from '../../src/transport/index.ts';
import { CapturedLog } from '../support/bridge.ts';
import { ErpSimulator } from '../support/erp-simulator.ts';
import { claimTestExport, completeTestExport } from './harness.ts';
import { cliEntry } from '../support/cli-entry.ts';

const TOKEN = 'configured-long-lived-token-5f1c9e';
const USER = 'api-user@example.com';
const PASSWORD = 'configured password 7Q!x';

interface Received {
  method: string;
  url: string;
  authorization: string | undefined;
  body: string;
}

/** A host that is not Rossum: records every request and answers 401, which invites a client to log in. */
async function recordingServer(): Promise<{ server: Server; url: string; received: Received[] }> {
  const received: Received[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      received.push({
        method: req.method ?? '',
        url: req.url ?? '',
        authorization: req.headers.authorization,
        body: Buffer.concat(chunks).toString('utf8'),
      });
      res.writeHead(401, { 'content-type': 'application/json' }).end('{"detail":"Invalid token."}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, received };
}

let foreign: Awaited<ReturnType<typeof recordingServer>>;
let acks: RunningAcks;
let config: BridgeConfig;
let configFile: string;
let erp: ErpSimulator;
const dir = mkdtempSync(join(tmpdir(), 'rsb-acks-credentials-'));

beforeAll(async () => {
  foreign = await recordingServer();
  mkdirSync(join(dir, 'inbound'), { recursive: true });
  mkdirSync(join(dir, 'mappings'), { recursive: true });
  writeFileSync(join(dir, 'mappings', 'erp-companion.yaml'), '');
  erp = new ErpSimulator(join(dir, 'outbound'));
  const raw = {
    ledger: { url: `sqlite:${join(dir, 'ledger.db')}` },
    mappingsDir: join(dir, 'mappings'),
    targets: {
      share: { url: `file://${join(dir, 'inbound')}` },
      'share-out': { url: `file://${join(dir, 'outbound')}` },
    },
    routes: [{ mapping: 'erp-companion', target: 'share' }],
    // No baseUrl: the API root comes from each export's payload, and the allow-list is the default one.
    rossum: {
      token: TOKEN,
      username: USER,
      password: PASSWORD,
      retry: { attempts: 1, minDelayMs: 10, maxDelayMs: 10 },
    },
    acks: {
      pollIntervalMs: 60_000,
      minAgeMs: 50,
      targets: { share: { folder: '.', readFrom: 'share-out', watch: 'poll' } },
      delivery: { leaseMs: 2_000, retryMinMs: 50, retryMaxMs: 100 },
      byMapping: { 'erp-companion': { convention: 'companion' } },
    },
  };
  configFile = join(dir, 'bridge.yaml');
  writeFileSync(configFile, JSON.stringify(raw));
  config = bridgeConfigSchema.parse(raw);
  acks = await startAcks(config, {
    logger: createLogger({ level: 'debug', destination: new CapturedLog().stream }),
    loop: false,
  });
});

afterAll(async () => {
  await acks?.close();
  await new Promise((resolve) => foreign?.server.close(resolve));
});

describe('Rossum credentials go only to configured or allow-listed hosts', () => {
  it('an export whose payload named a foreign base_url: the foreign host receives nothing, the outcome fails with a clear reason shown by `status`', async () => {
    const inbound = createTarget('share', config.targets.share!, { logger: createLogger({ level: 'silent' }) });
    const content = Buffer.from('<x/>');
    const claim = await claimTestExport(acks.ledger, {
      annotationId: 771001,
      fileName: 'INV-771001.xml',
      mapping: 'erp-companion',
      target: 'share',
      content,
      rossumBaseUrl: foreign.url,
    });
    const uploaded = await inbound.upload({
      relativePath: 'INV-771001.xml',
      bytes: content,
      onExisting: 'overwrite',
    });
    await completeTestExport(acks.ledger, claim.record.id, uploaded.remotePath);
    await inbound.close();
    erp.err('INV-771001', ['E42 Kostenstelle fehlt']);

    let settled = false;
    for (let pass = 0; pass < 40 && !settled; pass++) {
      await acks.pass();
      settled = (await acks.ledger.outcomes(claim.record.id)).some((outcome) => outcome.delivery !== 'pending');
      if (!settled) await new Promise((resolve) => setTimeout(resolve, 60));
    }
    // Whatever the outcome, no request reached the foreign host, let alone one carrying our token or password.
    expect(
      foreign.received.filter(
        (request) =>
          request.authorization !== undefined || request.body.includes(PASSWORD) || request.body.includes(USER),
      ),
    ).toEqual([]);
    expect(foreign.received).toEqual([]);

    const [outcome] = await acks.ledger.outcomes(claim.record.id);
    expect(outcome).toMatchObject({ kind: 'rejected', delivery: 'failed' });
    expect(outcome?.lastError).toContain(foreign.url);
    expect(outcome?.lastError).toContain('rossum.allowedHosts');
    expect((await acks.ledger.get(claim.record.id))?.ackState).toBe('rejected');

    const { stdout } = await promisify(execFile)(process.execPath, [
      cliEntry(),
      'status',
      '771001',
      '--json',
      '--config',
      configFile,
    ]);
    const shown = JSON.parse(stdout) as {
      exports: Array<{ rossum: Array<{ delivery: string; lastError: string | null }> }>;
    };
    expect(shown.exports[0]?.rossum[0]).toMatchObject({
      delivery: 'failed',
      lastError: expect.stringContaining('not in rossum.allowedHosts'),
    });
  }, 90_000);
});
