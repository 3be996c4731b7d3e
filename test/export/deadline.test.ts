import { existsSync, mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { fixture, startTestBridge, TEST_SECRET, type TestBridge } from '../support/bridge.ts';
import { GatedProxy } from '../support/gated-proxy.ts';
import { RossumSimulator } from '../support/rossum-simulator.ts';
import { startSshd, type SshdInstance } from '../support/sshd.ts';

const DEADLINE_MS = 1_000;
const FOLDER = 'inbound/deadline';

let sshd: SshdInstance;
let proxy: GatedProxy;
let simulator: RossumSimulator;
let bridge: TestBridge;
let ledgerPath: string;

beforeAll(async () => {
  const dir = mkdtempSync(join(tmpdir(), 'rsb-deadline-'));
  sshd = await startSshd({ baseDir: join(dir, 'sshd') });
  proxy = await GatedProxy.start(sshd.port);
  simulator = await RossumSimulator.start();
  ledgerPath = join(dir, 'ledger.db');
  bridge = await startTestBridge({
    sshd,
    ledgerUrl: `sqlite:${ledgerPath}`,
    server: { deadlineMs: DEADLINE_MS },
    // One connection, no keepalive and no liveness probe: the only bytes the bridge sends once the pool is warm are the upload's.
    target: {
      url: `sftp://${sshd.username}@127.0.0.1:${proxy.port}/~/${FOLDER}`,
      pool: { size: 1, keepaliveMs: 0, checkIdleAfterMs: 600_000, operationTimeoutMs: 20_000 },
    },
  });
});

afterAll(async () => {
  await bridge?.close();
  await simulator?.close();
  await proxy?.stop();
  await sshd?.stop();
});

function files(): string[] {
  const folder = join(sshd.root, FOLDER);
  return existsSync(folder) ? readdirSync(folder).sort() : [];
}

it('an upload still running at the deadline completes in the background; Rossum’s retry gets the answer with no second upload', async () => {
  // Warm the pool (the verbose health check reaches the target through it), then close the gate: the next bytes are the upload's.
  const ready = await fetch(bridge.url.replace('/webhooks/rossum', '/healthz?verbose'));
  expect(ready.status).toBe(200);
  expect(await ready.json()).toMatchObject({ targets: { erp: { ok: true } } });
  const connectionsBefore = proxy.connections;
  proxy.close();

  const payload = fixture('export-invoice.json');
  (payload.annotation as { id: number }).id = 700100;
  let heldBeforeAnswer = 0;
  const { outcome, annotation } = await simulator.exportAnnotation(payload, {
    hookUrl: bridge.url,
    secret: TEST_SECRET,
    retryDelayS: 0.5,
    // Rossum's own timeout, short: without the deadline answer the first attempt would time out instead.
    timeoutS: 5,
    pollIntervalS: 0.05,
    onAttempt: (record: { attempt: number }) => {
      if (record.attempt !== 1) return;
      // Rossum has its first answer: the upload's bytes are still held, i.e. it was running at the deadline.
      heldBeforeAnswer = proxy.heldBytes;
      proxy.open();
    },
  });

  expect(heldBeforeAnswer).toBeGreaterThan(0);
  const [first, second] = outcome.attempts;
  expect(first?.resultStatusCode).toBe(503);
  // Only the "continues in the background" answer keeps the promise; a cancelled upload's message must not appear.
  expect(first?.bodyExcerpt).toMatch(
    /Export of annotation 700100 did not finish within 1 s; it continues in the background and Rossum's retry will get its result without a second upload/,
  );
  expect(first?.bodyExcerpt).not.toMatch(/Rossum will retry:|cancelled/);
  expect(second?.resultStatusCode).toBe(200);
  expect(outcome.attempts).toHaveLength(2);
  expect(annotation.status).toBe('exported');

  const uploaded = files();
  expect(uploaded).toHaveLength(1);
  expect(uploaded[0]).not.toMatch(/\.part$/);
  const ledger = new Database(ledgerPath, { readonly: true });
  try {
    const rows = ledger
      .prepare('SELECT status, remote_path AS remotePath, attempts FROM exports WHERE annotation_id = ?')
      .all(700100) as Array<{ status: string; remotePath: string; attempts: number }>;
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ status: 'uploaded', remotePath: uploaded[0] });
    const kinds = (
      ledger
        .prepare(
          'SELECT kind FROM export_events WHERE export_id = (SELECT id FROM exports WHERE annotation_id = ?) ORDER BY id',
        )
        .all(700100) as Array<{ kind: string }>
    ).map((row) => row.kind);
    // One claim, one upload; the first attempt was never recorded as failed, and the retry did not take over.
    expect(kinds.filter((kind) => kind === 'claimed')).toHaveLength(1);
    expect(kinds.filter((kind) => kind === 'uploaded')).toHaveLength(1);
    expect(kinds).not.toContain('transient_failure');
    expect(kinds).not.toContain('takeover');
  } finally {
    ledger.close();
  }
  // The upload used the warm connection: no reconnect was needed to finish it.
  expect(proxy.connections).toBe(connectionsBefore);
});
