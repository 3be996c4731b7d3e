import { afterEach, describe, expect, it } from 'vitest';
import { ROSSUM_USER } from '../ack/harness.ts';
import {
  byLabel,
  callLog,
  closedPortUrl,
  gauge,
  type Rig,
  rossumConfig,
  startRig,
  startSimulator,
  T0,
  rejection,
} from './outcome-delivery-rig.ts';

/**
 * Credentials Rossum refuses are not a verdict on any outcome: every outcome waits (one probe per wait, no
 * other call), the refusal is logged once with its fix and shown by the gauge, and delivery resumes when
 * Rossum accepts them again or new ones are loaded.
 */

let rig: Rig;
afterEach(async () => rig?.close());

const WRONG = 'not the password';
const LOGIN_REFUSED = 'Rossum answered POST /v1/auth/login with HTTP 401: Unable to log in with provided credentials.';
const USER_FIX =
  'Rossum refuses our credentials: no outcome is lost, they wait in the ledger. Fix: check rossum.username/password (the user may be locked or its password changed), then restart the acks process or send it SIGHUP';
const TOKEN_FIX =
  'Rossum refuses our credentials: no outcome is lost, they wait in the ledger. Fix: put a valid API token in rossum.token and restart the acks process or send it SIGHUP (or configure rossum.username/password so it logs in by itself)';
const tokenOnly = (token: string) => ({ username: undefined, password: undefined, token });
const logins = () => rig.simulator.callsTo('POST', '/v1/auth/login').length;

describe('refused credentials', () => {
  it('every outcome waits until retryMaxMs after the refusal without a call; then one probe; accepted again, both are delivered', async () => {
    rig = await startRig({ rossum: { password: WRONG } });
    rig.simulator.addAnnotation(801, { status: 'exported' });
    rig.simulator.addAnnotation(802, { status: 'exported' });
    const first = await rig.verdict(await rig.exported(801), 'rejected', rejection);

    await rig.delivery.pump();

    expect(await rig.outcome(first.id)).toMatchObject({
      delivery: 'pending',
      lastError: LOGIN_REFUSED,
      nextAttemptAt: T0 + 16_000,
    });
    expect(rig.delivery.credentialsState).toEqual({ state: 'refused', reason: LOGIN_REFUSED, since: T0 });
    expect(await gauge(rig.metrics!.rossumCredentialsRefused)).toBe(1);
    expect(rig.logged('Rossum refuses our credentials')).toEqual([
      expect.objectContaining({ level: 50, msg: USER_FIX, err: LOGIN_REFUSED }),
    ]);

    rig.clock.now = T0 + 5;
    const second = await rig.verdict(await rig.exported(802), 'rejected', rejection);
    await rig.delivery.pump();
    expect(await rig.outcome(second.id)).toMatchObject({
      delivery: 'pending',
      lastError: `waiting for Rossum to accept our credentials: ${LOGIN_REFUSED}`,
      nextAttemptAt: T0 + 16_000,
    });
    expect(callLog(rig.simulator)).toEqual(['POST /v1/auth/login']);

    rig.clock.now = T0 + 15_999;
    expect(await rig.delivery.pump()).toBe(0);
    rig.clock.now = T0 + 16_000;
    expect(await rig.delivery.pump()).toBe(2);
    expect(logins()).toBe(2);
    for (const outcome of [first, second]) expect((await rig.outcome(outcome.id)).nextAttemptAt).toBe(T0 + 32_000);
    // Still the first refusal: one log line, its time kept.
    expect(rig.delivery.credentialsState).toMatchObject({ state: 'refused', since: T0 });
    expect(rig.logged('Rossum refuses our credentials')).toHaveLength(1);

    rig.simulator.users[ROSSUM_USER] = WRONG;
    rig.clock.now = T0 + 32_000;
    await rig.delivery.pump();

    for (const id of [801, 802]) expect(rig.simulator.annotation(id).status).toBe('failed_export');
    expect(rig.delivery.credentialsState).toEqual({ state: 'accepted', since: T0 + 32_000 });
    expect(await gauge(rig.metrics!.rossumCredentialsRefused)).toBe(0);
    expect(rig.logged('Rossum accepts our credentials again; delivering the outcomes that waited')).toEqual([
      expect.objectContaining({ level: 30 }),
    ]);
    expect(await byLabel(rig.metrics!.rossumUpdates)).toEqual({ retry: 4, delivered: 2 });
  });

  it('a token Rossum refuses: the fix says to configure a new token', async () => {
    const simulator = await startSimulator();
    const token = simulator.issueToken();
    simulator.expireToken(token);
    rig = await startRig({ simulator, rossum: tokenOnly(token) });
    const outcome = await rig.verdict(await rig.exported(811), 'rejected', rejection);

    await rig.delivery.pump();
    await simulator.close();

    expect((await rig.outcome(outcome.id)).lastError).toMatch(/^Rossum answered POST \/v1\/auth\/token with HTTP 401/);
    expect(rig.logged('Rossum refuses our credentials')).toEqual([expect.objectContaining({ msg: TOKEN_FIX })]);
    expect(rig.logged(token)).toEqual([]);
  });
});

describe('checkCredentials()', () => {
  it('logs in against rossum.baseUrl once; deliveries use that login', async () => {
    rig = await startRig();
    rig.simulator.addAnnotation(821, { status: 'exported' });

    expect(await rig.delivery.checkCredentials()).toEqual({ state: 'accepted', since: T0 });

    rig.clock.now = T0 + 5_000;
    await rig.verdict(await rig.exported(821), 'rejected', rejection);
    await rig.delivery.pump();
    expect(callLog(rig.simulator)).toEqual([
      'POST /v1/auth/login',
      'GET /v1/annotations/821',
      'POST /v1/notes',
      'PATCH /v1/annotations/821',
    ]);
    expect(rig.delivery.credentialsState).toEqual({ state: 'accepted', since: T0 });
    expect(await gauge(rig.metrics!.rossumCredentialsRefused)).toBe(0);
    expect(rig.logged('accepts our credentials again')).toEqual([]);
  });

  it('refused at start-up: reported at once; outcomes wait without a call; accepted at the next check, delivery resumes at once', async () => {
    rig = await startRig({ rossum: { password: WRONG } });
    rig.simulator.addAnnotation(822, { status: 'exported' });

    expect(await rig.delivery.checkCredentials()).toEqual({ state: 'refused', reason: LOGIN_REFUSED, since: T0 });
    expect(await gauge(rig.metrics!.rossumCredentialsRefused)).toBe(1);
    expect(rig.logged(USER_FIX)).toHaveLength(1);
    const outcome = await rig.verdict(await rig.exported(822), 'rejected', rejection);
    await rig.delivery.pump();
    expect(await rig.outcome(outcome.id)).toMatchObject({ delivery: 'pending', nextAttemptAt: T0 + 16_000 });
    expect(logins()).toBe(1);

    rig.simulator.users[ROSSUM_USER] = WRONG;
    rig.clock.now = T0 + 100;
    expect(await rig.delivery.checkCredentials()).toEqual({ state: 'accepted', since: T0 + 100 });
    expect(rig.logged('Rossum accepts our credentials again')).toHaveLength(1);
    expect(await gauge(rig.metrics!.rossumCredentialsRefused)).toBe(0);
    rig.simulator.addAnnotation(823, { status: 'exported' });
    await rig.verdict(await rig.exported(823), 'rejected', rejection);
    await rig.delivery.pump();
    expect(rig.simulator.annotation(823).status).toBe('failed_export');
  });

  it('Rossum unreachable at start-up: a warning, the credentials stay unchecked', async () => {
    rig = await startRig({ rossum: { baseUrl: await closedPortUrl() } });

    expect(await rig.delivery.checkCredentials()).toEqual({ state: 'unchecked' });

    expect(
      rig.logged(
        'could not check the Rossum credentials at start-up (Rossum unreachable?); outcomes wait in the ledger until it answers',
      ),
    ).toEqual([expect.objectContaining({ level: 40, err: expect.stringMatching(/^Rossum unreachable/) })]);
    expect(rig.logged('Rossum refuses')).toEqual([]);
  });

  it("without rossum.baseUrl: nothing to check yet (each export's Rossum is checked at its first call)", async () => {
    rig = await startRig({ rossum: { baseUrl: undefined } });

    expect(await rig.delivery.checkCredentials()).toEqual({ state: 'unchecked' });

    expect(rig.simulator.calls).toEqual([]);
    expect(rig.logged("no rossum.baseUrl: credentials are checked at the first call to each export's Rossum")).toEqual([
      expect.objectContaining({ level: 30 }),
    ]);
  });
});

describe('useRossumConfig() (SIGHUP)', () => {
  it('a new token: checked, the outcomes that waited are due at once and delivered', async () => {
    const simulator = await startSimulator();
    const token = simulator.issueToken();
    simulator.expireToken(token);
    rig = await startRig({ simulator, rossum: tokenOnly(token) });
    simulator.addAnnotation(831, { status: 'exported' });
    const outcome = await rig.verdict(await rig.exported(831), 'rejected', rejection);
    await rig.delivery.pump();
    expect((await rig.outcome(outcome.id)).nextAttemptAt).toBe(T0 + 16_000);

    rig.clock.now = T0 + 50;
    await rig.delivery.useRossumConfig(rossumConfig(simulator, tokenOnly(simulator.issueToken())));
    await simulator.close();

    expect(await rig.outcome(outcome.id)).toMatchObject({ delivery: 'delivered', deliveredAt: T0 + 50 });
    expect(rig.logged('Rossum settings reloaded; pending outcomes are delivered now')).toEqual([
      expect.objectContaining({ level: 30, pending: 1 }),
    ]);
    expect(rig.delivery.credentialsState).toEqual({ state: 'accepted', since: T0 + 50 });
    expect(await gauge(rig.metrics!.rossumCredentialsRefused)).toBe(0);
  });

  it('settings without baseUrl: the refusal is forgotten (unchecked, gauge 0) and delivery goes to the payload’s Rossum', async () => {
    const simulator = await startSimulator();
    rig = await startRig({ simulator, rossum: { password: WRONG } });
    expect((await rig.delivery.checkCredentials()).state).toBe('refused');

    await rig.delivery.useRossumConfig(rossumConfig(simulator, { baseUrl: undefined, allowedHosts: ['127.0.0.1'] }));

    expect(rig.delivery.credentialsState).toEqual({ state: 'unchecked' });
    expect(await gauge(rig.metrics!.rossumCredentialsRefused)).toBe(0);
    expect(rig.logged('Rossum settings reloaded')).toEqual([expect.objectContaining({ pending: 0 })]);
    simulator.addAnnotation(832, { status: 'exported' });
    await rig.verdict(await rig.exported(832, { rossumBaseUrl: simulator.baseUrl }), 'rejected', rejection);
    await rig.delivery.pump();
    await simulator.close();
    expect(simulator.annotation(832).status).toBe('failed_export');
    expect(rig.delivery.credentialsState).toEqual({ state: 'accepted', since: T0 });
    expect(rig.logged('accepts our credentials again')).toEqual([]);
  });
});

describe("a token-only client's first call renews the token", () => {
  it('renewal first, then the delivery; the next delivery does not renew again', async () => {
    const simulator = await startSimulator();
    rig = await startRig({ simulator, rossum: tokenOnly(simulator.issueToken()) });
    for (const id of [841, 842]) simulator.addAnnotation(id, { status: 'exported' });
    await rig.verdict(await rig.exported(841), 'accepted', { erpReference: 'A' });
    await rig.delivery.pump();
    await rig.verdict(await rig.exported(842), 'accepted', { erpReference: 'B' });
    await rig.delivery.pump();
    await simulator.close();

    expect(callLog(simulator)).toEqual([
      'POST /v1/auth/token',
      'GET /v1/annotations/841',
      'PATCH /v1/annotations/841',
      'GET /v1/annotations/842',
      'PATCH /v1/annotations/842',
    ]);
  });

  it('a Rossum without the renewal endpoint (404) still gets the verdict, once warned', async () => {
    const simulator = await startSimulator();
    rig = await startRig({ simulator, rossum: tokenOnly(simulator.issueToken()) });
    simulator.addAnnotation(843, { status: 'exported' });
    simulator.injectFaults({ status: 404, method: 'POST', pathPrefix: '/v1/auth/token' });
    const outcome = await rig.verdict(await rig.exported(843), 'accepted', { erpReference: 'C' });

    await rig.delivery.pump();
    await simulator.close();

    expect((await rig.outcome(outcome.id)).delivery).toBe('delivered');
    expect(rig.logged('could not check the Rossum credentials; delivering anyway')).toEqual([
      expect.objectContaining({
        level: 40,
        err: 'Rossum answered POST /v1/auth/token with HTTP 404: Injected fault 404',
      }),
    ]);
  });

  it('a renewal Rossum cannot answer now (503): the outcome waits, nothing else is sent', async () => {
    const simulator = await startSimulator();
    rig = await startRig({ simulator, rossum: tokenOnly(simulator.issueToken()) });
    simulator.addAnnotation(844, { status: 'exported' });
    simulator.injectFaults({ status: 503, method: 'POST', pathPrefix: '/v1/auth/token' });
    const outcome = await rig.verdict(await rig.exported(844), 'accepted', { erpReference: 'D' });

    await rig.delivery.pump();
    await simulator.close();

    expect(await rig.outcome(outcome.id)).toMatchObject({ delivery: 'pending', nextAttemptAt: T0 + 1_000 });
    expect(callLog(simulator)).toEqual(['POST /v1/auth/token']);
    expect(rig.delivery.credentialsState).toEqual({ state: 'unchecked' });
  });
});
