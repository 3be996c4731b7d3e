import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseExportPayload, viewAnnotation } from '../../src/annotation/index.ts';
import { exportIdempotencyKey } from '../../src/export/index.ts';
import { SqliteLedger } from '../../src/ledger/index.ts';
import { loadMappings } from '../../src/mapping/index.ts';
import { fixture, repoRoot } from '../support/bridge.ts';
import { ServeProcess, writeServeConfig } from '../support/fault-serve.ts';
import { FAST_HOOK_TIMINGS, RossumSimulator } from '../support/rossum-simulator.ts';
import { freePort, startSshd, type SshdInstance } from '../support/sshd.ts';

const SECRET = 'reconcile-test-secret-5f0d2c8e1a';
const mapping = loadMappings(join(repoRoot, 'mappings')).get('generic-xml')!;
let sshd: SshdInstance;
let simulator: RossumSimulator;
let serve: ServeProcess | undefined;
let dir: string;

function document(id: number) {
  const payload = fixture('export-invoice.json');
  (payload.annotation as { id: number }).id = id;
  const file = mapping.render(viewAnnotation(parseExportPayload(payload)));
  return { payload, file, sha256: createHash('sha256').update(file.bytes).digest('hex') };
}

function status(ledgerPath: string, id: number): string | undefined {
  const db = new Database(ledgerPath, { readonly: true });
  try {
    return (db.prepare('SELECT status FROM exports WHERE annotation_id = ?').get(id) as { status: string } | undefined)
      ?.status;
  } finally {
    db.close();
  }
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'rsb-reconcile-'));
  sshd = await startSshd({ baseDir: join(dir, 'sshd') });
  simulator = await RossumSimulator.start();
});

afterAll(async () => {
  await serve?.stop();
  await simulator?.close();
  await sshd?.stop();
});

describe('start-up reconciliation of uploads a killed process left behind', () => {
  it('records what reached the server, releases what did not, removes the temp files, and the next delivery uploads once', async () => {
    const ledgerPath = join(dir, 'ledger.db');
    // A process that has ended: its pid is the dead owner's.
    const deadPid = spawnSync(process.execPath, ['-e', '']).pid;
    const deadOwner = `${hostname()}:${deadPid}:0badc0de`;
    const reached = document(880_001);
    const interrupted = document(880_002);

    const ledger = new SqliteLedger({ path: ledgerPath });
    for (const [doc, id] of [
      [reached, 880_001],
      [interrupted, 880_002],
    ] as const) {
      const claim = await ledger.claim({
        idempotencyKey: exportIdempotencyKey(id, 'erp', doc.sha256),
        annotationId: id,
        requestId: `request-${id}`,
        mappingName: 'generic-xml',
        mappingHash: mapping.versionHash,
        target: 'erp',
        plannedPath: doc.file.fileName,
        sha256: doc.sha256,
        bytes: doc.file.bytes.length,
        owner: deadOwner,
        leaseMs: 600_000,
      });
      expect(claim.outcome).toBe('claimed');
    }
    await ledger.close();
    // The first died after its rename (file complete, a stale temp of an earlier try next to it);
    // the second died while writing its temp file.
    writeFileSync(join(sshd.inboundDir, reached.file.fileName), reached.file.bytes);
    writeFileSync(join(sshd.inboundDir, `.${reached.file.fileName}.0123abcd.part`), reached.file.bytes.subarray(0, 10));
    writeFileSync(
      join(sshd.inboundDir, `.${interrupted.file.fileName}.89abcdef.part`),
      interrupted.file.bytes.subarray(0, 100),
    );
    const unrelatedTemp = `.INV_other_1.xml.fedcba98.part`;
    writeFileSync(join(sshd.inboundDir, unrelatedTemp), 'another upload in progress');

    const port = await freePort();
    const configPath = writeServeConfig(dir, {
      port,
      secret: SECRET,
      ledgerPath,
      target: { url: sshd.url('inbound'), hostKey: sshd.hostKeyFingerprint, privateKeyPath: sshd.privateKeyPath },
    });
    const outputPath = join(dir, 'serve.out');
    serve = await ServeProcess.start({ configPath, port, outputPath });

    // Wait for the summary line, not for the statuses: releasing a dead claim passes through
    // `retryable` before the takeover that checks the server, so a status poll can stop too early.
    const deadline = Date.now() + 15_000;
    while (Date.now() < deadline && !readFileSync(outputPath, 'utf8').includes('start-up reconciliation')) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(status(ledgerPath, 880_001)).toBe('uploaded');
    expect(status(ledgerPath, 880_002)).toBe('retryable');
    const names = readdirSync(sshd.inboundDir);
    expect(names.filter((name) => name.endsWith('.part'))).toEqual([unrelatedTemp]);
    expect(readFileSync(join(sshd.inboundDir, reached.file.fileName))).toEqual(reached.file.bytes);
    expect(existsSync(join(sshd.inboundDir, interrupted.file.fileName))).toBe(false);
    expect(readFileSync(outputPath, 'utf8')).toMatch(
      /"checked":2,"recorded":1,"released":1,"msg":"start-up reconciliation/,
    );

    // Rossum's retries: the reconciled one is answered from the ledger, the interrupted one uploads once.
    const hook = { hookUrl: serve.url, secret: SECRET, ...FAST_HOOK_TIMINGS };
    const first = await simulator.exportAnnotation(reached.payload, hook);
    const second = await simulator.exportAnnotation(interrupted.payload, hook);
    expect(first.annotation.status).toBe('exported');
    expect(first.outcome.messages[0]?.content).toContain(reached.file.fileName);
    expect(second.annotation.status).toBe('exported');
    const finals = readdirSync(sshd.inboundDir).filter((name) => !name.startsWith('.'));
    expect(finals.sort()).toEqual([reached.file.fileName, interrupted.file.fileName].sort());
    expect(readFileSync(join(sshd.inboundDir, interrupted.file.fileName))).toEqual(interrupted.file.bytes);
  }, 60_000);
});
