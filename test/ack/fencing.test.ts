import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { bridgeConfigSchema } from '../../src/config/index.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { startAcks, type RunningAcks } from '../../src/process/index.ts';
import { CapturedLog } from '../support/bridge.ts';
import { RossumSimulator, type RecordedCall } from '../support/rossum-simulator.ts';
import { ROSSUM_PASSWORD, ROSSUM_USER } from './harness.ts';
import { rulesConfigInput, startRulesRig, type RulesRig } from './rossum-rules-harness.ts';

/**
 * Two acks replicas on one ledger, telling a Rossum that throttles (10 requests/s, 429 + Retry-After: 1 s)
 * with outcomes leased for far less than a delivery takes: the second replica takes over outcomes the first
 * still holds in its claim, and the fence before each write keeps Rossum from being told twice.
 */

const LEASE_MS = 300;
const FIRST = 640_001;
const ANNOTATIONS = Array.from({ length: 8 }, (_, i) => FIRST + i);
const login = {
  username: ROSSUM_USER,
  password: ROSSUM_PASSWORD,
  retry: { attempts: 4, minDelayMs: 10, maxDelayMs: 50 },
};

let simulator: RossumSimulator;
let rig: RulesRig | undefined;
let second: RunningAcks | undefined;

beforeEach(async () => {
  simulator = await RossumSimulator.start({ users: { [ROSSUM_USER]: ROSSUM_PASSWORD } });
});
afterEach(async () => {
  await second?.close();
  await rig?.close();
  await simulator.close();
});

/** Calls Rossum carried out (2xx): a throttled (429) call told Rossum nothing. */
const served = (calls: RecordedCall[]) => calls.filter((call) => call.status >= 200 && call.status < 300);
const statusPatches = (id: number) =>
  served(simulator.callsTo('PATCH', `/v1/annotations/${id}`)).filter(
    (call) => (call.body as { status?: string }).status === 'failed_export',
  );
const notePosts = (id: number) =>
  served(simulator.callsTo('POST', '/v1/notes')).filter((call) =>
    String((call.body as { annotation?: string }).annotation).endsWith(`/annotations/${id}`),
  );
const leaseLost = async (acks: RunningAcks): Promise<number> => {
  const text = (await acks.metrics.render()).body;
  return [...text.matchAll(/^bridge_ack_lease_lost_total\{[^}]*\} (\d+)/gm)].reduce((n, m) => n + Number(m[1]), 0);
};

describe('two acks replicas and a throttled Rossum (delivery outlasts the lease)', () => {
  it('each outcome is told to Rossum exactly once: one note and one failed_export PATCH per annotation', async () => {
    const acksSettings = { delivery: { leaseMs: LEASE_MS, retryMinMs: 50, retryMaxMs: 200 } };
    rig = await startRulesRig(simulator, login, acksSettings);
    for (const id of ANNOTATIONS) {
      simulator.addAnnotation(id, { status: 'exported' });
      await rig.exported(id);
      rig.erp.err(`INV-${id}`, [`E${id % 100} Buchung abgelehnt für ${id}`], 'utf8');
    }
    const config = bridgeConfigSchema.parse(
      rulesConfigInput(rig.dir, { baseUrl: simulator.apiUrl, ...login }, acksSettings),
    );
    const log = new CapturedLog();
    second = await startAcks(config, {
      logger: createLogger({ level: 'debug', destination: log.stream }),
      loop: false,
    });

    const first = rig.acks;
    const replicas = [first, second];
    const done = async () =>
      ANNOTATIONS.every((id) => simulator.annotation(id).status === 'failed_export') &&
      (await first.ledger.outcomeBacklog()).pending === 0;
    const started = Date.now();
    // Each replica on its own loop, as two processes would run: read, record, claim, deliver, again.
    await Promise.all(
      replicas.map(async (acks) => {
        for (let pass = 0; !(await done()); pass++) {
          if (pass > 400) throw new Error('outcomes not all delivered');
          await acks.pass();
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
      }),
    );
    const tookMs = Date.now() - started;

    // The situation under test happened: delivery took many leases, and outcomes changed hands mid-claim.
    expect(tookMs).toBeGreaterThan(4 * LEASE_MS);
    expect(served(simulator.calls).length).toBeGreaterThanOrEqual(ANNOTATIONS.length * 3);
    expect((await leaseLost(first)) + (await leaseLost(second))).toBeGreaterThan(0);

    for (const id of ANNOTATIONS) {
      expect(statusPatches(id), `failed_export PATCHes of ${id}`).toHaveLength(1);
      expect(notePosts(id), `notes posted on ${id}`).toHaveLength(1);
      expect(simulator.annotation(id).notes).toHaveLength(1);
      expect(simulator.annotation(id).metadata.erp_ack).toMatchObject({ result: 'rejected', state: 'done' });
    }
    const outcomes = (
      await Promise.all((await first.ledger.list({ limit: 100 })).map((record) => first.ledger.outcomes(record.id)))
    ).flat();
    expect(outcomes.map((outcome) => outcome.delivery)).toEqual(ANNOTATIONS.map(() => 'delivered'));
    expect(`${rig.log.text()}${log.text()}`).toMatch(/another acks process took this outcome over/);
  }, 90_000);
});
