import { describe, expect, it } from 'vitest';
import type { AcksConfig } from '../../src/ack/config.ts';
import { boundedMetadata, formatDuration, planOutcome, serializedSize } from '../../src/ack/outcome-plan.ts';
import type { AckOutcome, AckOutcomeDetail, AckOutcomeKind, ExportRecord } from '../../src/ledger/index.ts';
import { cleanContent } from '../../src/rossum/index.ts';

/**
 * What the outbox tells Rossum for each outcome (status, note, metadata) and how the metadata stays under
 * Rossum's 4 kB: the delivery sends exactly this plan, so the plan is the promise.
 */

const NOW = Date.parse('2026-11-30T12:00:00.000Z');
const AT = '2026-11-30T12:00:00.000Z';

function outcome(kind: AckOutcomeKind, detail: Partial<AckOutcomeDetail> = {}): AckOutcome {
  return {
    id: 7,
    exportId: 3,
    ackFileId: 1,
    kind,
    detail: { messages: [], ...detail },
    delivery: 'pending',
    attempts: 0,
    nextAttemptAt: 0,
    createdAt: NOW,
    deliveredAt: null,
    lastError: null,
    lastAttemptAt: null,
    result: null,
    noteAttempted: false,
  };
}

function record(overrides: Partial<ExportRecord> = {}): ExportRecord {
  return {
    remotePath: 'out/INV-1.xml',
    plannedPath: 'out/planned.xml',
    mappingName: 'erp',
    ...overrides,
  } as ExportRecord;
}

function acks(mapping: { deadlineMs?: number; storeErpReference?: boolean } | null): AcksConfig {
  return { byMapping: mapping ? { erp: mapping } : {} } as unknown as AcksConfig;
}

const erp = acks({ deadlineMs: 30 * 60_000, storeErpReference: true });

describe('planOutcome', () => {
  it('a rejection: failed_export, the note with every reason, the metadata with codes, summary and messages', () => {
    const plan = planOutcome(
      outcome('rejected', {
        ackFile: 'INV-1.err',
        messages: [{ code: 'E102', text: 'Kreditor  fehlt' }, { text: 'Zeile 2 falsch' }],
      }),
      record(),
      erp,
      NOW,
    );
    expect(plan).toEqual({
      status: 'failed_export',
      note: 'The ERP rejected out/INV-1.xml — ack INV-1.err:\nE102 Kreditor  fehlt\nZeile 2 falsch',
      metadata: {
        exportFile: 'out/INV-1.xml',
        ackFile: 'INV-1.err',
        at: AT,
        result: 'rejected',
        codes: ['E102'],
        summary: 'E102 Kreditor fehlt (+1 more)',
        messages: ['E102 Kreditor  fehlt', 'Zeile 2 falsch'],
        note: 'full text in the rejection note',
      },
    });
  });

  it('a rejection with one reason: the summary is that reason alone, with no "(+0 more)"', () => {
    const plan = planOutcome(
      outcome('rejected', { messages: [{ code: 'E7', text: 'Betrag falsch' }] }),
      record(),
      erp,
      NOW,
    );
    expect(plan.metadata).toMatchObject({ summary: 'E7 Betrag falsch' });
  });

  it('a late rejection says so in the note and the metadata; no reasons: no summary', () => {
    const plan = planOutcome(outcome('rejected_late', { ackFile: 'INV-1.err' }), record(), erp, NOW);
    expect(plan.note).toBe('The ERP rejected out/INV-1.xml (its answer came after the deadline) — ack INV-1.err:');
    expect(plan.metadata).toMatchObject({ late: true, summary: null, codes: [], messages: [] });
    expect(planOutcome(outcome('rejected'), record(), erp, NOW).metadata).not.toHaveProperty('late');
  });

  it('at most 10 codes and messages in the metadata, each cut; the note keeps all; the planned path when nothing was uploaded', () => {
    const messages = Array.from({ length: 12 }, (_, i) => ({ code: `E${i}${'c'.repeat(50)}`, text: 'x'.repeat(300) }));
    const plan = planOutcome(outcome('rejected', { messages }), record({ remotePath: null }), erp, NOW);
    const metadata = plan.metadata as {
      codes: string[];
      messages: string[];
      summary: string;
      exportFile: string;
      ackFile: unknown;
    };
    expect(metadata.codes).toEqual(messages.slice(0, 10).map((m) => cleanContent(m.code, 40)));
    expect(metadata.messages).toEqual(messages.slice(0, 10).map((m) => cleanContent(`${m.code} ${m.text}`, 200)));
    expect(metadata.summary).toBe(cleanContent(`${messages[0]!.code} ${messages[0]!.text} (+11 more)`, 200));
    expect(metadata.exportFile).toBe('out/planned.xml');
    expect(metadata.ackFile).toBeNull();
    expect(plan.note?.split('\n')).toHaveLength(13);
    expect(plan.note).toMatch(/^The ERP rejected out\/planned\.xml — ack undefined:/);
  });

  it('an unreadable answer: failed_export pointing at invalid/', () => {
    const plan = planOutcome(
      outcome('invalid', { ackFile: 'ACK.xml', messages: [{ text: 'ACK.xml:2: DOCTYPE' }, { text: 'second' }] }),
      record(),
      erp,
      NOW,
    );
    expect(plan).toEqual({
      status: 'failed_export',
      note: "The ERP's answer for out/INV-1.xml (ACK.xml) could not be read: ACK.xml:2: DOCTYPE; second. Check the file in the ack folder's invalid/ folder.",
      metadata: {
        exportFile: 'out/INV-1.xml',
        ackFile: 'ACK.xml',
        at: AT,
        result: 'invalid_ack',
        summary: 'ACK.xml:2: DOCTYPE (+1 more)',
        messages: ['ACK.xml:2: DOCTYPE', 'second'],
        note: 'full text in the rejection note',
      },
    });
  });

  it('no answer by the deadline: failed_export naming the window of the mapping, or "the deadline"', () => {
    const deadlineAt = Date.parse('2026-11-30T11:30:00.000Z');
    expect(planOutcome(outcome('timeout', { deadlineAt }), record(), erp, NOW)).toEqual({
      status: 'failed_export',
      note: 'No answer from the ERP for out/INV-1.xml within 30 min (deadline 2026-11-30T11:30:00.000Z). Check that the ERP imported it; a late positive answer will restore the export.',
      metadata: {
        exportFile: 'out/INV-1.xml',
        ackFile: null,
        at: AT,
        result: 'timeout',
        deadlineAt: '2026-11-30T11:30:00.000Z',
      },
    });
    const unknown = planOutcome(outcome('timeout'), record(), acks(null), NOW);
    expect(unknown.note).toMatch(/within the deadline \(deadline 1970-01-01T00:00:00\.000Z\)/);
    expect(unknown.metadata).toMatchObject({ deadlineAt: '1970-01-01T00:00:00.000Z' });
  });

  it('a late acceptance restores exported, saying after what, with the ERP reference when there is one', () => {
    expect(
      planOutcome(outcome('accepted_late', { ackFile: 'A.ok', erpReference: 'BELEG 4711' }), record(), erp, NOW),
    ).toEqual({
      status: 'exported',
      metadata: {
        exportFile: 'out/INV-1.xml',
        ackFile: 'A.ok',
        at: AT,
        result: 'accepted',
        late: true,
        message: 'The ERP accepted out/INV-1.xml late (after the deadline)',
        erpReference: 'BELEG 4711',
      },
    });
    const afterInvalid = planOutcome(outcome('accepted_late', { previousState: 'ack_invalid' }), record(), erp, NOW);
    expect(afterInvalid.metadata).toMatchObject({
      message: 'The ERP accepted out/INV-1.xml late (after an unreadable answer)',
    });
    expect(afterInvalid.metadata).not.toHaveProperty('erpReference');
  });

  it('an acceptance changes nothing unless the mapping stores the ERP reference and there is one', () => {
    expect(planOutcome(outcome('accepted', { erpReference: 'B-1' }), record(), erp, NOW)).toEqual({
      metadata: { exportFile: 'out/INV-1.xml', ackFile: null, at: AT, result: 'accepted', erpReference: 'B-1' },
    });
    expect(planOutcome(outcome('accepted'), record(), erp, NOW)).toEqual({});
    expect(
      planOutcome(outcome('accepted', { erpReference: 'B-1' }), record(), acks({ storeErpReference: false }), NOW),
    ).toEqual({});
    expect(planOutcome(outcome('accepted', { erpReference: 'B-1' }), record(), acks(null), NOW)).toEqual({});
  });

  it('a duplicate answer tells Rossum nothing', () => {
    expect(planOutcome(outcome('duplicate', { ackFile: 'again.err' }), record(), erp, NOW)).toEqual({});
  });
});

describe('serializedSize', () => {
  // Lengths of Python's json.dumps of the same values (what Rossum counts).
  it.each<[unknown, number]>([
    [{ a: 'é' }, 15],
    [{ k: [1, 2, { x: 'q"uote\\back' }] }, 37],
    ['tab\t', 7],
    [{ emoji: '😀' }, 25],
    ['\u0001', 8],
    [{ a: null, b: true, c: 1.5 }, 32],
    // A colon or comma inside a string is one byte; outside, with its space, two.
    [{ 'a:b': 'c,d' }, 14],
    // '~' (0x7e) is the last character Python writes as itself.
    [{ t: 'a~b' }, 12],
    // An escaped quote does not end the string: the comma after it stays one byte.
    [{ a: 'x",y' }, 14],
  ])('%j is %i bytes', (value, size) => {
    expect(serializedSize(value)).toBe(size);
  });
});

it('serializedSize of undefined (JSON.stringify gives no text) is 0', () => {
  expect(serializedSize(undefined)).toBe(0);
});

describe('boundedMetadata', () => {
  const current = { other: 'kept as it is', 'rossum-sftp-bridge': { old: true } };
  const ours = {
    result: 'rejected',
    outcomeId: 7,
    state: 'ack_rejected',
    messages: ['m'.repeat(300)],
    summary: 's'.repeat(200),
    message: 'n'.repeat(100),
    codes: ['E1'.repeat(20)],
    exportFile: 'f'.repeat(150),
    ackFile: 'a'.repeat(150),
    erpReference: 'r'.repeat(100),
    at: AT,
  };
  const key = 'rossum-sftp-bridge';
  // Each step sheds more of ours; the other keys are never touched.
  const { messages: _m, ...step1 } = ours;
  const { summary: _s, message: _n, ...step2 } = step1;
  const { codes: _c, ...step3 } = step2;
  const { exportFile: _f, ackFile: _a, erpReference: _r, ...step4 } = step3;
  const step5 = { result: ours.result, outcomeId: ours.outcomeId, state: ours.state };
  const steps = [ours, step1, step2, step3, step4, step5].map((value) => ({ ...current, [key]: value }));

  it('sheds in order — messages, summary and message, codes, paths and reference — down to result, outcome and state', () => {
    const sizes = steps.map(serializedSize);
    for (let i = 1; i < sizes.length; i++) expect(sizes[i]).toBeLessThan(sizes[i - 1]!);
    steps.forEach((step, i) => {
      expect(boundedMetadata(current, key, ours, sizes[i]!)).toEqual(step);
      if (i + 1 < steps.length) expect(boundedMetadata(current, key, ours, sizes[i]! - 1)).toEqual(steps[i + 1]);
    });
  });

  it('when even the smallest does not fit, the smallest is what is sent; the default limit is 4,096 bytes', () => {
    expect(boundedMetadata(current, key, ours, 10)).toEqual(steps[5]);
    expect(boundedMetadata(current, key, ours)).toEqual(steps[0]);
    const withEmptyFiller = serializedSize({ ...current, filler: '', [key]: ours });
    const big = { ...current, filler: 'x'.repeat(4_097 - withEmptyFiller) };
    expect(serializedSize({ ...big, [key]: ours })).toBe(4_097);
    expect(boundedMetadata(big, key, ours)).toEqual({ ...big, [key]: step1 });
  });
});

describe('formatDuration', () => {
  it.each<[number, string]>([
    [0, '1 s'],
    [1_499, '1 s'],
    [1_500, '2 s'],
    [45_000, '45 s'],
    [59_999, '60 s'],
    [60_000, '1 min'],
    [89_999, '1 min'],
    [90_000, '2 min'],
    [59 * 60_000, '59 min'],
    [3_570_000, '1 h'],
    [7_500_000, '2 h 5 min'],
    [7_200_000, '2 h'],
  ])('%i ms reads "%s"', (ms, text) => {
    expect(formatDuration(ms)).toBe(text);
  });
});
