import { existsSync, mkdirSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAcks, type RunningAcks } from '../../src/process/index.ts';
import { SqliteLedger } from '../../src/ledger/index.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { ackTestConfig } from '../support/ack-config.ts';
import { CapturedLog } from '../support/bridge.ts';
import { ErpSimulator } from '../support/erp-simulator.ts';
import { RossumSimulator } from '../support/rossum-simulator.ts';
import { claimTestExport, completeTestExport } from '../ack/harness.ts';
import { startSshd, type SshdInstance } from '../support/sshd.ts';

// Found by the fault stream: a bridge killed after the rename (or a stalled rename that went through after
// the bridge gave up) leaves the file on the server and the ledger unsure. The ERP answers it; the answer
// must wait for the upload to be confirmed, not go to unmatched/ (the export was then flagged as unanswered).

let sshd: SshdInstance;
let simulator: RossumSimulator;
let ledger: SqliteLedger;
let acks: RunningAcks;
const log = new CapturedLog();

beforeAll(async () => {
  const dir = mkdtempSync(join(tmpdir(), 'rsb-ack-before-upload-'));
  sshd = await startSshd({ baseDir: join(dir, 'sshd') });
  simulator = await RossumSimulator.start();
  const mappingsDir = join(dir, 'mappings');
  mkdirSync(mappingsDir);
  writeFileSync(join(mappingsDir, 'erp-companion.yaml'), '');
  const config = ackTestConfig({
    sshd,
    simulator,
    ledgerPath: join(dir, 'ledger.db'),
    mappingsDir,
    mapping: 'erp-companion',
    ack: { convention: 'companion', deadlineMs: 60_000 },
    acks: { minAgeMs: 0 },
    rossumRetry: { attempts: 2, minDelayMs: 10, maxDelayMs: 50 },
  });
  ledger = new SqliteLedger({ path: join(dir, 'ledger.db') });
  acks = await startAcks(config, { logger: createLogger({ level: 'debug', destination: log.stream }), loop: false });
});

afterAll(async () => {
  await acks?.close();
  await ledger?.close();
  await simulator?.close();
  await sshd?.stop();
});

const inFolder = (sub?: string): string[] => {
  const path = sub ? join(sshd.acksDir, sub) : sshd.acksDir;
  return existsSync(path)
    ? readdirSync(path, { withFileTypes: true })
        .filter((entry) => entry.isFile() && !entry.name.startsWith('.'))
        .map((entry) => entry.name)
    : [];
};

describe('an ack that arrives before the ledger knows the upload finished', () => {
  it('waits in the ack folder while the upload is unconfirmed, then is matched once it is; an ack naming nothing still goes to unmatched/', async () => {
    const annotationId = 840_001;
    simulator.addAnnotation(annotationId, { status: 'exported' });
    const claim = await claimTestExport(ledger, {
      annotationId,
      fileName: `INV-${annotationId}.xml`,
      mapping: 'erp-companion',
      owner: 'serve-that-died',
    });
    expect(claim.outcome).toBe('claimed');
    const erp = new ErpSimulator(sshd.acksDir);
    erp.err(`INV-${annotationId}`, ['E100 Kostenstelle fehlt']);
    erp.ok('INV-NOBODY-1');

    // Two looks: the first records sizes, the second reads what stayed the same.
    await acks.pass();
    await acks.pass();
    expect(inFolder()).toEqual([`INV-${annotationId}.err`]);
    expect(inFolder('unmatched')).toEqual(['INV-NOBODY-1.ok']);
    expect(log.text()).toContain('upload is not confirmed yet');
    expect((await ledger.get(claim.record.id))?.ackState).toBeNull();

    await completeTestExport(ledger, claim.record.id, `INV-${annotationId}.xml`, 'serve-that-died');
    await acks.pass();
    await acks.pass();
    expect(inFolder()).toEqual([]);
    expect(inFolder('processed')).toEqual([`INV-${annotationId}.err`]);
    expect((await ledger.get(claim.record.id))?.ackState).toBe('rejected');
    expect(simulator.annotation(annotationId).status).toBe('failed_export');
    expect(simulator.annotation(annotationId).notes).toHaveLength(1);
  }, 60_000);
});
