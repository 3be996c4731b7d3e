import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { repoRoot } from '../support/bridge.ts';
import { ServeProcess } from '../support/fault-serve.ts';
import { GatedProxy } from '../support/gated-proxy.ts';
import { FAST_HOOK_TIMINGS, RossumSimulator } from '../support/rossum-simulator.ts';
import {
  invoicePayload,
  signedHeaders,
  visibleFiles,
  waitForOutput,
  writeConfigFile,
} from '../support/serve-harness.ts';
import { freePort, startSshd, type SshdInstance } from '../support/sshd.ts';

const SECRET = 'serve-rossum-secret-0123456789';
let dir: string;
let sshd: SshdInstance;
let simulator: RossumSimulator;

function sftpTarget(folder: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    url: sshd.url(folder),
    hostKey: sshd.hostKeyFingerprint,
    privateKeyPath: sshd.privateKeyPath,
    retry: { attempts: 2, minDelayMs: 50, maxDelayMs: 200 },
    ...extra,
  };
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'rsb-serve-rossum-'));
  sshd = await startSshd({ baseDir: join(dir, 'sshd') });
  simulator = await RossumSimulator.start();
});

afterAll(async () => {
  await simulator?.close();
  await sshd?.stop();
});

describe('serve, driven by Rossum (simulated) over real HTTP', { timeout: 90_000 }, () => {
  let serve: ServeProcess;
  const folder = (name: string) => join(sshd.root, 'inbound', name);
  const hook = () => ({ hookUrl: serve.url, secret: SECRET, ...FAST_HOOK_TIMINGS });

  beforeAll(async () => {
    const port = await freePort();
    const configPath = writeConfigFile(dir, {
      server: { host: '127.0.0.1', port, secret: SECRET },
      ledger: { url: `sqlite:${join(dir, 'routes.db')}` },
      mappingsDir: join(repoRoot, 'mappings'),
      targets: {
        'erp-a': sftpTarget('inbound/route-a'),
        'erp-b': sftpTarget('inbound/route-b'),
        'erp-idoc': sftpTarget('inbound/route-idoc'),
        'erp-fallback': sftpTarget('inbound/route-fallback'),
      },
      routes: [
        { queues: [8236], mapping: 'generic-xml', target: 'erp-a' },
        { queues: [9001, 9002], mapping: 'generic-csv', target: 'erp-b' },
        { queues: [9100], mapping: 'sap-idoc-xml', target: 'erp-idoc' },
        { mapping: 'generic-xml', target: 'erp-fallback' },
      ],
    });
    serve = await ServeProcess.start({ configPath, port, outputPath: join(dir, 'routes.log'), readyTimeoutMs: 60_000 });
  });
  afterAll(async () => {
    expect((await serve?.stop())?.code).toBe(0);
  });

  it('routes each export by its Rossum queue: mapping and target of the matching route, the fallback otherwise', async () => {
    const cases = [
      { id: 910001, queue: 8236, folder: 'route-a', name: /^INV_INV-2024-00417_910001\.xml$/ },
      { id: 910002, queue: 9002, folder: 'route-b', name: /^INV_INV-2024-00417_910002\.csv$/ },
      { id: 910003, queue: 4242, folder: 'route-fallback', name: /^INV_INV-2024-00417_910003\.xml$/ },
    ];
    for (const { id, queue } of cases) {
      const { annotation } = await simulator.exportAnnotation(invoicePayload(id, queue), hook());
      expect(annotation.status, `annotation ${id}`).toBe('exported');
    }
    for (const { folder: name, name: pattern } of cases) {
      const files = visibleFiles(folder(name));
      expect(files, name).toHaveLength(1);
      expect(files[0]).toMatch(pattern);
    }
    expect(readFileSync(join(folder('route-b'), visibleFiles(folder('route-b'))[0] as string), 'utf8')).toContain(
      'INV-2024-00417',
    );
    expect(visibleFiles(folder('route-idoc'))).toEqual([]);
  });

  it('onExisting: fail as Rossum sees it: 200 with an error naming the file, failed_export, the ERP’s file untouched', async () => {
    const name = 'IDOC_INVOIC02_910100_INV-2024-00417.xml';
    mkdirSync(folder('route-idoc'), { recursive: true });
    writeFileSync(join(folder('route-idoc'), name), 'the ERP already has this document\n');
    const { outcome, annotation } = await simulator.exportAnnotation(invoicePayload(910100, 9100), hook());
    // A permanent answer: Rossum does not retry it.
    expect(outcome.attempts).toHaveLength(1);
    expect(outcome.finalStatusCode).toBe(200);
    expect(annotation.status).toBe('failed_export');
    const errors = annotation.messages.filter((message) => message.type === 'error');
    expect(errors).toHaveLength(1);
    expect(errors[0]?.content).toContain(name);
    expect(errors[0]?.content).toMatch(/already exists/);
    expect(readFileSync(join(folder('route-idoc'), name), 'utf8')).toBe('the ERP already has this document\n');
    expect(visibleFiles(folder('route-idoc'))).toEqual([name]);
  });
});

describe('SIGTERM drain', { timeout: 90_000 }, () => {
  it('an upload provably in flight at the signal completes, its request is answered, and serve exits 0', async () => {
    const proxy = await GatedProxy.start(sshd.port);
    const port = await freePort();
    const ledgerPath = join(dir, 'drain.db');
    const outputPath = join(dir, 'drain.log');
    const configPath = writeConfigFile(
      dir,
      {
        server: { host: '127.0.0.1', port, secret: SECRET, deadlineMs: 20_000 },
        ledger: { url: `sqlite:${ledgerPath}` },
        mappingsDir: join(repoRoot, 'mappings'),
        targets: {
          erp: sftpTarget('inbound/drain', {
            url: `sftp://${sshd.username}@127.0.0.1:${proxy.port}/~/inbound/drain`,
            // One connection, no keepalive and no idle probe: once the pool is warm, the only bytes sent are the upload's.
            pool: { size: 1, keepaliveMs: 0, checkIdleAfterMs: 600_000, operationTimeoutMs: 20_000 },
          }),
        },
        routes: [{ mapping: 'generic-xml', target: 'erp' }],
      },
      'drain.yaml',
    );
    const serve = await ServeProcess.start({ configPath, port, outputPath, readyTimeoutMs: 60_000 });
    try {
      expect((await fetch(`${serve.baseUrl}/readyz`)).status).toBe(200);
      proxy.close();
      const body = JSON.stringify(invoicePayload(920001));
      const answer = fetch(serve.url, { method: 'POST', body, headers: signedHeaders(body, SECRET) });
      await proxy.firstHeld();
      serve.kill('SIGTERM');
      await waitForOutput(outputPath, 'stopping: finishing exports in flight');
      // The signal was taken while the upload was held: nothing answered, nothing visible, still running.
      expect(serve.running).toBe(true);
      expect(visibleFiles(join(sshd.root, 'inbound', 'drain'))).toEqual([]);
      proxy.open();

      const reply = await answer;
      expect(reply.status).toBe(200);
      // Answered while stopping: the connection is closed so an idle keep-alive socket cannot hold the exit.
      expect(reply.headers.get('connection')).toBe('close');
      const json = (await reply.json()) as { messages: Array<{ type: string; content: string }> };
      expect(json.messages[0]?.type).toBe('info');
      expect(await serve.exited).toEqual({ code: 0, signal: null });
      expect(visibleFiles(join(sshd.root, 'inbound', 'drain'))).toEqual(['INV_INV-2024-00417_920001.xml']);
      const ledger = new Database(ledgerPath, { readonly: true });
      try {
        expect(ledger.prepare('SELECT status FROM exports WHERE annotation_id = ?').all(920001)).toEqual([
          { status: 'uploaded' },
        ]);
      } finally {
        ledger.close();
      }
      expect(readFileSync(outputPath, 'utf8')).toContain('stopped cleanly');
    } finally {
      await serve.stop();
      await proxy.stop();
    }
  });
});
