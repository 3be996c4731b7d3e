import { afterEach, describe, expect, it } from 'vitest';
import { ANNOTATION_STATUSES } from '../../src/rossum/index.ts';
import { byLabel, callLog, gauge, type Rig, rejection, signature, startRig, T0 } from './outcome-delivery-rig.ts';

/**
 * What the outbox does with the annotation it finds: a status someone else set is left alone (the verdict
 * goes into a note), a note is posted once (a retry finds it, on any page), and a held export's poll reply
 * tells Rossum while the hold lasts.
 */

let rig: Rig;
afterEach(async () => rig?.close());

const rejectedNote = (id: number) => `The ERP rejected INV-${id}.xml — ack INV-${id}.err:\nE102 Kreditor fehlt`;
const kept = (status: string) =>
  `The bridge did not change the annotation's status: it was in ${status} (moved by an operator or another system).`;
const notesOf = (id: number) => rig.simulator.annotation(id).notes.map((note) => note.content);

/** Every status but the export's own results, `exporting` (waited for) and `purged` (gone): someone else moved it there. */
const NOT_OURS = ANNOTATION_STATUSES.filter(
  (status) => !['exporting', 'exported', 'failed_export', 'purged'].includes(status),
);

describe('left alone: a status the bridge did not set', () => {
  it('each one: the status is kept, the verdict and why go into a note, counted by status and warned', async () => {
    rig = await startRig();
    const outcomes = new Map<string, number>();
    for (const [i, status] of NOT_OURS.entries()) {
      rig.simulator.addAnnotation(600 + i, { status });
      outcomes.set(status, (await rig.verdict(await rig.exported(600 + i), 'rejected', rejection)).id);
    }

    expect(await rig.delivery.pump()).toBe(NOT_OURS.length);

    for (const [i, status] of NOT_OURS.entries()) {
      const id = outcomes.get(status)!;
      expect(rig.simulator.annotation(600 + i).status).toBe(status);
      expect(notesOf(600 + i)).toEqual([`${rejectedNote(600 + i)}\n${kept(status)}\n${signature(id)}`]);
      expect(await rig.outcome(id)).toMatchObject({
        delivery: 'left_alone',
        result: `left alone: annotation was in ${status}; verdict posted as a note`,
      });
      expect(
        rig.logged(
          `Rossum status left alone: the annotation was in ${status} (moved by an operator or another system); the verdict was posted as a note`,
        ),
      ).toEqual([expect.objectContaining({ level: 40, rossumStatus: status, annotationId: 600 + i })]);
    }
    expect(rig.simulator.calls.filter((call) => call.method === 'PATCH')).toEqual([]);
    expect(await byLabel(rig.metrics!.ackLeftAlone)).toEqual(Object.fromEntries(NOT_OURS.map((s) => [s, 1])));
    expect(await byLabel(rig.metrics!.rossumUpdates)).toEqual({ left_alone: NOT_OURS.length });
  });

  it('a late acceptance: the note says it in words, with the file it was uploaded as and the ERP reference', async () => {
    rig = await startRig();
    rig.simulator.addAnnotation(621, { status: 'to_review' });
    rig.simulator.addAnnotation(622, { status: 'confirmed' });
    const withReference = await rig.exported(621, { remotePath: 'out/INV-621_v2.xml' });
    const without = await rig.exported(622);
    for (const id of [withReference, without]) await rig.verdict(id, 'invalid', { messages: [{ text: '?' }] });
    const late = await rig.verdict(withReference, 'accepted', { erpReference: '4711' });
    const lateToo = await rig.verdict(without, 'accepted');

    await rig.delivery.pump();

    expect(notesOf(621)).toEqual([
      `The ERP accepted (late) out/INV-621_v2.xml (ERP reference 4711). ${kept('to_review')}\n${signature(late.id)}`,
    ]);
    expect(notesOf(622)).toEqual([
      `The ERP accepted (late) INV-622.xml. ${kept('confirmed')}\n${signature(lateToo.id)}`,
    ]);
  });
});

describe('the note is posted once', () => {
  it('a retry after the note went out looks for it on every page (Rossum pages by 20) and does not post it again', async () => {
    rig = await startRig();
    const annotation = rig.simulator.addAnnotation(631, { status: 'exported' });
    for (let i = 0; i < 20; i++)
      annotation.notes.push({
        id: 9_000 + i,
        type: 'rejection',
        content: `an operator's note ${i}`,
        annotation: rig.simulator.annotationUrl(631),
        createdAt: new Date(T0).toISOString(),
      });
    rig.simulator.injectFaults({ status: 503, method: 'PATCH' });
    const outcome = await rig.verdict(await rig.exported(631), 'rejected', rejection);

    await rig.delivery.pump();
    expect(await rig.outcome(outcome.id)).toMatchObject({ delivery: 'pending', noteAttempted: true });
    // The first attempt does not look: nothing can be there yet.
    expect(rig.simulator.callsTo('GET', '/v1/notes')).toEqual([]);

    rig.clock.now = T0 + 1_000;
    await rig.delivery.pump();

    expect(rig.simulator.callsTo('GET', '/v1/notes')).toHaveLength(2);
    expect(rig.simulator.callsTo('POST', '/v1/notes')).toHaveLength(1);
    expect(notesOf(631).filter((note) => note.includes(signature(outcome.id)))).toHaveLength(1);
    expect(await rig.outcome(outcome.id)).toMatchObject({ delivery: 'delivered' });
  });

  it('a retry after a note that never reached Rossum posts it', async () => {
    rig = await startRig();
    rig.simulator.addAnnotation(632, { status: 'exported' });
    rig.simulator.injectFaults({ status: 503, method: 'POST', pathPrefix: '/v1/notes' });
    const outcome = await rig.verdict(await rig.exported(632), 'rejected', rejection);

    await rig.delivery.pump();
    rig.clock.now = T0 + 1_000;
    await rig.delivery.pump();

    expect(rig.simulator.callsTo('GET', '/v1/notes')).toHaveLength(1);
    expect(notesOf(632)).toEqual([`${rejectedNote(632)}\n${signature(outcome.id)}`]);
    expect(rig.simulator.annotation(632).status).toBe('failed_export');
  });

  it("a note longer than Rossum's limit is cut before the signature, which survives whole", async () => {
    rig = await startRig();
    rig.simulator.addAnnotation(633, { status: 'exported' });
    const long = [1, 2, 3].map((n) => ({ code: `E${n}`, text: `${n}`.repeat(2_000) }));
    const outcome = await rig.verdict(await rig.exported(633), 'rejected', { messages: long });

    await rig.delivery.pump();

    const [note] = notesOf(633);
    expect(Array.from(note ?? '')).toHaveLength(4_096);
    expect(note?.startsWith('The ERP rejected INV-633.xml')).toBe(true);
    expect(note?.endsWith(`…\n${signature(outcome.id)}`)).toBe(true);
  });
});

describe('held exports', () => {
  it('while Rossum polls (until the hold ends + grace) the poll reply tells it; exactly then the outbox does', async () => {
    rig = await startRig({ holdGraceMs: 2_000 });
    rig.simulator.addAnnotation(641, { status: 'exported' });
    const exportId = await rig.exported(641, { holdUntil: T0 + 10_000 });
    const outcome = await rig.verdict(exportId, 'rejected', rejection);

    await rig.delivery.pump();

    expect(await rig.outcome(outcome.id)).toMatchObject({
      delivery: 'pending',
      lastError: 'Rossum is polling the held export; its reply carries this outcome',
      nextAttemptAt: T0 + 12_000,
    });
    expect(rig.simulator.calls).toEqual([]);
    // Nobody asked Rossum: the credentials are as unknown as before.
    expect(rig.delivery.credentialsState).toEqual({ state: 'unchecked' });

    rig.clock.now = T0 + 12_000;
    await rig.delivery.pump();

    expect(await rig.outcome(outcome.id)).toMatchObject({ delivery: 'delivered' });
    expect(rig.simulator.annotation(641).status).toBe('failed_export');
    expect((await rig.ledger.get(exportId))?.holdState).toBe('released');
  });

  it('the grace is 5 s unless configured', async () => {
    rig = await startRig();
    const outcome = await rig.verdict(await rig.exported(642, { holdUntil: T0 + 10_000 }), 'rejected', rejection);

    await rig.delivery.pump();

    expect((await rig.outcome(outcome.id)).nextAttemptAt).toBe(T0 + 15_000);
  });

  it('answered by the poll reply: settled by_hold, no call to Rossum', async () => {
    rig = await startRig();
    const exportId = await rig.exported(643, { holdUntil: T0 + 10_000 });
    await rig.ledger.moveHold(exportId, ['pending'], 'answered');
    const outcome = await rig.verdict(exportId, 'rejected', rejection);

    await rig.delivery.pump();

    expect(await rig.outcome(outcome.id)).toMatchObject({
      delivery: 'by_hold',
      result: 'told by the held export reply',
    });
    expect(rig.simulator.calls).toEqual([]);
    expect(rig.delivery.credentialsState).toEqual({ state: 'unchecked' });
    expect(await byLabel(rig.metrics!.rossumUpdates)).toEqual({ by_hold: 1 });
  });

  it('the poll reply answers while the outbox releases the hold: by_hold, not told twice', async () => {
    rig = await startRig();
    rig.simulator.addAnnotation(644, { status: 'exported' });
    const exportId = await rig.exported(644, { holdUntil: T0 - 10_000 });
    const outcome = await rig.verdict(exportId, 'rejected', rejection);
    rig.after('get', async () => {
      expect(await rig.ledger.moveHold(exportId, ['pending'], 'answered')).toBe(true);
    });

    await rig.delivery.pump();

    expect(await rig.outcome(outcome.id)).toMatchObject({ delivery: 'by_hold' });
    expect(rig.simulator.calls).toEqual([]);
  });

  it('another acks process released the hold meanwhile: the outbox tells Rossum', async () => {
    rig = await startRig();
    rig.simulator.addAnnotation(645, { status: 'exported' });
    const exportId = await rig.exported(645, { holdUntil: T0 - 10_000 });
    const outcome = await rig.verdict(exportId, 'rejected', rejection);
    rig.after('get', async () => {
      expect(await rig.ledger.moveHold(exportId, ['pending'], 'released')).toBe(true);
    });

    await rig.delivery.pump();

    expect(await rig.outcome(outcome.id)).toMatchObject({ delivery: 'delivered' });
    expect(callLog(rig.simulator)).toEqual([
      'POST /v1/auth/login',
      'GET /v1/annotations/645',
      'POST /v1/notes',
      'PATCH /v1/annotations/645',
    ]);
  });

  it('released by the poll (the hold ended without an answer): a verdict that comes later goes at once, within the grace too', async () => {
    rig = await startRig();
    rig.simulator.addAnnotation(647, { status: 'exported' });
    const exportId = await rig.exported(647, { holdUntil: T0 - 1_000 });
    expect(await rig.ledger.moveHold(exportId, ['pending'], 'released')).toBe(true);
    const outcome = await rig.verdict(exportId, 'rejected', rejection);

    await rig.delivery.pump();

    expect(await rig.outcome(outcome.id)).toMatchObject({ delivery: 'delivered', deliveredAt: T0 });
    expect(rig.ledgerCalls.filter((call) => call === 'moveHold')).toEqual([]);
  });

  it('after Rossum refused our credentials, an outcome still in its polling window does not pass for an accepted call', async () => {
    rig = await startRig({ rossum: { password: 'not the password' } });
    expect((await rig.delivery.checkCredentials()).state).toBe('refused');
    const outcome = await rig.verdict(await rig.exported(646, { holdUntil: T0 + 100_000 }), 'rejected', rejection);

    rig.clock.now = T0 + 16_000;
    await rig.delivery.pump();

    expect((await rig.outcome(outcome.id)).nextAttemptAt).toBe(T0 + 105_000);
    expect(rig.delivery.credentialsState).toMatchObject({ state: 'refused', since: T0 });
    expect(await gauge(rig.metrics!.rossumCredentialsRefused)).toBe(1);
    expect(rig.logged('Rossum accepts our credentials again')).toEqual([]);
  });
});
