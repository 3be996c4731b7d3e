import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BridgeConfig } from '../../src/config/index.ts';
import { targetConfigSchema } from '../../src/transport/index.ts';
import { RossumSimulator } from '../support/rossum-simulator.ts';
import { startSshd, type SshdInstance } from '../support/sshd.ts';
import { ackBridgeConfig, startAckHarness, type AckHarness } from '../ack/harness.ts';
import { fileUrl } from './helpers.ts';
import { startSwapper, stopSwapper, untilExists } from './swapper.ts';

const SECRET = 'E999 SECRET-hook-token-5be0d7';
const REAL = Buffer.from('E901 Periode gesperrt (the real answer)\r\n');
/** Passes while the name keeps being swapped: each may read the name again (the swapper puts it back after archiving). */
const PASSES = 30;

let sshd: SshdInstance;
let simulator: RossumSimulator;
const scratch = mkdtempSync(join(tmpdir(), 'rsb-ack-race-'));

beforeAll(async () => {
  sshd = await startSshd({ baseDir: join(scratch, 'sshd') });
  simulator = await RossumSimulator.start();
});
afterAll(async () => {
  await simulator?.close();
  await sshd?.stop();
});

const setups: Array<[string, () => { config: BridgeConfig; acksDir: string }]> = [
  ['sftp://', () => ({ config: ackBridgeConfig({ sshd, simulator }), acksDir: sshd.acksDir })],
  [
    'file://',
    () => {
      const acksDir = join(scratch, 'share-acks');
      mkdirSync(acksDir, { recursive: true });
      const base = ackBridgeConfig({ sshd, simulator });
      return {
        config: {
          ...base,
          targets: { ...base.targets, 'erp-out': targetConfigSchema.parse({ url: fileUrl(acksDir) }) },
        },
        acksDir,
      };
    },
  ],
];

let annotationId = 414_000;

describe.each(setups)('the acks process over %s with an ack name swapped for a symlink', (_label, setup) => {
  it('never puts the link target into Rossum or the log: the file is read as the real one or moved to invalid/', async () => {
    const { config, acksDir } = setup();
    const harness: AckHarness = await startAckHarness(config);
    annotationId++;
    const stem = `INV-RACE_${annotationId}`;
    simulator.addAnnotation(annotationId, { status: 'exported' });
    await harness.exported({ annotationId, fileName: `${stem}.xml`, mapping: 'erp-companion' });
    const secret = join(scratch, `secret-${annotationId}`);
    writeFileSync(secret, `${SECRET}\r\n`);
    const swapper = startSwapper(acksDir, `${stem}.err`, secret, REAL);
    try {
      await untilExists(join(acksDir, `${stem}.err`));
      for (let pass = 0; pass < PASSES; pass++) {
        await harness.acks.pass();
        await new Promise((resolve) => setTimeout(resolve, config.acks.minAgeMs));
      }
    } finally {
      await stopSwapper(swapper);
    }
    try {
      const told = JSON.stringify({ calls: simulator.calls, annotation: simulator.annotation(annotationId) });
      expect(told).not.toContain('SECRET-hook-token');
      expect(harness.log.text()).not.toContain('SECRET-hook-token');
      const invalid = existsSync(join(acksDir, 'invalid')) ? readdirSync(join(acksDir, 'invalid')) : [];
      // invalid/ holds whatever was under the name when it was moved: the symlink itself or the real file, never a copy of the secret.
      for (const name of invalid) {
        const path = join(acksDir, 'invalid', name);
        if (!lstatSync(path).isSymbolicLink()) expect(readFileSync(path)).toEqual(REAL);
      }
      const notes = simulator.annotation(annotationId).notes.map((note) => note.content);
      const readAsReal = notes.some((content) => content.includes('E901 Periode gesperrt'));
      expect(readAsReal || invalid.length > 0).toBe(true);
    } finally {
      await harness.close();
    }
  });
});
