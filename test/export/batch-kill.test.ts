import { mkdtempSync, readdirSync, readFileSync, watch, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import iconv from 'iconv-lite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { bridgeConfigSchema } from '../../src/config/index.ts';
import { SqliteLedger } from '../../src/ledger/index.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { startBridge } from '../../src/process/index.ts';
import { batchMappingFrom, batchPayload, writeMappings } from '../support/batch-mappings.ts';
import { CapturedLog } from '../support/bridge.ts';
import { ServeProcess } from '../support/fault-serve.ts';
import { signedHeaders, waitUntil } from '../support/serve-harness.ts';
import { freePort, startSshd, type SshdInstance } from '../support/sshd.ts';
import { TcpProxy } from '../support/tcp-proxy.ts';

const SECRET = 'batch-kill-secret-0123456789';
/** Stays open through both kills (its hour never comes; the third document closes it at the end). */
const OPEN_QUEUE = 1;
/** Filled at once; its upload is what the kills interrupt. */
const SENT_QUEUE = 2;

let dir: string;
let sshd: SshdInstance;
/**
 * 40 ms each way between serve and sshd: an upload's temporary file then lives for several round trips
 * (write, close, rename), so the test's kill lands while it is open. On loopback the rename can come
 * before the test has even read the folder, and the kill would never happen.
 */
let link: TcpProxy;
let serve: ServeProcess | undefined;
let configPath: string;
let port: number;
const ledgerPath = (): string => join(dir, 'ledger.db');

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'rsb-batch-kill-'));
  sshd = await startSshd({ baseDir: join(dir, 'sshd') });
  link = await TcpProxy.start(sshd.port, sshd.host, { oneWayDelayMs: 40 });
  // `version`: a second upload of a batch would show as a second file instead of failing.
  const mapping = (name: string): string =>
    batchMappingFrom('datev-csv-batch.yaml', { every: '1h', max_documents: 3 }, `${name}_{batch:4}.csv`).replace(
      'on_existing: fail',
      'on_existing: version',
    );
  const mappingsDir = writeMappings(join(dir, 'mappings'), {
    'open-csv': mapping('OPEN'),
    'sent-csv': mapping('SENT'),
  });
  port = await freePort();
  configPath = join(dir, 'bridge.yaml');
  writeFileSync(
    configPath,
    stringify({
      server: { host: '127.0.0.1', port, secret: SECRET },
      ledger: { url: `sqlite:${ledgerPath()}` },
      mappingsDir,
      logLevel: 'info',
      targets: {
        erp: {
          url: sshd.url('inbound').replace(`:${sshd.port}/`, `:${link.port}/`),
          hostKey: sshd.hostKeyFingerprint,
          privateKeyPath: sshd.privateKeyPath,
        },
      },
      routes: [
        { mapping: 'open-csv', target: 'erp', queues: [OPEN_QUEUE] },
        { mapping: 'sent-csv', target: 'erp', queues: [SENT_QUEUE] },
      ],
    }),
    { mode: 0o600 },
  );
}, 120_000);

afterAll(async () => {
  await serve?.stop();
  await link?.close();
  await sshd?.stop();
});

const startServe = (): Promise<ServeProcess> =>
  ServeProcess.start({ configPath, port, outputPath: join(dir, 'serve.out') });

async function post(queue: number, annotationId: number, documentId: string, url?: string): Promise<string> {
  const body = JSON.stringify(batchPayload(annotationId, queue, documentId));
  const response = await fetch(url ?? (serve as ServeProcess).url, {
    method: 'POST',
    headers: signedHeaders(body, SECRET),
    body,
  });
  expect(response.status).toBe(200);
  return ((await response.json()) as { messages: Array<{ content: string }> }).messages[0]?.content ?? '';
}

async function batchOf(mapping: string): Promise<{ status: string; documents: number }> {
  const ledger = new SqliteLedger({ path: ledgerPath() });
  try {
    const [batch] = await ledger.listBatches({ mappingName: mapping });
    return { status: batch?.status ?? 'none', documents: batch?.documents ?? 0 };
  } finally {
    await ledger.close();
  }
}

const inbound = (prefix: string): string[] => readdirSync(sshd.inboundDir).filter((name) => name.includes(prefix));
const documentsIn = (bytes: Buffer): string[] =>
  iconv
    .decode(bytes, 'windows-1252')
    .split('\r\n')
    .slice(1, -1)
    .map((row) => row.split(';')[7] as string);

describe('SIGKILL of serve around batches (real serve process, real sshd)', () => {
  it('killed while a batch is open, while one is uploaded, and after its upload before the ledger records it: nothing lost, nothing sent twice', async () => {
    // 1. One batch is open (two documents) while another fills and is uploaded: the process dies as its file is written.
    serve = await startServe();
    const opened = await post(OPEN_QUEUE, 880_001, 'K-1');
    const openNumber = Number(/^Added to batch (\d+)/.exec(opened)?.[1]);
    await post(OPEN_QUEUE, 880_002, 'K-2');
    let sawTemp = false;
    const killOnTemp = watch(sshd.inboundDir, (_event, changed) => {
      const isSentTemp = (name: string): boolean => name.startsWith('.') && name.includes('SENT_');
      if (!sawTemp && ((changed !== null && isSentTemp(changed)) || inbound('SENT_').some(isSentTemp))) {
        sawTemp = true;
        serve?.kill('SIGKILL');
      }
    });
    const sentNumber = Number(/^Added to batch (\d+)/.exec(await post(SENT_QUEUE, 890_001, 'S-1'))?.[1]);
    await post(SENT_QUEUE, 890_002, 'S-2');
    expect(await post(SENT_QUEUE, 890_003, 'S-3')).toMatch(/the batch is closed and is being sent now$/);
    await waitUntil(() => sawTemp, 30_000, 'the batch upload to open its temporary file (the moment of the kill)');
    await serve.exited;
    killOnTemp.close();
    expect(sawTemp).toBe(true);
    expect(inbound('SENT_').filter((name) => !name.startsWith('.'))).toEqual([]);
    expect(await batchOf('sent-csv')).toEqual({ status: 'sending', documents: 3 });
    expect(await batchOf('open-csv')).toEqual({ status: 'open', documents: 2 });

    // 2. The next process sends it again and dies after the rename, while the ledger is kept from recording it.
    const sentFile = `SENT_${String(sentNumber).padStart(4, '0')}.csv`;
    const lock = new Database(ledgerPath());
    lock.pragma('busy_timeout = 10000');
    let locked = false;
    let killedAfterUpload = false;
    const leftovers = new Set(inbound(sentFile));
    const killAfterRename = watch(sshd.inboundDir, () => {
      const names = inbound(sentFile);
      // The new attempt's temporary file: its ledger plan is written, its rename is next.
      if (!locked && names.some((name) => name.startsWith('.') && !leftovers.has(name))) {
        lock.exec('BEGIN EXCLUSIVE');
        locked = true;
      }
      if (locked && !killedAfterUpload && names.includes(sentFile)) {
        killedAfterUpload = true;
        serve?.kill('SIGKILL');
      }
    });
    serve = await startServe();
    await waitUntil(() => killedAfterUpload, 30_000, 'the batch file to be renamed into place');
    await serve.exited;
    serve = undefined;
    killAfterRename.close();
    lock.exec('ROLLBACK');
    lock.close();
    expect(await batchOf('sent-csv')).toEqual({ status: 'sending', documents: 3 });
    const uploaded = readFileSync(join(sshd.inboundDir, sentFile));

    // 3. After a restart (in this process: its start-up is not under test) the uploaded batch is found on the
    // server and recorded without another upload; the open one takes its third document and is sent.
    const log = new CapturedLog();
    const config = bridgeConfigSchema.parse(parse(readFileSync(configPath, 'utf8')));
    const restarted = await startBridge(config, { logger: createLogger({ level: 'info', destination: log.stream }) });
    const openFile = `OPEN_${String(openNumber).padStart(4, '0')}.csv`;
    try {
      await waitUntil(async () => (await batchOf('sent-csv')).status === 'sent', 30_000, 'the batch recorded as sent');
      expect(log.text()).toContain('recorded without uploading again');
      expect(await post(SENT_QUEUE, 890_002, 'S-2', restarted.url)).toContain(
        `Sent in batch ${sentNumber} as ${sentFile}`,
      );
      expect(await post(OPEN_QUEUE, 880_003, 'K-3', restarted.url)).toMatch(/being sent now$/);
      await waitUntil(async () => (await batchOf('open-csv')).status === 'sent', 30_000, 'the open batch sent');
    } finally {
      await restarted.close();
    }

    expect(inbound('SENT_')).toEqual([sentFile]);
    expect(readFileSync(join(sshd.inboundDir, sentFile))).toEqual(uploaded);
    expect(documentsIn(uploaded)).toEqual([
      ...Array(3).fill('"S-1"'),
      ...Array(3).fill('"S-2"'),
      ...Array(3).fill('"S-3"'),
    ]);
    expect(inbound('OPEN_')).toEqual([openFile]);
    expect(documentsIn(readFileSync(join(sshd.inboundDir, openFile)))).toEqual([
      ...Array(3).fill('"K-1"'),
      ...Array(3).fill('"K-2"'),
      ...Array(3).fill('"K-3"'),
    ]);
    const ledger = new SqliteLedger({ path: ledgerPath() });
    const exports = await ledger.list({});
    await ledger.close();
    expect(exports.map((e) => [e.annotationId, e.status, e.remotePath])).toEqual([
      [890_001, 'uploaded', sentFile],
      [890_002, 'uploaded', sentFile],
      [890_003, 'uploaded', sentFile],
      [880_001, 'uploaded', openFile],
      [880_002, 'uploaded', openFile],
      [880_003, 'uploaded', openFile],
    ]);
  }, 300_000);
});
