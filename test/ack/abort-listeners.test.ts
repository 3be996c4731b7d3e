import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErpSimulator } from '../support/erp-simulator.ts';
import { RossumSimulator } from '../support/rossum-simulator.ts';
import { startSshd, type SshdInstance } from '../support/sshd.ts';
import { ackBridgeConfig, startAckHarness, type AckHarness } from './harness.ts';

const FILES = 32;
const FIRST = 650_001;

let sshd: SshdInstance;
let simulator: RossumSimulator;
let harness: AckHarness;
const warnings: Error[] = [];
const onWarning = (warning: Error) => warnings.push(warning);

beforeAll(async () => {
  sshd = await startSshd({ baseDir: mkdtempSync(join(tmpdir(), 'rsb-acks-listeners-')) });
  simulator = await RossumSimulator.start();
  harness = await startAckHarness(ackBridgeConfig({ sshd, simulator, acks: { concurrency: 64 } }));
  process.on('warning', onWarning);
});

afterAll(async () => {
  process.off('warning', onWarning);
  await harness?.close();
  await simulator?.close();
  await sshd?.stop();
});

describe('acks at concurrency 64 over SFTP', () => {
  it('reads a pass of ack files 64 at a time without a MaxListenersExceededWarning (no abort listener per task on one signal)', async () => {
    const erp = new ErpSimulator(sshd.acksDir);
    const ids: number[] = [];
    for (let i = 0; i < FILES; i++) {
      const annotationId = FIRST + i;
      const fileName = `INV-L${i}_${annotationId}.xml`;
      ids.push(await harness.exported({ annotationId, fileName, mapping: 'erp-xml' }));
      erp.xml(`ACK_INV-L${i}_${annotationId}.xml`, { sourceFile: fileName, status: 'ACCEPTED' });
    }
    await harness.passUntil(async () => {
      const records = await Promise.all(ids.map((id) => harness.acks.ledger.get(id)));
      return records.every((record) => record?.ackState === 'accepted');
    });
    expect(warnings.filter((warning) => warning.name === 'MaxListenersExceededWarning').map(String)).toEqual([]);
  }, 60_000);
});
