import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RossumSimulator } from '../support/rossum-simulator.ts';
import { ROSSUM_PASSWORD, ROSSUM_USER } from './harness.ts';
import { outcomeOf, startRulesRig, type RulesRig } from './rossum-rules-harness.ts';
import { cliEntry } from '../support/cli-entry.ts';

let simulator: RossumSimulator;
let rig: RulesRig;
let statusConfig: string;
const exports: Record<string, number> = {};

beforeAll(async () => {
  simulator = await RossumSimulator.start({ users: { [ROSSUM_USER]: ROSSUM_PASSWORD } });
  rig = await startRulesRig(simulator, {
    username: ROSSUM_USER,
    password: ROSSUM_PASSWORD,
    retry: { attempts: 1, minDelayMs: 10, maxDelayMs: 10 },
  });
  simulator.addAnnotation(810001, { status: 'exported' });
  simulator.addAnnotation(810002, { status: 'exported' });
  simulator.addAnnotation(810003, { status: 'exported' });
  exports.told = await rig.exported(810001);
  exports.leftAlone = await rig.exported(810002);
  exports.pending = await rig.exported(810003);
  simulator.operatorSets(810002, 'to_review');
  simulator.beginExport(810003);
  for (const id of [810001, 810002, 810003]) rig.erp.err(`INV-${id}`, [`E${id % 10} abgelehnt`], 'utf8');
  await rig.passUntil(async () => {
    const [told, alone, pending] = await Promise.all([
      outcomeOf(rig.acks.ledger, exports.told!),
      outcomeOf(rig.acks.ledger, exports.leftAlone!),
      outcomeOf(rig.acks.ledger, exports.pending!),
    ]);
    return told?.delivery === 'delivered' && alone?.delivery === 'left_alone' && (pending?.attempts ?? 0) >= 2;
  });
  // What an operator's config looks like: secrets from the environment. `status` needs none of them.
  statusConfig = join(rig.dir, 'operator.yaml');
  writeFileSync(
    statusConfig,
    [
      'server:',
      '  secret: ${BRIDGE_WEBHOOK_SECRET}',
      'ledger:',
      '  url: sqlite:./ledger.db',
      'mappingsDir: ./mappings',
      'targets:',
      `  share: { url: "file://${join(rig.dir, 'inbound')}" }`,
      'routes: [{ mapping: erp-companion, target: share }]',
      'rossum:',
      '  baseUrl: https://example.rossum.app/api',
      '  token: ${ROSSUM_TOKEN}',
      '',
    ].join('\n'),
  );
}, 60_000);

afterAll(async () => {
  await rig?.close();
  await simulator?.close();
});

const status = async (...args: string[]): Promise<string> => {
  const env = { ...process.env };
  delete env.BRIDGE_WEBHOOK_SECRET;
  delete env.ROSSUM_TOKEN;
  const { stdout } = await promisify(execFile)(
    process.execPath,
    [cliEntry(), 'status', '--config', statusConfig, ...args],
    { env },
  );
  return stdout;
};

describe('`status` tells whether Rossum has been told, from the ledger alone', () => {
  it('lists told / left alone / pending (since, attempts, last error) without the webhook secret or Rossum token in the environment', async () => {
    const listed = JSON.parse(await status('--json')) as Array<{
      annotationId: number;
      rossum: {
        state: string;
        attempts: number;
        pendingSince: string | null;
        lastError: string | null;
        result: string | null;
        text: string;
      };
    }>;
    const byId = new Map(listed.map((entry) => [entry.annotationId, entry.rossum]));
    expect(byId.get(810001)).toMatchObject({
      state: 'told',
      result: 'status failed_export',
      text: expect.stringMatching(/^told \(rejected: status failed_export\) at /),
    });
    expect(byId.get(810002)).toMatchObject({
      state: 'left_alone',
      text: 'left alone: annotation was in to_review; verdict posted as a note',
    });
    expect(byId.get(810003)).toMatchObject({
      state: 'pending',
      pendingSince: expect.any(String),
      lastError: expect.stringContaining('still exporting'),
    });
    expect(byId.get(810003)?.attempts).toBeGreaterThanOrEqual(2);
    expect(byId.get(810003)?.text).toMatch(/^pending since .*, \d+ attempts, last error: annotation still exporting/);

    const table = await status();
    expect(table).toMatch(/ROSSUM/);
    expect(table).toMatch(/810002 .*left alone: annotation was in to_review/);

    const history = await status('810003');
    expect(history).toMatch(/Rossum: pending since .* attempts, last error: annotation still exporting/);
  }, 60_000);
});
