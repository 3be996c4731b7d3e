import { afterEach, describe, expect, it } from 'vitest';
import type { AckOutcome } from '../../src/ledger/index.ts';
import { byLabel, callLog, LEASE_MS, OWNER, type Rig, rejection, startRig, T0 } from './outcome-delivery-rig.ts';

/**
 * The fence: each write to Rossum first renews this claim's lease, and an outcome another process claimed
 * since is dropped unwritten and unsettled, with the export's later outcomes. Also how `pump()` runs rounds.
 */

let rig: Rig;
afterEach(async () => rig?.close());

const renewals = () => rig.ledgerCalls.filter((call) => call === 'renewOutcomeLease').length;
const nonEmpty = (result: unknown) => Array.isArray(result) && result.length > 0;
/** Another acks process, after our lease ran out: it claims what is due and not leased. */
const anotherProcessClaims = async (): Promise<AckOutcome[]> => {
  rig.clock.now += LEASE_MS + 1;
  return rig.ledger.claimOutcomes('outbox-b', LEASE_MS, 100);
};

describe('the fence before each write', () => {
  it('renews the lease before the note and before the PATCH, and once more first when the claim is older than half the lease', async () => {
    rig = await startRig();
    const renewalsFor = async (id: number, claimAge: number | null): Promise<number> => {
      rig.simulator.addAnnotation(id, { status: 'exported' });
      await rig.verdict(await rig.exported(id), 'rejected', rejection);
      rig.ledgerCalls.length = 0;
      if (claimAge !== null)
        rig.after(
          'claimOutcomes',
          () => {
            rig.clock.now += claimAge;
          },
          nonEmpty,
        );
      await rig.delivery.pump();
      expect(rig.simulator.annotation(id).status).toBe('failed_export');
      return renewals();
    };

    expect(await renewalsFor(701, null)).toBe(2);
    expect(await renewalsFor(702, LEASE_MS / 2)).toBe(2);
    expect(await renewalsFor(703, LEASE_MS / 2 + 1)).toBe(3);
  });

  it('lost before the first write (another process claimed it): nothing sent, nothing settled, and the export’s later outcome stays with its owner too', async () => {
    rig = await startRig();
    rig.simulator.addAnnotation(711, { status: 'exported' });
    const exportId = await rig.exported(711);
    const invalid = await rig.verdict(exportId, 'invalid', { messages: [{ text: '?' }] });
    rig.simulator.injectFaults({ status: 503, method: 'GET', pathPrefix: '/v1/annotations' });
    await rig.delivery.pump();
    rig.clock.now = T0 + 10;
    const late = await rig.verdict(exportId, 'accepted');
    rig.clock.now = T0 + 1_000;
    const sent = rig.simulator.calls.length;
    // Claimed together, the late acceptance first (it was due first). Then our lease on the unreadable
    // answer's outcome runs out and another process claims it; the acceptance is still ours.
    rig.after(
      'claimOutcomes',
      async (claimed) => {
        expect((claimed as AckOutcome[]).map((outcome) => outcome.id)).toEqual([late.id, invalid.id]);
        expect(await rig.ledger.renewOutcomeLease(late.id, OWNER, 1, 10 * LEASE_MS)).toBe(true);
        expect((await anotherProcessClaims()).map((outcome) => outcome.id)).toEqual([invalid.id]);
      },
      nonEmpty,
    );

    expect(await rig.delivery.pump()).toBe(2);

    // In order: the unreadable answer first, which is no longer ours, so the acceptance is left to its owner.
    expect(rig.simulator.calls.length).toBe(sent);
    expect(await rig.outcome(invalid.id)).toMatchObject({
      delivery: 'pending',
      attempts: 3,
      lastError: expect.any(String),
    });
    expect(await rig.outcome(late.id)).toMatchObject({ delivery: 'pending', attempts: 1, lastError: null });
    expect(await byLabel(rig.metrics!.ackLeaseLost)).toEqual({ before_write: 1 });
    expect(rig.logged('another acks process took this outcome over')).toEqual([
      expect.objectContaining({
        level: 40,
        outcomeId: invalid.id,
        claim: 2,
        annotationId: 711,
        msg: 'another acks process took this outcome over (our lease ran out); dropped here without telling Rossum, the other process does',
      }),
    ]);
    expect(await byLabel(rig.metrics!.rossumUpdates)).toEqual({ retry: 1 });
  });

  it('lost while Rossum was read: the note is not sent, nor the PATCH after it', async () => {
    rig = await startRig();
    rig.simulator.addAnnotation(721, { status: 'exported' });
    const outcome = await rig.verdict(await rig.exported(721), 'rejected', rejection);
    rig.after('outcomes', anotherProcessClaims);

    await rig.delivery.pump();

    expect(callLog(rig.simulator)).toEqual(['POST /v1/auth/login', 'GET /v1/annotations/721']);
    expect(await rig.outcome(outcome.id)).toMatchObject({ delivery: 'pending', attempts: 2 });
    expect(await byLabel(rig.metrics!.ackLeaseLost)).toEqual({ before_write: 1 });
  });

  it('lost while Rossum was read: a PATCH without a note is not sent either', async () => {
    rig = await startRig();
    rig.simulator.addAnnotation(722, { status: 'failed_export' });
    const exportId = await rig.exported(722);
    await rig.verdict(exportId, 'invalid', { messages: [{ text: '?' }] });
    const late = await rig.verdict(exportId, 'accepted');
    // The late acceptance's own look at the newer outcomes (the second look of the round).
    rig.after('outcomes', anotherProcessClaims, () => rig.ledgerCalls.filter((c) => c === 'outcomes').length === 2);

    await rig.delivery.pump();

    expect(callLog(rig.simulator)).toEqual(['POST /v1/auth/login', 'GET /v1/annotations/722']);
    expect(await rig.outcome(late.id)).toMatchObject({ delivery: 'pending', attempts: 2 });
  });

  it('lost after the last write, at the settle: counted there; the process that took over finds the mark and writes nothing', async () => {
    rig = await startRig();
    rig.simulator.addAnnotation(731, { status: 'exported' });
    const outcome = await rig.verdict(await rig.exported(731), 'rejected', rejection);
    // After the PATCH's renewal (the second), before Rossum answers it.
    rig.after('renewOutcomeLease', anotherProcessClaims, () => renewals() === 2);

    expect(await rig.delivery.pump()).toBe(1);

    expect(rig.simulator.callsTo('PATCH', '/v1/annotations/731')).toHaveLength(1);
    expect(await rig.outcome(outcome.id)).toMatchObject({ delivery: 'pending', attempts: 2 });
    expect(await byLabel(rig.metrics!.ackLeaseLost)).toEqual({ at_settle: 1 });
    expect(rig.logged('could not record the delivery (another process took the outcome over)')).toEqual([
      expect.objectContaining({
        level: 40,
        err: `Ack outcome ${outcome.id} was taken over by another process before this one finished`,
      }),
    ]);
    expect(await byLabel(rig.metrics!.rossumUpdates)).toEqual({});

    rig.clock.now += LEASE_MS + 1;
    expect(await rig.outbox('outbox-b').pump()).toBe(1);
    expect(await rig.outcome(outcome.id)).toMatchObject({ delivery: 'delivered', result: 'already in Rossum' });
    expect(rig.simulator.annotation(731).notes).toHaveLength(1);
    expect(rig.simulator.callsTo('PATCH', '/v1/annotations/731')).toHaveLength(1);
  });

  it('lost at the settle of an export’s first outcome: its later outcome, still ours, is delivered', async () => {
    rig = await startRig();
    rig.simulator.addAnnotation(741, { status: 'failed_export' });
    const exportId = await rig.exported(741);
    const invalid = await rig.verdict(exportId, 'invalid', { messages: [{ text: '?' }] });
    const late = await rig.verdict(exportId, 'accepted');
    rig.after('outcomes', async () => {
      expect(await rig.ledger.renewOutcomeLease(late.id, OWNER, 1, 10 * LEASE_MS)).toBe(true);
      expect((await anotherProcessClaims()).map((outcome) => outcome.id)).toEqual([invalid.id]);
    });

    await rig.delivery.pump();

    expect(await byLabel(rig.metrics!.ackLeaseLost)).toEqual({ at_settle: 1 });
    expect(await rig.outcome(invalid.id)).toMatchObject({ delivery: 'pending' });
    expect(await rig.outcome(late.id)).toMatchObject({ delivery: 'delivered', result: 'status exported' });
  });

  it('a settle the ledger refuses for another reason is logged, not counted as a lost lease', async () => {
    rig = await startRig();
    rig.simulator.addAnnotation(751, { status: 'exported' });
    const outcome = await rig.verdict(await rig.exported(751), 'rejected', rejection);
    rig.after(
      'renewOutcomeLease',
      () => {
        rig.ledger.db.pragma('query_only = ON');
      },
      () => renewals() === 2,
    );
    rig.afterFailed('settleOutcome', () => {
      rig.ledger.db.pragma('query_only = OFF');
    });

    await rig.delivery.pump();

    expect(rig.logged('could not record the delivery')).toEqual([
      expect.objectContaining({ err: 'attempt to write a readonly database' }),
    ]);
    expect(await byLabel(rig.metrics!.ackLeaseLost)).toEqual({});
    expect((await rig.outcome(outcome.id)).delivery).toBe('pending');
  });
});

describe('pump()', () => {
  it('a call while a round runs joins it: one more round picks up what came in after its last claim', async () => {
    rig = await startRig();
    for (const id of [761, 762]) rig.simulator.addAnnotation(id, { status: 'exported' });
    await rig.verdict(await rig.exported(761), 'rejected', rejection);
    const second = await rig.exported(762);
    let joined: Promise<number> | undefined;
    rig.after(
      'claimOutcomes',
      async () => {
        await rig.verdict(second, 'rejected', rejection);
        joined = rig.delivery.pump();
      },
      (claimed) => Array.isArray(claimed) && claimed.length === 0,
    );

    const first = rig.delivery.pump();

    expect(await first).toBe(2);
    expect(joined).toBe(first);
    for (const id of [761, 762]) expect(rig.simulator.annotation(id).status).toBe('failed_export');
    expect(rig.ledgerCalls.filter((call) => call === 'claimOutcomes')).toHaveLength(4);
    expect(await rig.delivery.pump()).toBe(0);
  });

  it('exports go four at a time', async () => {
    rig = await startRig();
    for (let id = 771; id <= 776; id++) {
      rig.simulator.addAnnotation(id, { status: 'exported' });
      await rig.verdict(await rig.exported(id), 'rejected', rejection);
    }

    expect(await rig.delivery.pump()).toBe(6);

    let inFlight = 0;
    let most = 0;
    for (const call of rig.ledgerCalls) {
      if (call === 'get') most = Math.max(most, ++inFlight);
      if (call === 'settleOutcome') inFlight--;
    }
    expect(most).toBe(4);
    expect(await byLabel(rig.metrics!.rossumUpdates)).toEqual({ delivered: 6 });
  });
});
