import { afterEach, describe, expect, it } from 'vitest';
import {
  byLabel,
  callLog,
  closedPortUrl,
  EXPORTING_WAIT_MS,
  type Rig,
  RETRY_MAX_MS,
  signature,
  startRig,
  startSimulator,
  T0,
  rejection,
} from './outcome-delivery-rig.ts';

/**
 * The outbox's settle paths, each against the simulated Rossum: what Rossum is told (recorded calls), what the
 * ledger keeps (delivery, result, error, next attempt), and what the log and metrics say.
 */

let rig: Rig;
afterEach(async () => rig?.close());

const rejectedNote = (id: number) => `The ERP rejected INV-${id}.xml — ack INV-${id}.err:\nE102 Kreditor fehlt`;

describe('delivered', () => {
  it('a rejection: one note with the signature, then one PATCH (status and metadata, other keys kept), logged and counted', async () => {
    rig = await startRig();
    rig.simulator.addAnnotation(501, { status: 'exported', metadata: { other: 'kept' } });
    const exportId = await rig.exported(501);
    const outcome = await rig.verdict(exportId, 'rejected', { ...rejection, landedAt: T0 - 2_500 });

    expect(await rig.delivery.pump()).toBe(1);

    expect(callLog(rig.simulator)).toEqual([
      'POST /v1/auth/login',
      'GET /v1/annotations/501',
      'POST /v1/notes',
      'PATCH /v1/annotations/501',
    ]);
    expect(rig.simulator.annotation(501).notes.map((note) => note.content)).toEqual([
      `${rejectedNote(501)}\n${signature(outcome.id)}`,
    ]);
    expect(rig.simulator.callsTo('PATCH', '/v1/annotations/501')[0]?.body).toEqual({
      status: 'failed_export',
      metadata: {
        other: 'kept',
        erp_ack: {
          exportFile: 'INV-501.xml',
          ackFile: 'INV-501.err',
          at: new Date(T0).toISOString(),
          result: 'rejected',
          codes: ['E102'],
          summary: 'E102 Kreditor fehlt',
          messages: ['E102 Kreditor fehlt'],
          note: 'full text in the rejection note',
          outcomeId: outcome.id,
          state: 'done',
        },
      },
    });
    expect(await rig.outcome(outcome.id)).toMatchObject({
      delivery: 'delivered',
      result: 'status failed_export',
      deliveredAt: T0,
      noteAttempted: true,
    });
    expect(rig.logged('Rossum told: rejected')).toEqual([
      expect.objectContaining({ level: 30, annotationId: 501, exportId, outcome: 'rejected', ackFile: 'INV-501.err' }),
    ]);
    expect(await byLabel(rig.metrics!.rossumUpdates)).toEqual({ delivered: 1 });
    const seconds = (await rig.metrics!.ackToRossumSeconds.get()).values;
    expect(seconds.find((v) => v.metricName?.endsWith('_sum'))?.value).toBe(2.5);
    expect(seconds.find((v) => v.metricName?.endsWith('_count'))?.value).toBe(1);
    expect(await byLabel(rig.metrics!.ackLeftAlone)).toEqual({});
    expect(rig.logged('left alone')).toEqual([]);
    // Not held: no hold bookkeeping.
    expect(rig.ledgerCalls.filter((call) => call === 'moveHold')).toEqual([]);
    expect(rig.delivery.credentialsState).toEqual({ state: 'accepted', since: T0 });
  });

  it('a late acceptance: one PATCH to exported, no note; without landedAt no latency is observed', async () => {
    rig = await startRig();
    rig.simulator.addAnnotation(502, { status: 'failed_export' });
    const exportId = await rig.exported(502);
    await rig.verdict(exportId, 'invalid', { messages: [{ text: 'unreadable' }] });
    const [invalid] = await rig.ledger.outcomes(exportId);
    const late = await rig.verdict(exportId, 'accepted', { erpReference: '4711' });

    expect(await rig.delivery.pump()).toBe(2);

    // The unreadable answer was overtaken by the acceptance: only the acceptance reaches Rossum.
    expect(await rig.outcome(invalid!.id)).toMatchObject({
      delivery: 'not_needed',
      result: 'superseded by accepted_late',
    });
    expect(await rig.outcome(late.id)).toMatchObject({ delivery: 'delivered', result: 'status exported' });
    expect(rig.simulator.callsTo('POST', '/v1/notes')).toEqual([]);
    expect(rig.simulator.callsTo('PATCH', '/v1/annotations/502').map((call) => call.body)).toEqual([
      {
        status: 'exported',
        metadata: {
          erp_ack: expect.objectContaining({
            result: 'accepted',
            late: true,
            erpReference: '4711',
            outcomeId: late.id,
          }),
        },
      },
    ]);
    expect(await byLabel(rig.metrics!.rossumUpdates)).toEqual({ not_needed: 1, delivered: 1 });
    const seconds = (await rig.metrics!.ackToRossumSeconds.get()).values;
    expect(seconds.find((v) => v.metricName?.endsWith('_count'))?.value).toBe(0);
  });

  it('an acceptance with an ERP reference: metadata only, even on an annotation in to_review (no status, not left alone)', async () => {
    rig = await startRig();
    rig.simulator.addAnnotation(503, { status: 'to_review' });
    const outcome = await rig.verdict(await rig.exported(503), 'accepted', { erpReference: 'R-9' });

    await rig.delivery.pump();

    expect(rig.simulator.callsTo('PATCH', '/v1/annotations/503').map((call) => call.body)).toEqual([
      { metadata: { erp_ack: expect.objectContaining({ result: 'accepted', erpReference: 'R-9', state: 'done' }) } },
    ]);
    expect(rig.simulator.annotation(503).status).toBe('to_review');
    expect(await rig.outcome(outcome.id)).toMatchObject({ delivery: 'delivered', result: 'metadata' });
  });

  it('an acceptance with nothing to store: not_needed, no call to Rossum, credentials still unchecked', async () => {
    rig = await startRig();
    rig.simulator.addAnnotation(504, { status: 'exported' });
    const outcome = await rig.verdict(await rig.exported(504), 'accepted');

    expect(await rig.delivery.pump()).toBe(1);

    expect(rig.simulator.calls).toEqual([]);
    expect(await rig.outcome(outcome.id)).toMatchObject({ delivery: 'not_needed', result: null });
    expect(rig.delivery.credentialsState).toEqual({ state: 'unchecked' });
    expect(await byLabel(rig.metrics!.rossumUpdates)).toEqual({ not_needed: 1 });
  });

  it('a newer duplicate verdict does not supersede the rejection: it is delivered', async () => {
    rig = await startRig();
    rig.simulator.addAnnotation(505, { status: 'exported' });
    const exportId = await rig.exported(505);
    const outcome = await rig.verdict(exportId, 'rejected', rejection);
    const duplicate = await rig.verdict(exportId, 'rejected', rejection);
    expect(duplicate).toMatchObject({ kind: 'duplicate', delivery: 'not_needed' });

    await rig.delivery.pump();

    expect(await rig.outcome(outcome.id)).toMatchObject({ delivery: 'delivered', result: 'status failed_export' });
    expect(rig.simulator.annotation(505).status).toBe('failed_export');
  });
});

describe('the metadata mark', () => {
  it("says done for this outcome: delivered as 'already in Rossum' after one GET, nothing written", async () => {
    rig = await startRig();
    rig.simulator.addAnnotation(511, { status: 'failed_export' });
    const outcome = await rig.verdict(await rig.exported(511), 'rejected', rejection);
    rig.simulator.annotation(511).metadata = { erp_ack: { outcomeId: outcome.id, state: 'done' } };

    await rig.delivery.pump();

    expect(callLog(rig.simulator)).toEqual(['POST /v1/auth/login', 'GET /v1/annotations/511']);
    expect(await rig.outcome(outcome.id)).toMatchObject({ delivery: 'delivered', result: 'already in Rossum' });
  });

  it('names another outcome, or this one not done: the outcome is delivered', async () => {
    rig = await startRig();
    rig.simulator.addAnnotation(512, { status: 'exported' });
    rig.simulator.addAnnotation(513, { status: 'exported' });
    const other = await rig.verdict(await rig.exported(512), 'rejected', rejection);
    const mine = await rig.verdict(await rig.exported(513), 'rejected', rejection);
    rig.simulator.annotation(512).metadata = { erp_ack: { outcomeId: other.id + 100, state: 'done' } };
    rig.simulator.annotation(513).metadata = { erp_ack: { outcomeId: mine.id, state: 'sending' } };

    await rig.delivery.pump();

    for (const id of [512, 513]) {
      expect(rig.simulator.annotation(id).status).toBe('failed_export');
      expect(rig.simulator.annotation(id).notes).toHaveLength(1);
    }
    expect((await rig.outcome(mine.id)).result).toBe('status failed_export');
  });
});

describe('gone', () => {
  it('404: closed as gone with the annotation id, warned', async () => {
    rig = await startRig();
    const outcome = await rig.verdict(await rig.exported(521), 'rejected', rejection);

    await rig.delivery.pump();

    const error = 'annotation 521 no longer exists in Rossum (404); nothing to tell';
    expect(await rig.outcome(outcome.id)).toMatchObject({
      delivery: 'gone',
      lastError: error,
      result: `gone: ${error}`,
    });
    expect(rig.logged('Rossum no longer has the annotation (404)')).toEqual([
      expect.objectContaining({ level: 40, annotationId: 521 }),
    ]);
    expect(rig.simulator.callsTo('POST', '/v1/notes')).toEqual([]);
    expect(await byLabel(rig.metrics!.rossumUpdates)).toEqual({ gone: 1 });
  });

  it('purged: closed as gone, nothing written', async () => {
    rig = await startRig();
    rig.simulator.addAnnotation(522, { status: 'purged' });
    const outcome = await rig.verdict(await rig.exported(522), 'rejected', rejection);

    await rig.delivery.pump();

    const error = 'annotation 522 was purged in Rossum; nothing can be told';
    expect(await rig.outcome(outcome.id)).toMatchObject({
      delivery: 'gone',
      lastError: error,
      result: `gone: ${error}`,
    });
    expect(callLog(rig.simulator)).toEqual(['POST /v1/auth/login', 'GET /v1/annotations/522']);
  });
});

describe('failed (needs a human)', () => {
  it('409 on the PATCH: failed, the error says another user works on it', async () => {
    rig = await startRig();
    rig.simulator.addAnnotation(531, { status: 'exported' });
    const exportId = await rig.exported(531);
    await rig.verdict(exportId, 'invalid', { messages: [{ text: 'x' }] });
    rig.simulator.injectFaults({ status: 409, method: 'PATCH', body: { detail: 'Annotation is locked.' } });
    const outcome = await rig.verdict(exportId, 'accepted');

    await rig.delivery.pump();

    expect(await rig.outcome(outcome.id)).toMatchObject({
      delivery: 'failed',
      lastError:
        'Rossum refused the change (409: the annotation is being worked on by another user): Rossum answered PATCH /v1/annotations/531 with HTTP 409: Annotation is locked.',
      result: null,
    });
    expect(rig.logged('Rossum refused the ack outcome; it needs a human (see `status`)')).toEqual([
      expect.objectContaining({
        level: 50,
        err: 'Rossum answered PATCH /v1/annotations/531 with HTTP 409: Annotation is locked.',
      }),
    ]);
    expect(await byLabel(rig.metrics!.rossumUpdates)).toEqual({ not_needed: 1, failed: 1 });
  });

  it('another 4xx: failed with Rossum’s answer as the error', async () => {
    rig = await startRig();
    rig.simulator.addAnnotation(532, { status: 'exported' });
    rig.simulator.injectFaults({ status: 403, method: 'GET', body: { detail: 'No access.' } });
    const outcome = await rig.verdict(await rig.exported(532), 'rejected', rejection);

    await rig.delivery.pump();

    expect(await rig.outcome(outcome.id)).toMatchObject({
      delivery: 'failed',
      lastError: 'Rossum answered GET /v1/annotations/532 with HTTP 403: No access.',
    });
  });

  it('a payload base_url outside the allow-list: failed, no request anywhere, logged as ours', async () => {
    const simulator = await startSimulator();
    rig = await startRig({ simulator, rossum: { baseUrl: undefined } });
    const outcome = await rig.verdict(await rig.exported(533, { rossumBaseUrl: simulator.baseUrl }), 'rejected');

    await rig.delivery.pump();
    await simulator.close();

    expect(simulator.calls).toEqual([]);
    const failed = await rig.outcome(outcome.id);
    expect(failed.delivery).toBe('failed');
    expect(failed.lastError).toContain(`Refusing to send Rossum credentials to ${simulator.baseUrl}`);
    expect(
      rig.logged(
        'Rossum not told: the export names a Rossum host we send no credentials to; it needs a human (see `status`)',
      ),
    ).toEqual([expect.objectContaining({ level: 50, err: failed.lastError })]);
    expect(rig.logged('Rossum refused the ack outcome')).toEqual([]);
  });

  it('no Rossum API root at all (no baseUrl, no payload base_url): failed with the reason', async () => {
    rig = await startRig({ rossum: { baseUrl: undefined } });
    const outcome = await rig.verdict(await rig.exported(534), 'rejected');

    await rig.delivery.pump();

    expect(await rig.outcome(outcome.id)).toMatchObject({
      delivery: 'failed',
      lastError: 'No Rossum API base URL: set `baseUrl` or pass the payload’s `base_url`',
    });
  });
});

describe('retry (Rossum not reachable now)', () => {
  it('503: pending again after retryMinMs, warned with the wait; then delivered', async () => {
    rig = await startRig();
    rig.simulator.addAnnotation(541, { status: 'exported' });
    rig.simulator.injectFaults({ status: 503, method: 'GET', pathPrefix: '/v1/annotations' });
    const outcome = await rig.verdict(await rig.exported(541), 'rejected', rejection);

    await rig.delivery.pump();

    const error = 'Rossum answered GET /v1/annotations/541 with HTTP 503: Injected fault 503';
    expect(await rig.outcome(outcome.id)).toMatchObject({
      delivery: 'pending',
      lastError: error,
      nextAttemptAt: T0 + 1_000,
    });
    expect(rig.logged('Rossum could not be told yet')).toEqual([
      expect.objectContaining({ level: 40, err: error, retryInMs: 1_000 }),
    ]);
    expect(rig.logged('Rossum told')).toEqual([]);
    expect(await byLabel(rig.metrics!.rossumUpdates)).toEqual({ retry: 1 });

    rig.clock.now = T0 + 999;
    expect(await rig.delivery.pump()).toBe(0);
    rig.clock.now = T0 + 1_000;
    expect(await rig.delivery.pump()).toBe(1);
    expect(await rig.outcome(outcome.id)).toMatchObject({ delivery: 'delivered', attempts: 2 });
    expect(rig.delivery.credentialsState).toEqual({ state: 'accepted', since: T0 + 1_000 });
  });

  it('Rossum refusing connections: pending again, nothing lost', async () => {
    rig = await startRig({ rossum: { baseUrl: await closedPortUrl() } });
    const outcome = await rig.verdict(await rig.exported(542), 'rejected', rejection);

    await rig.delivery.pump();

    const pending = await rig.outcome(outcome.id);
    expect(pending).toMatchObject({ delivery: 'pending', nextAttemptAt: T0 + 1_000 });
    expect(pending.lastError).toMatch(/^Rossum unreachable \(127\.0\.0\.1:\d+\) for POST \/v1\/auth\/login/);
    expect(rig.delivery.credentialsState).toEqual({ state: 'unchecked' });
  });
});

describe('exporting (our webhook reply not processed yet)', () => {
  it('waits with backoff (doubling, capped at retryMaxMs); at exportingWaitMs the note is posted and the outcome fails, status untouched', async () => {
    rig = await startRig();
    rig.simulator.addAnnotation(551, { status: 'exporting' });
    const outcome = await rig.verdict(await rig.exported(551), 'rejected', rejection);

    const waits: number[] = [];
    for (let attempt = 1; attempt <= 6; attempt++) {
      expect(await rig.delivery.pump()).toBe(1);
      const pending = await rig.outcome(outcome.id);
      expect(pending).toMatchObject({
        delivery: 'pending',
        lastError:
          'annotation still exporting in Rossum (our webhook reply not processed yet); waiting before changing its status',
      });
      waits.push(pending.nextAttemptAt - rig.clock.now);
      rig.clock.now = pending.nextAttemptAt;
    }
    expect(waits).toEqual([1_000, 2_000, 4_000, 8_000, 16_000, RETRY_MAX_MS]);
    expect(rig.simulator.callsTo('POST', '/v1/notes')).toEqual([]);

    // Exactly exportingWaitMs after the verdict was recorded: no more waiting.
    rig.clock.now = T0 + EXPORTING_WAIT_MS;
    await rig.delivery.pump();

    expect(await rig.outcome(outcome.id)).toMatchObject({
      delivery: 'failed',
      lastError:
        'annotation 551 still exporting in Rossum 10 min after the verdict; status not changed (verdict posted as a note) — check the export in Rossum',
    });
    expect(rig.simulator.annotation(551).notes.map((note) => note.content)).toEqual([
      `${rejectedNote(551)}\n${signature(outcome.id)}`,
    ]);
    expect(rig.simulator.callsTo('PATCH', '/v1/annotations/551')).toEqual([]);
    expect(rig.simulator.annotation(551).status).toBe('exporting');
  });

  it('an acceptance with a reference past the bound: the verdict in words goes into the note', async () => {
    rig = await startRig();
    rig.simulator.addAnnotation(552, { status: 'exporting' });
    const outcome = await rig.verdict(await rig.exported(552, { remotePath: 'out/INV-552_v2.xml' }), 'accepted', {
      erpReference: '4711',
    });
    rig.clock.now = T0 + EXPORTING_WAIT_MS + 90_000;

    await rig.delivery.pump();

    expect(rig.simulator.annotation(552).notes.map((note) => note.content)).toEqual([
      `The ERP answered for out/INV-552_v2.xml (ERP reference 4711).\n${signature(outcome.id)}`,
    ]);
    expect((await rig.outcome(outcome.id)).lastError).toContain('still exporting in Rossum 12 min after the verdict');
  });
});
