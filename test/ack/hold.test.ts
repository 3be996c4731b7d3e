import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAcks, type RunningAcks, startBridge, type RunningBridge } from '../../src/process/index.ts';
import type { BridgeConfig } from '../../src/config/index.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { ErpSimulator } from '../support/erp-simulator.ts';
import { RossumSimulator } from '../support/rossum-simulator.ts';
import { startSshd, type SshdInstance } from '../support/sshd.ts';
import { ackTestConfig } from '../support/ack-config.ts';
import { CapturedLog, fixture, TEST_SECRET } from '../support/bridge.ts';
import { waitUntil } from '../support/serve-harness.ts';

let sshd: SshdInstance;
let simulator: RossumSimulator;
let erp: ErpSimulator;
let bridge: RunningBridge;
let acks: RunningAcks;
let config: BridgeConfig;
const log = new CapturedLog();

beforeAll(async () => {
  const dir = mkdtempSync(join(tmpdir(), 'rsb-hold-'));
  sshd = await startSshd({ baseDir: join(dir, 'sshd') });
  simulator = await RossumSimulator.start();
  erp = new ErpSimulator(sshd.acksDir);
  config = ackTestConfig({
    sshd,
    simulator,
    ledgerPath: join(dir, 'ledger.db'),
    mapping: 'generic-xml',
    ack: {
      convention: 'companion',
      companion: { encoding: 'windows-1252' },
      hold: { maxWaitMs: 2_500, retryAfterS: 1 },
    },
    acks: { pollIntervalMs: 100, minAgeMs: 50, delivery: { leaseMs: 2_000, retryMinMs: 50, retryMaxMs: 200 } },
    extra: { server: { host: '127.0.0.1', port: 0, secret: TEST_SECRET } },
  });
  const logger = createLogger({ level: 'debug', destination: log.stream });
  bridge = await startBridge(config, { logger });
  acks = await startAcks(config, { logger, holdGraceMs: 200 });
});

afterAll(async () => {
  await acks?.close();
  await bridge?.close();
  await simulator?.close();
  await sshd?.stop();
});

function payload(annotationId: number): Record<string, unknown> {
  const body = fixture('export-invoice.json');
  (body.annotation as { id: number }).id = annotationId;
  return body;
}

/** Polls the bridge answered with 503 ("not yet") so far. */
async function notYetAnswers(): Promise<number> {
  const { values } = await bridge.metrics.webhookRequests.get();
  return values.find((value) => value.labels.status === '503')?.value ?? 0;
}

/** The ERP: once the export lands in inbound/ (and `ready()` holds, if given), answer with `answer(stem)`. */
async function erpAnswers(
  annotationId: number,
  answer: (stem: string) => void,
  ready: () => boolean | Promise<boolean> = () => true,
): Promise<void> {
  const stem = `INV_INV-2024-00417_${annotationId}`;
  await waitUntil(() => existsSync(join(sshd.inboundDir, `${stem}.xml`)), 20_000, `export ${stem}.xml to arrive`);
  await waitUntil(ready, 20_000, `the ERP's moment to answer ${stem}`);
  answer(stem);
}

const hook = { hookUrl: '', secret: TEST_SECRET, retryDelayS: 0.01, pollIntervalS: 0.1 };

describe('held-export mode end to end (serve + acks, real sshd, simulated Rossum polling)', () => {
  it("an ERP rejection within the wait: Rossum gets 202, polls (503 = not yet), then 201 with the ERP's reasons → failed_export", async () => {
    const notYetBefore = await notYetAnswers();
    const [{ outcome, annotation }] = await Promise.all([
      simulator.exportAnnotation(payload(910001), { ...hook, hookUrl: bridge.url }),
      erpAnswers(
        910001,
        (stem) =>
          erp.err(stem, [
            'E102 Kreditor DE123456789 nicht im Stammsatz gefunden',
            'E207 Steuerkennzeichen V9 ungültig',
          ]),
        // After Rossum's first poll was told "not yet".
        async () => (await notYetAnswers()) > notYetBefore,
      ),
    ]);
    expect(annotation.status).toBe('failed_export');
    expect(outcome.attempts).toHaveLength(1);
    expect(outcome.attempts[0]!.statusCode).toBe(202);
    const polls = outcome.attempts[0]!.polls.map((poll) => poll.statusCode);
    expect(polls.at(-1)).toBe(201);
    expect(polls.slice(0, -1).every((status) => status === 503)).toBe(true);
    expect(polls.length).toBeGreaterThan(1);
    expect(outcome.messages.map((m) => [m.type, m.content])).toEqual([
      ['error', expect.stringMatching(/E102 Kreditor DE123456789 nicht im Stammsatz gefunden$/)],
      ['error', expect.stringMatching(/E207 Steuerkennzeichen V9 ungültig$/)],
    ]);
    // The poll reply told Rossum: the ack loop must not flag it a second time through the API.
    await waitForOutcome(910001, 'by_hold');
    expect(
      simulator
        .callsTo('POST', '/v1/notes')
        .filter((call) => JSON.stringify(call.body).includes('/annotations/910001')),
    ).toEqual([]);
    expect(simulator.callsTo('PATCH', '/v1/annotations/910001')).toEqual([]);
  });

  it('an ERP acceptance within the wait → exported with an info message naming it', async () => {
    const [{ outcome, annotation }] = await Promise.all([
      simulator.exportAnnotation(payload(910002), { ...hook, hookUrl: bridge.url }),
      erpAnswers(910002, (stem) => erp.ok(stem)),
    ]);
    expect(annotation.status).toBe('exported');
    expect(outcome.finalStatusCode).toBe(201);
    expect(outcome.messages).toEqual([
      expect.objectContaining({
        type: 'info',
        content: expect.stringMatching(/^The ERP accepted INV_INV-2024-00417_910002\.xml/),
      }),
    ]);
  });

  it('no answer within the wait: success saying the ack is still awaited; a later rejection is flagged through the API', async () => {
    const { outcome, annotation } = await simulator.exportAnnotation(payload(910003), { ...hook, hookUrl: bridge.url });
    expect(annotation.status).toBe('exported');
    expect(outcome.finalStatusCode).toBe(201);
    expect(outcome.messages[0]!.content).toMatch(/the ERP has not answered yet/);
    await erpAnswers(910003, (stem) => erp.err(stem, ['E999 Periode geschlossen']));
    const deadline = Date.now() + 15_000;
    while (simulator.annotation(910003).status !== 'failed_export') {
      if (Date.now() > deadline) throw new Error('the late rejection never reached Rossum');
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(simulator.annotation(910003).notes.map((note) => note.content)).toEqual([
      expect.stringContaining('E999 Periode geschlossen'),
    ]);
  });

  it('a poll URL with a wrong token reveals nothing', async () => {
    const response = await fetch(`${bridge.url}/held/1/not-the-token`);
    expect(response.status).toBe(404);
  });
});

async function waitForOutcome(annotationId: number, delivery: string): Promise<void> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const [record] = await acks.ledger.list({ annotationId });
    const outcomes = record ? await acks.ledger.outcomes(record.id) : [];
    if (outcomes.some((outcome) => outcome.delivery === delivery)) return;
    if (Date.now() > deadline)
      throw new Error(`outcome of ${annotationId} never became ${delivery}: ${JSON.stringify(outcomes)}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
