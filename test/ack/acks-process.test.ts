import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { promisify } from 'node:util';
import { existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SqliteLedger } from '../../src/ledger/index.ts';
import { ErpSimulator } from '../support/erp-simulator.ts';
import { RossumSimulator } from '../support/rossum-simulator.ts';
import { startSshd, type SshdInstance } from '../support/sshd.ts';
import { ackTestConfigInput } from '../support/ack-config.ts';
import { claimTestExport, completeTestExport } from './harness.ts';
import { cliEntry } from '../support/cli-entry.ts';

let sshd: SshdInstance;
let simulator: RossumSimulator;
let dir: string;
let configFile: string;
let ledgerPath: string;
const children: ChildProcess[] = [];

const run = promisify(execFile);
const FILES = 160;
const FIRST_ANNOTATION = 820_000;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'rsb-acks-proc-'));
  sshd = await startSshd({ baseDir: join(dir, 'sshd') });
  simulator = await RossumSimulator.start();
  ledgerPath = join(dir, 'ledger.db');
  const mappingsDir = join(dir, 'mappings');
  mkdirSync(mappingsDir);
  // `acks` does not render; the config check only needs the mapping to exist by name.
  writeFileSync(join(mappingsDir, 'erp-companion.yaml'), '');
  configFile = join(dir, 'bridge.yaml');
  // JSON is YAML: the config file the operator would write, generated.
  writeFileSync(
    configFile,
    JSON.stringify(
      ackTestConfigInput({
        sshd,
        simulator,
        ledgerPath,
        mappingsDir,
        mapping: 'erp-companion',
        ack: { convention: 'companion', companion: { encoding: 'windows-1252' } },
        acks: { pollIntervalMs: 200, minAgeMs: 100, delivery: { leaseMs: 1_000, retryMinMs: 50, retryMaxMs: 200 } },
        extra: { logLevel: 'info' },
      }),
    ),
  );
});

afterAll(async () => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  await simulator?.close();
  await sshd?.stop();
});

function startAcksProcess(logName: string): ChildProcess {
  const log = openSync(join(dir, logName), 'w');
  const child = spawn(process.execPath, [cliEntry(), 'acks', '--config', configFile], {
    stdio: ['ignore', log, log],
  });
  children.push(child);
  return child;
}

async function waitFor(condition: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

const exited = (child: ChildProcess) =>
  new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
const rejectedIds = Array.from({ length: FILES }, (_, i) => FIRST_ANNOTATION + i).filter((id) => id % 2 === 0);

describe('the acks process (spawned like production)', () => {
  it('killed with SIGKILL mid-batch and restarted: every ack processed once, no double flags; SIGTERM stops it cleanly', async () => {
    const ledger = new SqliteLedger({ path: ledgerPath });
    const erp = new ErpSimulator(sshd.acksDir);
    for (let i = 0; i < FILES; i++) {
      const annotationId = FIRST_ANNOTATION + i;
      simulator.addAnnotation(annotationId, { status: 'exported' });
      const claim = await claimTestExport(ledger, {
        annotationId,
        fileName: `INV-${annotationId}.xml`,
        mapping: 'erp-companion',
        owner: 'serve',
      });
      await completeTestExport(ledger, claim.record.id, `INV-${annotationId}.xml`, 'serve');
      if (annotationId % 2 === 0)
        erp.err(`INV-${annotationId}`, [`E${annotationId % 1000} Buchung abgelehnt für ${annotationId}`]);
      else erp.ok(`INV-${annotationId}`);
    }
    await ledger.close();
    const notes = () => rejectedIds.reduce((sum, id) => sum + simulator.annotation(id).notes.length, 0);

    const first = startAcksProcess('acks-1.log');
    const firstExit = exited(first);
    await waitFor(() => notes() >= 12, 60_000, 'the first process to be under way');
    first.kill('SIGKILL');
    expect(await firstExit).toEqual({ code: null, signal: 'SIGKILL' });
    const doneBeforeKill = notes();
    expect(doneBeforeKill).toBeLessThan(rejectedIds.length);

    const second = startAcksProcess('acks-2.log');
    const secondExit = exited(second);
    const processed = () =>
      existsSync(join(sshd.acksDir, 'processed')) ? readdirSync(join(sshd.acksDir, 'processed')).length : 0;
    await waitFor(
      () => processed() === FILES && rejectedIds.every((id) => simulator.annotation(id).status === 'failed_export'),
      60_000,
      'all acks to be processed',
    );
    // Let the outbox settle (the last deliveries are recorded after Rossum answered).
    const check = new SqliteLedger({ path: ledgerPath });
    await waitFor(async () => (await check.outcomeBacklog()).pending === 0, 20_000, 'the outbox to drain');
    second.kill('SIGTERM');
    expect(await secondExit).toEqual({ code: 0, signal: null });

    for (const id of rejectedIds) {
      const annotation = simulator.annotation(id);
      expect(annotation.notes, `notes of ${id}`).toHaveLength(1);
      expect(
        simulator
          .callsTo('PATCH', `/v1/annotations/${id}`)
          .filter((call) => (call.body as { status?: string }).status === 'failed_export'),
        `failed_export PATCHes of ${id}`,
      ).toHaveLength(1);
      expect(annotation.metadata.erp_ack).toMatchObject({ result: 'rejected', state: 'done' });
    }
    for (const id of Array.from({ length: FILES }, (_, i) => FIRST_ANNOTATION + i).filter((id) => id % 2 === 1)) {
      expect(simulator.annotation(id).status).toBe('exported');
    }
    const records = await check.list({ limit: 10_000 });
    expect(records.map((record) => record.ackState).sort()).toEqual([
      ...Array(FILES / 2).fill('accepted'),
      ...Array(FILES / 2).fill('rejected'),
    ]);
    const ackFiles = check.db
      .prepare('SELECT count(*) AS n, count(DISTINCT file_name) AS names FROM ack_files')
      .get() as { n: number; names: number };
    expect(ackFiles).toEqual({ n: FILES, names: FILES });
    expect(
      check.db
        .prepare(`SELECT count(*) AS n FROM ack_outcomes WHERE delivery NOT IN ('delivered', 'not_needed')`)
        .get(),
    ).toEqual({ n: 0 });
    expect(readdirSync(sshd.acksDir).filter((name) => !name.startsWith('.') && name !== 'processed')).toEqual([]);
    await check.close();
  }, 120_000);

  it("`status` lists exports by state as JSON or a table, and `status ANNOTATION_ID` shows one export's whole history", async () => {
    const cli = (...args: string[]) => run(process.execPath, [cliEntry(), 'status', '--config', configFile, ...args]);
    const rejected = JSON.parse((await cli('--state', 'rejected', '--json', '--limit', '1000')).stdout) as Array<{
      annotationId: number;
      state: string;
      ackFile: string;
    }>;
    expect(rejected.map((entry) => entry.annotationId).sort()).toEqual(rejectedIds);
    expect(rejected[0]).toMatchObject({ state: 'rejected', ackFile: `INV-${rejected[0]!.annotationId}.err` });
    expect(
      JSON.parse((await cli('--state', 'accepted', '--newer-than', '1h', '--json', '--limit', '1000')).stdout),
    ).toHaveLength(FILES / 2);
    expect(JSON.parse((await cli('--state', 'accepted', '--older-than', '1h', '--json')).stdout)).toEqual([]);
    expect((await cli('--mapping', 'erp-companion', '--state', 'rejected', '--limit', '3')).stdout).toMatch(
      /^EXPORT\s+ANNOTATION\s+STATE.*\n\d+\s+\d+\s+rejected\s+erp-companion\s+erp\s+INV-/,
    );

    const id = rejectedIds[0]!;
    const history = JSON.parse((await cli(String(id), '--json')).stdout) as {
      exports: Array<{
        state: string;
        events: Array<{ kind: string }>;
        rossum: Array<{ outcome: string; delivery: string }>;
      }>;
    };
    expect(history.exports).toHaveLength(1);
    expect(history.exports[0]!.events.map((event) => event.kind)).toEqual(
      expect.arrayContaining(['claimed', 'uploaded', 'awaiting_ack', 'ack_rejected', 'rossum_told']),
    );
    expect(history.exports[0]!.rossum).toEqual([
      expect.objectContaining({ outcome: 'rejected', delivery: 'delivered' }),
    ]);
    expect((await cli(String(id))).stdout).toMatch(
      /export \d+ of annotation \d+: rejected[\s\S]*ack_rejected[\s\S]*rossum_told/,
    );
    await expect(cli('--state', 'nonsense')).rejects.toMatchObject({
      stderr: expect.stringMatching(/unknown state nonsense/),
    });
  }, 60_000);
});
