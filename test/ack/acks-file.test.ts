import { mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAcks, type RunningAcks } from '../../src/process/index.ts';
import { bridgeConfigSchema } from '../../src/config/index.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { createTarget } from '../../src/transport/index.ts';
import { ErpSimulator } from '../support/erp-simulator.ts';
import { RossumSimulator } from '../support/rossum-simulator.ts';
import { waitUntil } from '../support/serve-harness.ts';
import { CapturedLog, repoRoot } from '../support/bridge.ts';
import { exportThrough, ROSSUM_PASSWORD, ROSSUM_USER } from './harness.ts';

let simulator: RossumSimulator;
let acks: RunningAcks;
let erp: ErpSimulator;
const dir = mkdtempSync(join(tmpdir(), 'rsb-acks-file-'));

describe.each([{ usePolling: false }, { usePolling: true }])(
  'file:// ack folder watched by chokidar (usePolling: $usePolling)',
  ({ usePolling }) => {
    beforeAll(async () => {
      const root = join(dir, usePolling ? 'polling' : 'events');
      mkdirSync(join(root, 'inbound'), { recursive: true });
      erp = new ErpSimulator(join(root, 'outbound'));
      simulator = await RossumSimulator.start();
      const config = bridgeConfigSchema.parse({
        ledger: { url: `sqlite:${join(root, 'ledger.db')}` },
        mappingsDir: join(repoRoot, 'mappings'),
        targets: {
          share: { url: `file://${join(root, 'inbound')}` },
          'share-out': { url: `file://${join(root, 'outbound')}` },
        },
        routes: [{ mapping: 'erp-companion', target: 'share' }],
        rossum: { baseUrl: simulator.apiUrl, username: ROSSUM_USER, password: ROSSUM_PASSWORD },
        // A listing only every minute: a quick answer can only come from file events.
        acks: {
          pollIntervalMs: 60_000,
          minAgeMs: 100,
          usePolling,
          watchIntervalMs: 100,
          targets: { share: { folder: '.', readFrom: 'share-out' } },
          byMapping: { 'erp-companion': { convention: 'companion' } },
        },
      });
      acks = await startAcks(config, {
        logger: createLogger({ level: 'debug', destination: new CapturedLog().stream }),
      });
      const inbound = createTarget('share', config.targets.share!, { logger: createLogger({ level: 'silent' }) });
      simulator.addAnnotation(930001, { status: 'exported' });
      await exportThrough(acks.ledger, inbound, {
        annotationId: 930001,
        fileName: 'INV-1_930001.xml',
        mapping: 'erp-companion',
        bytes: Buffer.from('<x/>'),
      });
    });
    afterAll(async () => {
      await acks?.close();
      await simulator?.close();
    });

    it('an .err written to the mounted folder reaches Rossum within seconds, without waiting for the listing', async () => {
      // Let the first listing pass (at start) go by, so only the watcher can see the new file.
      await waitUntil(() => acks.service.loopPasses >= 1, 10_000, 'the first listing pass');
      const written = Date.now();
      erp.err('INV-1_930001', ['E42 Kostenstelle fehlt']);
      while (simulator.annotation(930001).status !== 'failed_export') {
        if (Date.now() - written > 10_000) throw new Error('Rossum was not told within 10 s');
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      expect(simulator.annotation(930001).notes[0]!.content).toContain('E42 Kostenstelle fehlt');
    });
  },
);
