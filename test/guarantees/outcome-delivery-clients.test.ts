import { afterEach, describe, expect, it, vi } from 'vitest';
import { ROSSUM_USER } from '../ack/harness.ts';
import {
  callLog,
  gauge,
  LEASE_MS,
  type Rig,
  rossumConfig,
  startRig,
  startSimulator,
  T0,
  rejection,
} from './outcome-delivery-rig.ts';

/** One client per Rossum, tokens kept alive between deliveries, and the outbox without metrics. */

let rig: Rig;
afterEach(async () => {
  vi.useRealTimers();
  await rig?.close();
});

describe('one client per Rossum', () => {
  it('rossum.baseUrl set: every export goes there, whatever its payload named, on one login', async () => {
    rig = await startRig();
    for (const [id, host] of [
      [851, 'https://a.rossum.app'],
      [852, 'https://b.rossum.app'],
    ] as const) {
      rig.simulator.addAnnotation(id, { status: 'exported' });
      await rig.verdict(await rig.exported(id, { rossumBaseUrl: host }), 'rejected', rejection);
    }
    rig.simulator.addAnnotation(853, { status: 'exported' });
    await rig.verdict(await rig.exported(853), 'rejected', rejection);

    await rig.delivery.pump();

    for (const id of [851, 852, 853]) expect(rig.simulator.annotation(id).status).toBe('failed_export');
    expect(rig.simulator.callsTo('POST', '/v1/auth/login')).toHaveLength(1);
  });

  it("no rossum.baseUrl: each export's own (allow-listed) Rossum, each with its own login", async () => {
    const [east, west] = [await startSimulator(), await startSimulator()];
    rig = await startRig({ simulator: east, rossum: { baseUrl: undefined, allowedHosts: ['127.0.0.1'] } });
    east.addAnnotation(854, { status: 'exported' });
    west.addAnnotation(855, { status: 'exported' });
    await rig.verdict(await rig.exported(854, { rossumBaseUrl: east.baseUrl }), 'rejected', rejection);
    await rig.verdict(await rig.exported(855, { rossumBaseUrl: west.baseUrl }), 'rejected', rejection);

    await rig.delivery.pump();
    await rig.verdict(await rig.exported(856, { rossumBaseUrl: west.baseUrl }), 'rejected', rejection);
    west.addAnnotation(856, { status: 'exported' });
    await rig.delivery.pump();
    await Promise.all([east.close(), west.close()]);

    expect(east.annotation(854).status).toBe('failed_export');
    expect(west.annotation(855).status).toBe('failed_export');
    expect(west.annotation(856).status).toBe('failed_export');
    expect(east.callsTo('POST', '/v1/auth/login')).toHaveLength(1);
    expect(west.callsTo('POST', '/v1/auth/login')).toHaveLength(1);
  });
});

describe('tokens kept alive', () => {
  it('each round renews a checked token-only client’s token when due, with nothing to deliver; a refusal then is reported', async () => {
    vi.useFakeTimers({ toFake: ['Date'], shouldAdvanceTime: true });
    const simulator = await startSimulator();
    rig = await startRig({
      simulator,
      rossum: {
        username: undefined,
        password: undefined,
        token: simulator.issueToken(),
        tokenLifetimeS: 60,
        tokenRenewBeforeS: 30,
      },
    });
    expect((await rig.delivery.checkCredentials()).state).toBe('accepted');
    expect(await rig.delivery.pump()).toBe(0);
    expect(callLog(simulator)).toEqual(['POST /v1/auth/token']);

    vi.setSystemTime(Date.now() + 31_000);
    expect(await rig.delivery.pump()).toBe(0);
    vi.setSystemTime(Date.now() + 31_000);
    simulator.expireAllTokens();
    expect(await rig.delivery.pump()).toBe(0);
    await simulator.close();

    expect(simulator.calls.map((call) => `${call.method} ${call.path} ${call.status}`)).toEqual([
      'POST /api/v1/auth/token 200',
      'POST /api/v1/auth/token 200',
      'POST /api/v1/auth/token 401',
    ]);
    expect(rig.delivery.credentialsState).toMatchObject({ state: 'refused', since: T0 });
    expect(await gauge(rig.metrics!.rossumCredentialsRefused)).toBe(1);
    expect(rig.logged('Fix: put a valid API token in rossum.token')).toHaveLength(1);
  });
});

describe('without metrics', () => {
  it('delivery, left alone, refusal, reload and both lost leases work the same, uncounted', async () => {
    rig = await startRig({ metrics: false });
    rig.simulator.addAnnotation(861, { status: 'exported' });
    rig.simulator.addAnnotation(862, { status: 'to_review' });
    const told = await rig.verdict(await rig.exported(861), 'rejected', { ...rejection, landedAt: T0 - 1_000 });
    const leftAlone = await rig.verdict(await rig.exported(862), 'rejected', rejection);
    await rig.delivery.pump();
    expect((await rig.outcome(told.id)).delivery).toBe('delivered');
    expect((await rig.outcome(leftAlone.id)).delivery).toBe('left_alone');
    expect(rig.delivery.credentialsState.state).toBe('accepted');

    rig.simulator.users[ROSSUM_USER] = 'changed';
    expect((await rig.delivery.checkCredentials()).state).toBe('refused');
    await rig.delivery.useRossumConfig(rossumConfig(rig.simulator, { password: 'changed' }));
    expect(rig.delivery.credentialsState.state).toBe('accepted');

    const anotherProcessClaims = async () => {
      rig.clock.now += LEASE_MS + 1;
      await rig.ledger.claimOutcomes('outbox-b', LEASE_MS, 100);
    };
    rig.simulator.addAnnotation(863, { status: 'exported' });
    await rig.verdict(await rig.exported(863), 'rejected', rejection);
    rig.after('outcomes', anotherProcessClaims);
    await rig.delivery.pump();
    expect(rig.logged('another acks process took this outcome over')).toHaveLength(1);

    rig.simulator.addAnnotation(864, { status: 'exported' });
    await rig.verdict(await rig.exported(864), 'rejected', rejection);
    let renewals = 0;
    rig.after('renewOutcomeLease', anotherProcessClaims, () => ++renewals === 2);
    await rig.delivery.pump();
    expect(rig.logged('could not record the delivery')).toHaveLength(1);
    expect(rig.metrics).toBeUndefined();
  });
});
