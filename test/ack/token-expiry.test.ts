import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { bridgeConfigSchema } from '../../src/config/index.ts';
import { RossumSimulator } from '../support/rossum-simulator.ts';
import { outcomeOf, rulesConfigInput, startRulesRig, type RulesRig } from './rossum-rules-harness.ts';

/** Tokens expire (Rossum: at most 162 h). Nothing may be lost to that, and a renewable token never stops delivery. */

const IDS = [710001, 710002, 710003, 710004, 710005, 710006];
const retry = { attempts: 2, minDelayMs: 10, maxDelayMs: 20 };
let simulator: RossumSimulator;
let rig: RulesRig;

beforeEach(async () => {
  simulator = await RossumSimulator.start();
});
afterEach(async () => {
  await rig?.close();
  await simulator.close();
});

async function sixRejections(): Promise<number[]> {
  const exports: number[] = [];
  for (const id of IDS) {
    simulator.addAnnotation(id, { status: 'exported' });
    exports.push(await rig.exported(id));
    rig.erp.err(`INV-${id}`, [`E${id % 100} abgelehnt`], 'utf8');
  }
  return exports;
}

async function deliveries(exports: number[]): Promise<string[]> {
  return Promise.all(exports.map(async (id) => (await outcomeOf(rig.acks.ledger, id))?.delivery ?? 'none'));
}

function everyOneToldOnce(): void {
  for (const id of IDS) {
    const annotation = simulator.annotation(id);
    expect(annotation.status, `annotation ${id}`).toBe('failed_export');
    expect(annotation.notes, `annotation ${id}`).toHaveLength(1);
    expect(
      simulator
        .callsTo('PATCH', `/v1/annotations/${id}`)
        .filter((call) => call.status === 200 && (call.body as { status?: string }).status === 'failed_export'),
    ).toHaveLength(1);
  }
}

describe('a token that expires with nothing to renew it', () => {
  it('keeps every outcome pending (not failed), says so in readiness, metric, log and ledger; a restart with a new token delivers each exactly once', async () => {
    rig = await startRulesRig(
      simulator,
      { token: simulator.issueToken(), retry },
      { listen: { host: '127.0.0.1', port: 0 } },
    );
    simulator.expireAllTokens();
    const exports = await sixRejections();
    await rig.passUntil(async () =>
      (await Promise.all(exports.map(async (id) => (await outcomeOf(rig.acks.ledger, id))?.lastError ?? null))).every(
        (error) => error !== null,
      ),
    );
    for (let pass = 0; pass < 3; pass++) await rig.acks.pass();

    expect(await deliveries(exports)).toEqual(IDS.map(() => 'pending'));
    expect((await outcomeOf(rig.acks.ledger, exports[0]!))?.lastError).toMatch(/401.*rossum\.token.*SIGHUP/);
    expect(rig.acks.service.readiness()).toMatchObject({ ready: false, rossumCredentials: { state: 'refused' } });
    const readyz = await fetch(`${rig.acks.health!.url}/readyz`);
    expect(readyz.status).toBe(503);
    expect(await readyz.text()).toContain('refused');
    expect((await rig.acks.metrics.render()).body).toMatch(/^bridge_rossum_credentials_refused 1$/m);
    expect(rig.log.text()).toMatch(
      /Rossum refuses our credentials: no outcome is lost.*Fix: put a valid API token in rossum\.token and restart the acks process or send it SIGHUP/,
    );
    for (const id of IDS) expect(simulator.annotation(id)).toMatchObject({ status: 'exported', notes: [] });

    await rig.restart({ token: simulator.issueToken(), retry });
    await rig.passUntil(async () => (await deliveries(exports)).every((delivery) => delivery === 'delivered'));
    everyOneToldOnce();
    expect(rig.acks.service.readiness()).toMatchObject({ ready: true, rossumCredentials: { state: 'accepted' } });
  }, 90_000);

  it('a new token given by SIGHUP (config reload) resumes delivery at once, without a restart', async () => {
    rig = await startRulesRig(
      simulator,
      { token: simulator.issueToken(), retry },
      { listen: { host: '127.0.0.1', port: 0 }, delivery: { leaseMs: 2_000, retryMinMs: 50, retryMaxMs: 60_000 } },
    );
    simulator.expireAllTokens();
    const exports = await sixRejections();
    await rig.passUntil(
      async () =>
        (await deliveries(exports)).every((delivery) => delivery === 'pending') &&
        rig.acks.service.readiness().rossumCredentials.state === 'refused',
    );
    await rig.acks.pass();
    expect(await deliveries(exports)).toEqual(IDS.map(() => 'pending'));

    const reloaded = bridgeConfigSchema.parse(
      rulesConfigInput(rig.dir, { baseUrl: simulator.apiUrl, token: simulator.issueToken(), retry }),
    );
    await rig.acks.reloadRossum(reloaded.rossum!);
    // No waiting out the 60 s retry: the reload made every pending outcome due.
    await rig.passUntil(async () => (await deliveries(exports)).every((delivery) => delivery === 'delivered'), 20);
    everyOneToldOnce();
    expect((await fetch(`${rig.acks.health!.url}/readyz`)).status).toBe(200);
    expect((await rig.acks.metrics.render()).body).toMatch(/^bridge_rossum_credentials_refused 0$/m);
  }, 90_000);

  it('a token refused at start-up is reported at once, before any verdict', async () => {
    const token = simulator.issueToken();
    simulator.expireToken(token);
    rig = await startRulesRig(simulator, { token, retry });
    for (let i = 0; i < 50 && rig.acks.service.readiness().rossumCredentials.state !== 'refused'; i++)
      await new Promise((resolve) => setTimeout(resolve, 20));
    expect(rig.acks.service.readiness().ready).toBe(false);
    expect(rig.log.text()).toContain('Rossum refuses our credentials');
    expect(rig.log.text()).not.toContain(token);
  });
});

describe('a renewable token', () => {
  it('delivery never stops: verdicts keep reaching Rossum across several token lifetimes, without a single 401', async () => {
    rig = await startRulesRig(simulator, {
      token: simulator.issueToken(2_000),
      tokenLifetimeS: 2,
      tokenRenewBeforeS: 1,
      retry,
    });
    const exports: number[] = [];
    const started = Date.now();
    for (const id of IDS) {
      simulator.addAnnotation(id, { status: 'exported' });
      exports.push(await rig.exported(id));
      rig.erp.err(`INV-${id}`, [`E${id % 100} abgelehnt`], 'utf8');
      await rig.passUntil(async () => (await outcomeOf(rig.acks.ledger, exports.at(-1)!))?.delivery === 'delivered');
      await new Promise((resolve) => setTimeout(resolve, 900));
    }
    expect(Date.now() - started).toBeGreaterThan(5_000);
    everyOneToldOnce();
    expect(simulator.calls.filter((call) => call.status === 401)).toEqual([]);
    expect(simulator.callsTo('POST', '/v1/auth/token').length).toBeGreaterThanOrEqual(3);
  }, 90_000);
});
