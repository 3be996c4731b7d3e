import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bridgeConfigSchema, type BridgeConfig } from '../../src/config/index.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { startAcks, startBridge, type RunningAcks, type RunningBridge } from '../../src/process/index.ts';
import { ROSSUM_PASSWORD, ROSSUM_USER } from '../ack/harness.ts';
import { batchMappingFrom, batchPayload, writeMappings } from '../support/batch-mappings.ts';
import { CapturedLog, TEST_SECRET, testTargetConfig } from '../support/bridge.ts';
import { ErpSimulator } from '../support/erp-simulator.ts';
import { RossumSimulator } from '../support/rossum-simulator.ts';
import { signedHeaders, waitUntil } from '../support/serve-harness.ts';
import { startSshd, type SshdInstance } from '../support/sshd.ts';

let sshd: SshdInstance;
let simulator: RossumSimulator;
let erp: ErpSimulator;
let serve: RunningBridge;
let acks: RunningAcks;
let config: BridgeConfig;
const log = new CapturedLog();

const WHOLE_BATCH_QUEUE = 1;
const PER_DOCUMENT_QUEUE = 2;
const DEADLINE_MS = 600_000;

beforeAll(async () => {
  const dir = mkdtempSync(join(tmpdir(), 'rsb-batch-acks-'));
  sshd = await startSshd({ baseDir: join(dir, 'sshd') });
  simulator = await RossumSimulator.start();
  erp = new ErpSimulator(sshd.acksDir);
  const mappingsDir = writeMappings(join(dir, 'mappings'), {
    'batch-whole': batchMappingFrom('datev-csv-batch.yaml', { every: '1h', max_documents: 2 }, 'WHOLE_{batch:4}.csv'),
    'batch-rows': batchMappingFrom('datev-csv-batch.yaml', { every: '1h', max_documents: 2 }, 'ROWS_{batch:4}.csv'),
  });
  config = bridgeConfigSchema.parse({
    server: { host: '127.0.0.1', port: 0, secret: TEST_SECRET },
    ledger: { url: `sqlite:${join(dir, 'ledger.db')}` },
    mappingsDir,
    targets: { erp: testTargetConfig(sshd), 'erp-out': testTargetConfig(sshd, { url: sshd.url('acks') }) },
    routes: [
      { mapping: 'batch-whole', target: 'erp', queues: [WHOLE_BATCH_QUEUE] },
      { mapping: 'batch-rows', target: 'erp', queues: [PER_DOCUMENT_QUEUE] },
    ],
    rossum: {
      baseUrl: simulator.apiUrl,
      username: ROSSUM_USER,
      password: ROSSUM_PASSWORD,
      retry: { attempts: 3, minDelayMs: 10, maxDelayMs: 50 },
    },
    acks: {
      pollIntervalMs: 200,
      minAgeMs: 100,
      targets: { erp: { folder: '.', readFrom: 'erp-out' } },
      delivery: { leaseMs: 2_000, retryMinMs: 50, retryMaxMs: 200 },
      byMapping: {
        // The ERP answers for the whole file: WHOLE_0001.err beside it.
        'batch-whole': { convention: 'companion', companion: { encoding: 'windows-1252' }, deadlineMs: DEADLINE_MS },
        // The ERP answers per document: one row per document number.
        'batch-rows': { convention: 'csv', csv: { files: 'ack_*.csv', match: 'documentRef' }, deadlineMs: DEADLINE_MS },
      },
    },
  });
  const logger = createLogger({ level: 'debug', destination: log.stream });
  serve = await startBridge(config, { logger });
  acks = await startAcks(config, { logger, loop: false });
}, 120_000);

afterAll(async () => {
  await acks?.close();
  await serve?.close();
  await simulator?.close();
  await sshd?.stop();
});

async function post(payload: Record<string, unknown>): Promise<number> {
  const body = JSON.stringify(payload);
  const response = await fetch(serve.url, { method: 'POST', headers: signedHeaders(body, TEST_SECRET), body });
  return response.status;
}

async function sendBatch(queue: number, documents: Array<[number, string]>): Promise<string> {
  for (const [annotationId, documentId] of documents) {
    simulator.addAnnotation(annotationId, { status: 'exported' });
    expect(await post(batchPayload(annotationId, queue, documentId))).toBe(200);
  }
  const ids = documents.map(([id]) => id);
  await waitUntil(
    async () =>
      (await serve.ledger.list({ status: ['uploaded'] })).filter((e) => ids.includes(e.annotationId)).length ===
      ids.length,
    20_000,
    'the batch to be sent',
  );
  const first = (await serve.ledger.list({ annotationId: ids[0] as number }))[0];
  return first?.remotePath as string;
}

async function passUntil(done: () => boolean | Promise<boolean>): Promise<void> {
  for (let pass = 1; pass <= 40; pass++) {
    await acks.pass();
    if (await done()) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`not reached after 40 passes:\n${log.text().slice(-3000)}`);
}

describe('acks for batches (real sshd, simulated Rossum)', () => {
  it('a rejection of the batch file flags every document in it in Rossum; the deadline is the same for the whole batch', async () => {
    const file = await sendBatch(WHOLE_BATCH_QUEUE, [
      [840_001, 'W-1'],
      [840_002, 'W-2'],
    ]);
    expect(file).toMatch(/^WHOLE_\d{4}\.csv$/);
    await acks.pass();
    const tracked = await serve.ledger.list({ mappingName: 'batch-whole' });
    expect(tracked.map((e) => e.ackState)).toEqual(['awaiting_ack', 'awaiting_ack']);
    expect(new Set(tracked.map((e) => e.ackDeadlineAt)).size).toBe(1);
    expect(tracked[0]?.ackDeadlineAt).toBe((tracked[0]?.uploadedAt as number) + DEADLINE_MS);

    erp.err(file.replace(/\.csv$/, ''), ['E900 Stapel abgelehnt: Periode gesperrt']);
    await passUntil(
      () =>
        simulator.annotation(840_001).status === 'failed_export' &&
        simulator.annotation(840_002).status === 'failed_export',
    );
    for (const id of [840_001, 840_002])
      expect(simulator.annotation(id).notes[0]?.content).toContain('E900 Stapel abgelehnt: Periode gesperrt');
    const settled = await serve.ledger.list({ mappingName: 'batch-whole' });
    expect(settled.map((e) => [e.ackState, e.ackFile])).toEqual([
      ['rejected', `${file.replace(/\.csv$/, '')}.err`],
      ['rejected', `${file.replace(/\.csv$/, '')}.err`],
    ]);
  }, 60_000);

  it('a rejection naming one document flags just that one', async () => {
    await sendBatch(PER_DOCUMENT_QUEUE, [
      [850_001, 'R-1'],
      [850_002, 'R-2'],
    ]);
    erp.csv('ack_rows_1.csv', [
      { file: 'R-1', status: 'OK' },
      { file: 'R-2', status: 'ERROR', code: 'E102', message: 'Kreditor gesperrt' },
    ]);
    await passUntil(async () => {
      const states = (await serve.ledger.list({ mappingName: 'batch-rows' })).map((e) => e.ackState);
      return states.join() === 'accepted,rejected' && simulator.annotation(850_002).status === 'failed_export';
    });
    expect(simulator.annotation(850_001).status).toBe('exported');
    expect(simulator.annotation(850_001).notes).toEqual([]);
    expect(simulator.annotation(850_002).notes[0]?.content).toContain('E102 Kreditor gesperrt');
  }, 60_000);
});
