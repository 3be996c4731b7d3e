import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { callHook } from '../../src/rossum/hook-call.ts';
import { repoRoot } from '../support/bridge.ts';
import { ErpSimulator } from '../support/erp-simulator.ts';
import { CliProcess, ServeProcess, type ExitInfo } from '../support/fault-serve.ts';
import { startPostgres, type PostgresInstance } from '../support/postgres.ts';
import { nodeChildPids } from '../support/processes.ts';
import { FAST_HOOK_TIMINGS, RossumSimulator } from '../support/rossum-simulator.ts';
import { invoicePayload, visibleFiles, waitUntil, writeConfigFile } from '../support/serve-harness.ts';
import { freePort, startSshd, type SshdInstance } from '../support/sshd.ts';

const SECRET = 'postgres-loop-secret-0123456789';
let dir: string;
let sshd: SshdInstance;
let postgres: PostgresInstance;
let simulator: RossumSimulator;
let db: pg.Client;
let configFor: (folder: string) => string;

/** `acks` as an operator runs it. */
class AcksProcess extends CliProcess {
  static start(configPath: string, outputPath: string): AcksProcess {
    return new AcksProcess(CliProcess.spawnCli(['acks', '--config', configPath], { outputPath }));
  }
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'rsb-pg-loop-'));
  [sshd, postgres, simulator] = await Promise.all([
    startSshd({ baseDir: join(dir, 'sshd') }),
    startPostgres(),
    RossumSimulator.start(),
  ]);
  db = new pg.Client({ connectionString: postgres.url });
  await db.connect();
  const target = (folder: string) => ({
    url: sshd.url(folder),
    hostKey: sshd.hostKeyFingerprint,
    privateKeyPath: sshd.privateKeyPath,
    retry: { attempts: 3, minDelayMs: 50, maxDelayMs: 200 },
  });
  configFor = (folder) =>
    writeConfigFile(
      dir,
      {
        server: { host: '127.0.0.1', port: 8080, secret: SECRET },
        ledger: { url: postgres.url },
        mappingsDir: join(repoRoot, 'mappings'),
        targets: { erp: target(`inbound/${folder}`), 'erp-out': target(`acks/${folder}`) },
        routes: [{ mapping: 'generic-xml', target: 'erp' }],
        rossum: {
          baseUrl: simulator.apiUrl,
          username: 'bridge@example.com',
          password: 'correct horse battery staple',
          retry: { attempts: 3, minDelayMs: 10, maxDelayMs: 50 },
        },
        acks: {
          pollIntervalMs: 200,
          minAgeMs: 100,
          targets: { erp: { folder: '.', readFrom: 'erp-out' } },
          // Shorter than a delivery takes when two replicas share Rossum's 10 requests/s (429 + Retry-After: 1 s):
          // outcomes change hands mid-claim, and the fence before each write keeps Rossum told once.
          delivery: { leaseMs: 1_000, retryMinMs: 50, retryMaxMs: 200 },
          byMapping: { 'generic-xml': { convention: 'companion', companion: { encoding: 'windows-1252' } } },
        },
      },
      `${folder}.yaml`,
    );
}, 120_000);

afterAll(async () => {
  await db?.end();
  await simulator?.close();
  await postgres?.stop();
  await sshd?.stop();
});

async function ledgerRows(ids: number[]): Promise<
  Array<{
    annotationId: number;
    status: string;
    ackState: string | null;
    remotePath: string;
    uploads: number;
    claims: number;
  }>
> {
  const result = await db.query(
    `SELECT e.annotation_id AS "annotationId", e.status, e.ack_state AS "ackState", e.remote_path AS "remotePath",
            (SELECT count(*)::int FROM export_events v WHERE v.export_id = e.id AND v.kind = 'uploaded') AS uploads,
            (SELECT count(*)::int FROM export_events v WHERE v.export_id = e.id AND v.kind = 'claimed') AS claims
       FROM exports e WHERE e.annotation_id = ANY($1::bigint[]) ORDER BY e.annotation_id`,
    [ids],
  );
  return result.rows.map((row: Record<string, unknown>) => ({
    ...row,
    annotationId: Number(row.annotationId),
  })) as Awaited<ReturnType<typeof ledgerRows>>;
}

describe('PostgreSQL ledger with real processes', { timeout: 180_000 }, () => {
  it('serve --workers 2: two processes, concurrent duplicates, every annotation uploaded exactly once', async () => {
    const port = await freePort();
    const serve = await ServeProcess.start({
      configPath: configFor('workers'),
      port,
      outputPath: join(dir, 'workers.log'),
      args: ['--workers', '2', '--port', String(port)],
      readyTimeoutMs: 90_000,
    });
    let exit: ExitInfo | undefined;
    try {
      await waitUntil(() => nodeChildPids(serve.pid).length === 2, 30_000, 'two worker processes');
      const ids = Array.from({ length: 6 }, (_, i) => 930_001 + i);
      // Each annotation through Rossum's export flow, plus a concurrent duplicate call of the same export.
      const results = await Promise.all(
        ids.flatMap((id) => [
          simulator
            .exportAnnotation(invoicePayload(id), { hookUrl: serve.url, secret: SECRET, ...FAST_HOOK_TIMINGS })
            .then(({ annotation }) => annotation.status),
          callHook({
            url: serve.url,
            body: JSON.stringify(invoicePayload(id)),
            secret: SECRET,
            ...FAST_HOOK_TIMINGS,
          }).then((outcome) => outcome.annotationStatus),
        ]),
      );
      expect(results.every((status) => status === 'exported')).toBe(true);
      expect(visibleFiles(join(sshd.root, 'inbound', 'workers'))).toEqual(
        ids.map((id) => `INV_INV-2024-00417_${id}.xml`),
      );
      const rows = await ledgerRows(ids);
      expect(rows.map((row) => [row.annotationId, row.status, row.uploads, row.claims])).toEqual(
        ids.map((id) => [id, 'uploaded', 1, 1]),
      );
      expect(nodeChildPids(serve.pid)).toHaveLength(2);
    } finally {
      exit = await serve.stop();
    }
    expect(exit).toEqual({ code: 0, signal: null });
  });

  it('serve ×2 + acks ×2 on one ledger, the whole loop: one file per export, each ERP answer reaches Rossum once', async () => {
    const configPath = configFor('loop');
    const [portA, portB] = [await freePort(), await freePort()];
    const serves = await Promise.all([
      ServeProcess.start({
        configPath,
        port: portA,
        outputPath: join(dir, 'serve-a.log'),
        args: ['--port', String(portA)],
        readyTimeoutMs: 90_000,
      }),
      ServeProcess.start({
        configPath,
        port: portB,
        outputPath: join(dir, 'serve-b.log'),
        args: ['--port', String(portB)],
        readyTimeoutMs: 90_000,
      }),
    ]);
    const acks = [
      AcksProcess.start(configPath, join(dir, 'acks-1.log')),
      AcksProcess.start(configPath, join(dir, 'acks-2.log')),
    ];
    const exits: ExitInfo[] = [];
    try {
      const ids = Array.from({ length: 8 }, (_, i) => 940_001 + i);
      const rejected = ids.filter((id) => id % 2 === 0);
      const accepted = ids.filter((id) => id % 2 === 1);
      // Alternate the two serve processes; each annotation is also re-delivered to the other one (a replica race).
      const statuses = await Promise.all(
        ids.flatMap((id, index) => {
          const [mine, other] = index % 2 === 0 ? serves : [...serves].reverse();
          return [
            simulator
              .exportAnnotation(invoicePayload(id), {
                hookUrl: (mine as ServeProcess).url,
                secret: SECRET,
                ...FAST_HOOK_TIMINGS,
              })
              .then(({ annotation }) => annotation.status),
            callHook({
              url: (other as ServeProcess).url,
              body: JSON.stringify(invoicePayload(id)),
              secret: SECRET,
              ...FAST_HOOK_TIMINGS,
            }).then((outcome) => outcome.annotationStatus),
          ];
        }),
      );
      expect(statuses.every((status) => status === 'exported')).toBe(true);
      expect(visibleFiles(join(sshd.root, 'inbound', 'loop'))).toEqual(ids.map((id) => `INV_INV-2024-00417_${id}.xml`));

      const erp = new ErpSimulator(join(sshd.root, 'acks', 'loop'));
      for (const id of ids) {
        if (rejected.includes(id)) erp.err(`INV_INV-2024-00417_${id}`, [`E${id % 1000} Buchung abgelehnt für ${id}`]);
        else erp.ok(`INV_INV-2024-00417_${id}`);
      }
      await waitUntil(
        async () =>
          (await ledgerRows(ids)).every(
            (row) => row.ackState === (rejected.includes(row.annotationId) ? 'rejected' : 'accepted'),
          ) && rejected.every((id) => simulator.annotation(id).status === 'failed_export'),
        60_000,
        'every ack recorded and every rejection told to Rossum',
      );
      await waitUntil(
        async () =>
          Number(
            (await db.query(`SELECT count(*) AS n FROM ack_outcomes WHERE delivery NOT IN ('delivered', 'not_needed')`))
              .rows[0].n,
          ) === 0,
        30_000,
        'the outbox to drain',
      );

      for (const id of rejected) {
        const annotation = simulator.annotation(id);
        expect(annotation.notes, `notes of ${id}`).toHaveLength(1);
        expect(annotation.notes[0]?.content).toContain(`E${id % 1000} Buchung abgelehnt für ${id}`);
        expect(
          simulator
            .callsTo('PATCH', `/v1/annotations/${id}`)
            .filter((call) => (call.body as { status?: string }).status === 'failed_export'),
          `failed_export PATCHes of ${id}`,
        ).toHaveLength(1);
      }
      for (const id of accepted) {
        expect(simulator.annotation(id).status).toBe('exported');
        expect(simulator.annotation(id).notes).toEqual([]);
      }
      const rows = await ledgerRows(ids);
      expect(rows.map((row) => [row.annotationId, row.uploads, row.claims])).toEqual(ids.map((id) => [id, 1, 1]));
      const ackFiles = (
        await db.query('SELECT count(*)::int AS n, count(DISTINCT file_name)::int AS names FROM ack_files')
      ).rows[0];
      expect(ackFiles).toEqual({ n: ids.length, names: ids.length });
      // All four processes stayed up through the loop (the exits below are their SIGTERM stops).
      for (const serve of serves) expect(serve.running).toBe(true);
      expect(acks.every((process) => process.running)).toBe(true);
    } finally {
      for (const process of [...serves, ...acks]) exits.push(await process.stop());
    }
    expect(exits).toEqual(Array(4).fill({ code: 0, signal: null }));
  });
});
