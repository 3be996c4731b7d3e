import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SqliteLedger } from '../../src/ledger/index.ts';
import { testTargetConfig } from '../support/bridge.ts';
import { ErpSimulator } from '../support/erp-simulator.ts';
import { RossumSimulator } from '../support/rossum-simulator.ts';
import { startSshd, type SshdInstance } from '../support/sshd.ts';
import { waitUntil } from '../support/serve-harness.ts';
import { TcpProxy } from '../support/tcp-proxy.ts';
import { claimTestExport, completeTestExport, ROSSUM_PASSWORD, ROSSUM_USER } from './harness.ts';
import { cliEntry } from '../support/cli-entry.ts';

const DRAIN_MS = 1_500;
/** The pool gives up on a hung operation only after this long: an exit before it is the drain's doing. */
const OPERATION_TIMEOUT_MS = 60_000;

let sshd: SshdInstance;
let proxy: TcpProxy;
let simulator: RossumSimulator;
let dir: string;
let configFile: string;
let child: ChildProcess | undefined;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'rsb-acks-sigterm-'));
  sshd = await startSshd({ baseDir: join(dir, 'sshd') });
  proxy = await TcpProxy.start(sshd.port);
  simulator = await RossumSimulator.start();
  mkdirSync(join(dir, 'mappings'));
  writeFileSync(join(dir, 'mappings', 'erp-companion.yaml'), '');
  const viaProxy = (url: string) => url.replace(`:${sshd.port}/`, `:${proxy.port}/`);
  configFile = join(dir, 'bridge.yaml');
  writeFileSync(
    configFile,
    JSON.stringify({
      ledger: { url: `sqlite:${join(dir, 'ledger.db')}` },
      mappingsDir: join(dir, 'mappings'),
      logLevel: 'debug',
      targets: {
        erp: testTargetConfig(sshd),
        'erp-out': testTargetConfig(sshd, {
          url: viaProxy(sshd.url('acks')),
          pool: { size: 2, connectTimeoutMs: 3_000, operationTimeoutMs: OPERATION_TIMEOUT_MS },
        }),
      },
      routes: [{ mapping: 'erp-companion', target: 'erp' }],
      rossum: { baseUrl: simulator.apiUrl, username: ROSSUM_USER, password: ROSSUM_PASSWORD },
      acks: {
        pollIntervalMs: 100,
        minAgeMs: 100,
        drainMs: DRAIN_MS,
        targets: { erp: { folder: '.', readFrom: 'erp-out' } },
        byMapping: { 'erp-companion': { convention: 'companion', deadlineMs: 600_000 } },
      },
    }),
  );
});

afterAll(async () => {
  if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  await proxy?.close();
  await simulator?.close();
  await sshd?.stop();
});

describe('SIGTERM while the ack folder hangs', () => {
  it('the acks process exits within the drain time, though an SFTP operation on an ack file never finishes', async () => {
    const ledger = new SqliteLedger({ path: join(dir, 'ledger.db') });
    const claim = await claimTestExport(ledger, {
      annotationId: 990001,
      fileName: 'INV-S1.xml',
      mapping: 'erp-companion',
      owner: 'serve',
    });
    await completeTestExport(ledger, claim.record.id, 'INV-S1.xml', 'serve');
    simulator.addAnnotation(990001, { status: 'exported' });
    const erp = new ErpSimulator(sshd.acksDir);
    erp.ok('INV-S1');

    const logPath = join(dir, 'acks.log');
    child = spawn(process.execPath, [cliEntry(), 'acks', '--config', configFile], {
      stdio: ['ignore', openSync(logPath, 'w'), openSync(logPath, 'a')],
    });
    const exited = new Promise<{ code: number | null; at: number }>((resolve) =>
      child!.once('exit', (code) => resolve({ code, at: Date.now() })),
    );
    // Under way: the first answer is read and recorded.
    const started = Date.now();
    while ((await ledger.get(claim.record.id))?.ackState !== 'accepted') {
      if (Date.now() - started > 90_000)
        throw new Error(`the acks process did not record the first answer:\n${readFileSync(logPath, 'utf8')}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    await ledger.close();

    // An answer of 900 kB (under the 1 MiB limit) arrives; once it is being looked at, the link freezes mid-operation.
    const sentBefore = proxy.bytesToClients;
    erp.raw('INV-S2.err', Buffer.alloc(900 * 1024, 'E1 Zeile\r\n'));
    // Being looked at: more of it has crossed the link than listings and keepalives ever send.
    await waitUntil(
      () => proxy.bytesToClients - sentBefore >= 128 * 1024,
      60_000,
      'the acks process to start reading the 900 kB answer',
    );
    proxy.stall();
    await waitUntil(() => proxy.heldTransfers > 0, 30_000, 'an SFTP operation to hang on the frozen link');
    const signalled = Date.now();
    child.kill('SIGTERM');
    const { code, at } = await exited;
    expect(code).toBe(0);
    // Process exit itself takes a moment on a loaded machine; the bound that matters is far below the operation timeout.
    expect(at - signalled).toBeLessThan(DRAIN_MS + 5_000);
    expect(readFileSync(logPath, 'utf8')).toContain('stopped cleanly');
  }, 150_000);
});
