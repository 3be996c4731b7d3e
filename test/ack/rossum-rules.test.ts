import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RossumSimulator } from '../support/rossum-simulator.ts';
import { ROSSUM_PASSWORD, ROSSUM_USER } from './harness.ts';
import { outcomeOf, startRulesRig, type RulesRig } from './rossum-rules-harness.ts';

/** The ack loop against Rossum's real rules: the exporting window, operators, 4 kB metadata, paginated notes. */

const login = {
  username: ROSSUM_USER,
  password: ROSSUM_PASSWORD,
  retry: { attempts: 2, minDelayMs: 10, maxDelayMs: 20 },
};
let simulator: RossumSimulator;
let rig: RulesRig;

beforeEach(async () => {
  simulator = await RossumSimulator.start({ users: { [ROSSUM_USER]: ROSSUM_PASSWORD } });
});
afterEach(async () => {
  await rig?.close();
  await simulator.close();
});

const statusPatches = (id: number): unknown[] =>
  simulator
    .callsTo('PATCH', `/v1/annotations/${id}`)
    .map((call) => (call.body as { status?: unknown }).status)
    .filter((status) => status !== undefined);

describe('read before write', () => {
  it('a rejection that arrives while the annotation is exporting waits for the export to finish, then ends in failed_export', async () => {
    rig = await startRulesRig(simulator, login);
    simulator.addAnnotation(610001, { status: 'exported' });
    simulator.beginExport(610001);
    const exportId = await rig.exported(610001);
    rig.erp.err('INV-610001', ['E12 Lieferant gesperrt'], 'utf8');

    await rig.passUntil(
      async () => (await outcomeOf(rig.acks.ledger, exportId))?.lastError?.includes('exporting') === true,
    );
    // Nothing PATCHed while Rossum would overwrite it.
    expect(statusPatches(610001)).toEqual([]);
    expect(simulator.annotation(610001).notes).toEqual([]);
    expect((await outcomeOf(rig.acks.ledger, exportId))?.delivery).toBe('pending');

    simulator.finishExport(610001, 'exported');
    await rig.passUntil(async () => (await outcomeOf(rig.acks.ledger, exportId))?.delivery === 'delivered');
    const annotation = simulator.annotation(610001);
    expect(annotation.status).toBe('failed_export');
    expect(annotation.history.at(-1)).toMatchObject({ status: 'failed_export', by: 'api' });
    expect(annotation.notes).toHaveLength(1);
    expect(annotation.notes[0]?.content).toContain('E12 Lieferant gesperrt');
    expect((await outcomeOf(rig.acks.ledger, exportId))?.result).toBe('status failed_export');
  }, 60_000);

  it('the simulated Rossum overwrites a status PATCHed during exporting, as the real one does (what the wait avoids)', async () => {
    simulator.addAnnotation(610002, { status: 'exported' });
    simulator.beginExport(610002);
    const token = simulator.issueToken();
    const patched = await fetch(simulator.annotationUrl(610002), {
      method: 'PATCH',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ status: 'failed_export' }),
    });
    expect(patched.status).toBe(200);
    simulator.finishExport(610002, 'exported');
    expect(simulator.annotation(610002).status).toBe('exported');
  });

  it('an export still exporting after acks.delivery.exportingWaitMs is reported: failed with the reason, verdict in a note, status untouched', async () => {
    rig = await startRulesRig(simulator, login, {
      delivery: { leaseMs: 2_000, retryMinMs: 50, retryMaxMs: 200, exportingWaitMs: 300 },
    });
    simulator.addAnnotation(610003, { status: 'exported' });
    simulator.beginExport(610003);
    const exportId = await rig.exported(610003);
    rig.erp.err('INV-610003', ['E13 Zahlungsziel fehlt'], 'utf8');
    await rig.passUntil(async () => (await outcomeOf(rig.acks.ledger, exportId))?.delivery === 'failed');
    const outcome = await outcomeOf(rig.acks.ledger, exportId);
    expect(outcome?.lastError).toMatch(/still exporting in Rossum .* status not changed/);
    expect(statusPatches(610003)).toEqual([]);
    expect(
      simulator
        .annotation(610003)
        .notes.map((note) => note.content)
        .join('\n'),
    ).toContain('E13 Zahlungsziel fehlt');
  }, 60_000);

  it.each(['to_review', 'reviewing', 'postponed', 'deleted'] as const)(
    'an annotation an operator moved to %s keeps its status and gets the verdict as a note; ledger, status and metric say so',
    async (operatorStatus) => {
      rig = await startRulesRig(simulator, login);
      const id = 620000 + ['to_review', 'reviewing', 'postponed', 'deleted'].indexOf(operatorStatus);
      simulator.addAnnotation(id, { status: 'exported', metadata: { owner: 'ops' } });
      const exportId = await rig.exported(id);
      simulator.operatorSets(id, operatorStatus);
      rig.erp.err(`INV-${id}`, ['E20 Kostenstelle fehlt'], 'utf8');
      await rig.passUntil(async () => (await outcomeOf(rig.acks.ledger, exportId))?.delivery === 'left_alone');

      const annotation = simulator.annotation(id);
      expect(annotation.status).toBe(operatorStatus);
      expect(statusPatches(id)).toEqual([]);
      expect(annotation.metadata).toEqual({ owner: 'ops' });
      expect(annotation.notes).toHaveLength(1);
      expect(annotation.notes[0]?.content).toContain('E20 Kostenstelle fehlt');
      expect(annotation.notes[0]?.content).toContain(`it was in ${operatorStatus}`);
      expect((await outcomeOf(rig.acks.ledger, exportId))?.result).toBe(
        `left alone: annotation was in ${operatorStatus}; verdict posted as a note`,
      );
      expect((await rig.acks.ledger.events(exportId)).map((event) => event.kind)).toContain('rossum_left_alone');
      const metrics = (await rig.acks.metrics.render()).body;
      expect(metrics).toContain(`bridge_ack_left_alone_total{status="${operatorStatus}"} 1`);
    },
    60_000,
  );

  it('a late acceptance changes failed_export back to exported', async () => {
    rig = await startRulesRig(simulator, login, {
      byMapping: { 'erp-companion': { convention: 'companion', deadlineMs: 1 } },
    });
    simulator.addAnnotation(630001, { status: 'exported' });
    const exportId = await rig.exported(630001);
    await rig.passUntil(async () => simulator.annotation(630001).status === 'failed_export');
    rig.erp.ok('INV-630001');
    await rig.passUntil(
      async () =>
        (await outcomeOf(rig.acks.ledger, exportId))?.kind === 'accepted_late' &&
        (await outcomeOf(rig.acks.ledger, exportId))?.delivery === 'delivered',
    );
    expect(simulator.annotation(630001).status).toBe('exported');
  }, 60_000);

  it('an annotation deleted for good (404) or purged is closed as gone, with the reason; nothing crashes, nothing else is touched', async () => {
    rig = await startRulesRig(simulator, login);
    simulator.addAnnotation(640001, { status: 'exported' });
    simulator.addAnnotation(640002, { status: 'exported' });
    const removed = await rig.exported(640001);
    const purged = await rig.exported(640002);
    simulator.removeAnnotation(640001);
    simulator.operatorSets(640002, 'purged');
    rig.erp.err('INV-640001', ['E1 x'], 'utf8');
    rig.erp.err('INV-640002', ['E2 y'], 'utf8');
    await rig.passUntil(
      async () =>
        (await outcomeOf(rig.acks.ledger, removed))?.delivery === 'gone' &&
        (await outcomeOf(rig.acks.ledger, purged))?.delivery === 'gone',
    );
    expect((await outcomeOf(rig.acks.ledger, removed))?.result).toMatch(
      /^gone: annotation 640001 no longer exists in Rossum \(404\)/,
    );
    expect((await outcomeOf(rig.acks.ledger, purged))?.result).toMatch(/^gone: annotation 640002 was purged/);
    expect(simulator.annotation(640002).status).toBe('purged');
    expect(simulator.calls.filter((call) => call.method !== 'GET' && !call.path.includes('/auth/'))).toEqual([]);
  }, 60_000);

  it('a 409 (annotation started by another user) is final with a clear record', async () => {
    rig = await startRulesRig(simulator, login);
    simulator.addAnnotation(640003, { status: 'exported' });
    const exportId = await rig.exported(640003);
    simulator.injectFaults({
      status: 409,
      method: 'PATCH',
      body: { detail: 'Annotation was not started by the current user.' },
    });
    rig.erp.err('INV-640003', ['E3 z'], 'utf8');
    await rig.passUntil(async () => (await outcomeOf(rig.acks.ledger, exportId))?.delivery === 'failed');
    expect((await outcomeOf(rig.acks.ledger, exportId))?.lastError).toMatch(/409.*another user/);
  }, 60_000);
});

describe('within limits', () => {
  it('a long rejection ends in failed_export with metadata under 4 kB and the other metadata keys intact; the full text is in the note, cut with a mark', async () => {
    rig = await startRulesRig(simulator, login);
    const others = { erp_system: 'SAP', reviewer: 'Zoë Ångström', routing: 'ä'.repeat(1_200) };
    simulator.addAnnotation(650001, { status: 'exported', metadata: others });
    const exportId = await rig.exported(650001);
    const lines = Array.from({ length: 40 }, (_, i) => `E${100 + i} ${'Ungültige Position — Straße '.repeat(20)}`);
    rig.erp.err('INV-650001', lines, 'utf8');
    await rig.passUntil(async () =>
      ['delivered', 'failed'].includes((await outcomeOf(rig.acks.ledger, exportId))?.delivery ?? 'none'),
    );

    expect((await outcomeOf(rig.acks.ledger, exportId))?.delivery).toBe('delivered');
    const annotation = simulator.annotation(650001);
    expect(annotation.status).toBe('failed_export');
    expect(Buffer.byteLength(JSON.stringify(annotation.metadata))).toBeLessThanOrEqual(4096);
    expect(annotation.metadata).toMatchObject(others);
    expect(annotation.metadata.erp_ack).toMatchObject({
      result: 'rejected',
      state: 'done',
      outcomeId: expect.any(Number),
    });
    // Every 4xx from Rossum was avoided, not retried around.
    expect(simulator.calls.filter((call) => call.status >= 400)).toEqual([]);
    const note = annotation.notes[0]?.content ?? '';
    expect(Array.from(note).length).toBeLessThanOrEqual(4096);
    expect(note).toContain('…');
    expect(note).toContain('E100 Ungültige Position');
  }, 60_000);

  it('a retried delivery finds its own note on a later page (Rossum pages notes by 20) and does not post it twice', async () => {
    rig = await startRulesRig(simulator, { ...login, retry: { attempts: 1, minDelayMs: 10, maxDelayMs: 10 } });
    simulator.addAnnotation(660001, { status: 'exported' });
    const token = simulator.issueToken();
    for (let i = 0; i < 25; i++) {
      await fetch(`${simulator.apiUrl}/v1/notes`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({
          annotation: simulator.annotationUrl(660001),
          content: `operator remark ${i}`,
          type: 'rejection',
        }),
      });
      if (i % 8 === 7) await new Promise((resolve) => setTimeout(resolve, 1_000));
    }
    const exportId = await rig.exported(660001);
    // The note is posted, then the status PATCH fails: the retry must find the note (the 26th, on page 2).
    simulator.injectFaults({ status: 503, method: 'PATCH' });
    rig.erp.err('INV-660001', ['E30 Steuer falsch'], 'utf8');
    await rig.passUntil(async () => (await outcomeOf(rig.acks.ledger, exportId))?.delivery === 'delivered');
    const ours = simulator.annotation(660001).notes.filter((note) => note.content.includes('E30 Steuer falsch'));
    expect(ours).toHaveLength(1);
    expect(simulator.annotation(660001).notes).toHaveLength(26);
    expect(simulator.callsTo('GET', '/v1/notes').length).toBeGreaterThanOrEqual(2);
    expect(simulator.annotation(660001).status).toBe('failed_export');
  }, 60_000);
});
