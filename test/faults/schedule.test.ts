import { describe, expect, it } from 'vitest';
import { DOWNLOAD_FAULTS, planFaultStream, PROFILES } from './schedule.ts';

// FAULT_SEED=n must replay a run: everything the fault stream decides comes from the seed, never from timing.
describe('the fault schedule', () => {
  const ci = PROFILES.ci!;

  it('is the same for the same seed, and differs for another', () => {
    const first = planFaultStream({ ...ci, seed: 651427757 });
    expect(planFaultStream({ ...ci, seed: 651427757 })).toEqual(first);
    const other = planFaultStream({ ...ci, seed: 651427758 });
    expect(other.faults).not.toEqual(first.faults);
    expect(other.documents).not.toEqual(first.documents);
    expect([...other.answers.values()]).not.toEqual([...first.answers.values()]);
  });

  it('plans every fault of the profile once, the acks process kills before the API windows', () => {
    const schedule = planFaultStream({ ...ci, seed: 42 });
    const planned = [...schedule.faults, ...schedule.ackFaults].map((fault) => fault.kind);
    for (const [kind, count] of Object.entries(ci.faults))
      expect(
        planned.filter((planned) => planned === kind),
        kind,
      ).toHaveLength(count);
    expect(schedule.ackFaults.map((fault) => fault.kind)).toEqual([
      ...Array(ci.faults.acksKill).fill('acksKill'),
      ...Array(ci.faults.rossumApi).fill('rossumApi'),
    ]);
    expect(schedule.faults.some((fault) => fault.kind === 'acksKill' || fault.kind === 'rossumApi')).toBe(false);
  });

  it('holds two rejected documents back for each API window (so it has calls to refuse); every document is sent once', () => {
    const schedule = planFaultStream({ ...ci, seed: 651427757 });
    const windows = schedule.ackFaults.filter((fault) => fault.kind === 'rossumApi');
    for (const window of windows) {
      expect(window.annotationIds).toHaveLength(2);
      for (const id of window.annotationIds) expect(schedule.answers.get(id)!.verdict).toBe('reject');
    }
    const sent = [
      ...schedule.documents.map((document) => document.annotationId),
      ...windows.flatMap((window) => window.annotationIds),
    ];
    expect(sent.toSorted((a, b) => a - b)).toEqual([...schedule.answers.keys()]);
    const held = new Set(windows.flatMap((window) => window.annotationIds));
    expect(schedule.redeliveries.some((id) => held.has(id))).toBe(false);
    expect(
      [...schedule.faults, ...schedule.ackFaults.filter((fault) => fault.kind !== 'rossumApi')].every(
        (fault) => fault.annotationIds.length === 0,
      ),
    ).toBe(true);
  });

  it('gives every document an ERP answer, with rejections and silences in the mix', () => {
    const schedule = planFaultStream({ ...ci, seed: 7 });
    expect(schedule.answers.size).toBe(ci.annotations);
    const verdicts = [...schedule.answers.values()].map((answer) => answer.verdict);
    expect(verdicts).toContain('reject');
    expect(verdicts).toContain('silent');
    expect(schedule.noisePausesMs).toHaveLength(ci.erp.noise);
  });

  it('routes a share of the stream documents to the batch mapping, none of them a scan or held for an API window', () => {
    const schedule = planFaultStream({ ...ci, seed: 651427757 });
    const streamIds = new Set(schedule.documents.map((document) => document.annotationId));
    expect(schedule.batched.size).toBeGreaterThan(ci.annotations * ci.batchShare * 0.5);
    expect(schedule.batched.size).toBeLessThan(ci.annotations * ci.batchShare * 1.5);
    for (const id of schedule.batched) {
      expect(streamIds.has(id)).toBe(true);
      expect(schedule.scans.has(id)).toBe(false);
    }
  });

  it('plans every kind of download fault whatever the seed (few scans must not leave one out)', () => {
    for (let seed = 0; seed < 300; seed++) {
      const planned = new Set([...planFaultStream({ ...ci, seed }).scans.values()].map((scan) => scan.fault));
      for (const kind of DOWNLOAD_FAULTS) expect(planned.has(kind), `seed ${seed}: ${kind}`).toBe(true);
    }
  });
});
