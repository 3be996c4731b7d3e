import { mkdtempSync, readdirSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { callHook, type HookCallOutcome } from '../../src/rossum/hook-call.ts';
import { repoRoot } from '../support/bridge.ts';
import { ServeProcess, tail } from '../support/fault-serve.ts';
import { type PostgresInstance, startPostgres } from '../support/postgres.ts';
import { waitUntil } from '../support/serve-harness.ts';
import { freePort, type SshdInstance, startSshd } from '../support/sshd.ts';

/*
 * The PostgreSQL ledger restarted in the middle of a stream of deliveries: while it is down the bridge
 * answers 503 (Rossum retries), once it is back every delivery goes through, without restarting the
 * bridge. Afterwards every annotation is exported exactly once: one ledger row, one file.
 */
const SECRET = 'ledger-restart-hook-secret-91c4';
const ANNOTATIONS = 60;
const SPACING_MS = 100;
const DOWN_MS = 4_000;
const HOOK_POLICY = { timeoutS: 10, retryCount: 4, retryDelayS: 3 } as const;
const FIRST_ID = 7_800_000;

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

describe('PostgreSQL ledger restarted mid-stream', () => {
  let dir: string;
  let sshd: SshdInstance;
  let postgres: PostgresInstance;
  let serve: ServeProcess;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'rsb-ledger-restart-'));
    sshd = await startSshd({ baseDir: join(dir, 'sshd') });
    postgres = await startPostgres();
    const port = await freePort();
    const configPath = join(dir, 'bridge.yaml');
    writeFileSync(
      configPath,
      stringify({
        server: { host: '127.0.0.1', port, secret: SECRET, deadlineMs: 3_000 },
        ledger: { url: postgres.url },
        mappingsDir: join(repoRoot, 'mappings'),
        logLevel: 'info',
        targets: {
          erp: { url: sshd.url('inbound'), hostKey: sshd.hostKeyFingerprint, privateKeyPath: sshd.privateKeyPath },
        },
        routes: [{ mapping: 'generic-xml', target: 'erp' }],
      }),
      { mode: 0o600 },
    );
    serve = await ServeProcess.start({ configPath, port, outputPath: join(dir, 'serve.out') });
  }, 120_000);

  afterAll(async () => {
    await serve?.stop();
    await postgres?.stop();
    await sshd?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('503 while the ledger is down, then recovery: every annotation exported exactly once', async () => {
    const template = JSON.parse(
      readFileSync(new URL('../fixtures/rossum/export-invoice.json', import.meta.url), 'utf8'),
    ) as { annotation: { id: number }; request_id: string };
    const outcomes = new Map<number, HookCallOutcome>();
    const attempts: Array<{ at: number; status: number | null }> = [];
    const deliveries: Array<Promise<void>> = [];
    const stream = (async () => {
      for (let i = 0; i < ANNOTATIONS; i++) {
        const id = FIRST_ID + i;
        template.annotation.id = id;
        template.request_id = `ledger-${i}`;
        deliveries.push(
          callHook({
            url: serve.url,
            body: JSON.stringify(template),
            secret: SECRET,
            ...HOOK_POLICY,
            onAttempt: (record) => attempts.push({ at: Date.now(), status: record.statusCode }),
          }).then((outcome) => void outcomes.set(id, outcome)),
        );
        await sleep(SPACING_MS);
      }
    })();

    // Under way: exports are being answered before the ledger goes down.
    await waitUntil(() => attempts.some((attempt) => attempt.status === 200), 30_000, 'the first export answered');
    const downFrom = Date.now();
    await postgres.halt();
    await sleep(DOWN_MS);
    await postgres.start();
    const downTo = Date.now();
    await stream;
    await Promise.all(deliveries);

    const notExported = [...outcomes.entries()].filter(([, outcome]) => outcome.annotationStatus !== 'exported');
    if (notExported.length > 0 || !serve.running) console.log(`serve:\n${tail(join(dir, 'serve.out'), 120)}`);
    expect(notExported.map(([id, outcome]) => ({ id, messages: outcome.messages }))).toEqual([]);
    expect(outcomes.size).toBe(ANNOTATIONS);
    // While down: refused with 503 (retryable for Rossum), not failed.
    const refusedWhileDown = attempts.filter(
      (attempt) => attempt.at >= downFrom && attempt.at <= downTo + 3_000 && attempt.status === 503,
    ).length;
    expect(refusedWhileDown).toBeGreaterThan(0);
    // Back up: answers are 200 again without restarting the bridge.
    expect(attempts.some((attempt) => attempt.at > downTo && attempt.status === 200)).toBe(true);
    expect(serve.running).toBe(true);

    const client = new pg.Client({ connectionString: postgres.url });
    await client.connect();
    const { rows } = await client.query<{ annotation_id: string; status: string; remote_path: string }>(
      'SELECT annotation_id, status, remote_path FROM exports',
    );
    await client.end();
    expect(rows).toHaveLength(ANNOTATIONS);
    expect(new Set(rows.map((row) => Number(row.annotation_id))).size).toBe(ANNOTATIONS);
    expect(rows.filter((row) => row.status !== 'uploaded')).toEqual([]);
    const files = readdirSync(sshd.inboundDir);
    expect(files.sort()).toEqual(rows.map((row) => row.remote_path).sort());
    console.log(`ledger restart: ${refusedWhileDown} attempts refused with 503 while PostgreSQL was down`);
  }, 180_000);
});
