import { describe, expect, it } from 'vitest';
import { ackTransition, initialDelivery, nameParts, rowToOutcome } from '../../src/ledger/ack-rules.ts';
import { existingClaimOutcome } from '../../src/ledger/claim-rules.ts';
import type { ExportRecord, ExportState } from '../../src/ledger/types.ts';
import { containedPath, joinRemote, parentOf, versionedName } from '../../src/transport/paths.ts';
import { isTransportError } from '../../src/transport/index.ts';

// The pure rules the guarantees rest on, pinned case by case (the mutation run uses these to judge each change).

function refusal(
  path: string,
  options?: { allowRoot?: boolean },
): { code: string; message: string; permanent: boolean } {
  try {
    containedPath(path, 'sftp.example.com:22', options);
  } catch (error) {
    if (isTransportError(error)) return { code: error.code, message: error.message, permanent: error.permanent };
    throw error;
  }
  throw new Error(`${JSON.stringify(path)} was accepted`);
}

describe('path containment', () => {
  it.each([
    ['/etc/passwd', 'absolute paths are not allowed'],
    ['\\\\server\\share\\x', 'absolute paths are not allowed'],
    ['C:\\Windows\\x', 'drive letters are not allowed'],
    ['c:x', 'drive letters are not allowed'],
    ['~/x', 'home-relative paths are not allowed'],
    ['~root', 'home-relative paths are not allowed'],
    ['../x', '".." is not allowed'],
    ['a/../../x', '".." is not allowed'],
    ['a\\..\\x', '".." is not allowed'],
    ['a\u0000b', 'contains NUL or control characters'],
    ['a\nb', 'contains NUL or control characters'],
    ['a\u001fb', 'contains NUL or control characters'],
    ['a\u007fb', 'contains NUL or control characters'],
    ['a\u0085b', 'contains NUL or control characters'],
    ['a\u009fb', 'contains NUL or control characters'],
    ['', 'empty path'],
    ['./', 'empty path'],
    ['.//.', 'empty path'],
  ])('refuses %j: %s (permanent PATH_ESCAPE naming the path and host)', (path, reason) => {
    const error = refusal(path);
    expect(error).toEqual({
      code: 'PATH_ESCAPE',
      permanent: true,
      message: `refused path ${JSON.stringify(path)} on sftp.example.com:22: ${reason}`,
    });
  });

  it('refuses a value that is not a string', () => {
    expect(refusal(42 as unknown as string).message).toBe('refused path 42 on sftp.example.com:22: not a string');
  });

  it.each([
    ['a.xml', 'a.xml'],
    ['./a//b/./c.xml', 'a/b/c.xml'],
    ['a\\b\\c.xml', 'a/b/c.xml'],
    ['a/b/', 'a/b'],
    ['..a/b..', '..a/b..'],
    ['a/.../b', 'a/.../b'],
    ['x~', 'x~'],
    ['ab:c', 'ab:c'],
    ['1:x', '1:x'],
    ['é\u00a0ü.xml', 'é\u00a0ü.xml'],
  ])('accepts %j as %j', (path, normalized) => {
    expect(containedPath(path, 'h')).toBe(normalized);
  });

  it('the folder itself only when allowed', () => {
    expect(containedPath('.', 'h', { allowRoot: true })).toBe('');
    expect(containedPath('', 'h', { allowRoot: true })).toBe('');
    expect(refusal('.', { allowRoot: false }).message).toContain('empty path');
  });

  it('joins, versions and splits contained paths', () => {
    expect(joinRemote('.', 'a/b.xml')).toBe('a/b.xml');
    expect(joinRemote('/srv/in', 'a/b.xml')).toBe('/srv/in/a/b.xml');
    expect(joinRemote('/srv/in', '')).toBe('/srv/in');
    expect(joinRemote('.', '')).toBe('.');
    expect(versionedName('inv.xml', 1)).toBe('inv.xml');
    expect(versionedName('inv.xml', 0)).toBe('inv.xml');
    expect(versionedName('inv.xml', 2)).toBe('inv_v2.xml');
    expect(versionedName('d/e/inv.tar.gz', 12)).toBe('d/e/inv.tar_v12.gz');
    expect(versionedName('README', 3)).toBe('README_v3');
    expect(versionedName('.hidden', 2)).toBe('.hidden_v2');
    expect(versionedName('d/.hidden', 2)).toBe('d/.hidden_v2');
    expect(parentOf('a.xml')).toBe('');
    expect(parentOf('d/e/a.xml')).toBe('d/e');
  });
});

function record(overrides: Partial<ExportRecord>): ExportRecord {
  return {
    id: 1,
    idempotencyKey: 'k',
    annotationId: 1,
    mappingName: 'm',
    mappingHash: 'h',
    target: 't',
    plannedPath: 'p',
    remotePath: null,
    sha256: 's',
    bytes: 1,
    status: 'uploading',
    errorCode: null,
    error: null,
    reply: null,
    attempts: 1,
    leaseOwner: 'other',
    leaseExpiresAt: 2_000,
    requestIds: [],
    createdAt: 0,
    updatedAt: 0,
    uploadedAt: null,
    documentRef: null,
    rossumBaseUrl: null,
    ackState: null,
    ackDeadlineAt: null,
    ackAt: null,
    ackFile: null,
    erpReference: null,
    holdUntil: null,
    holdState: null,
    sequenceNumber: null,
    documentPath: null,
    documentSha256: null,
    documentBytes: null,
    documentUploadedAt: null,
    ...overrides,
  };
}

describe('claim rules: what an existing row means to a new delivery', () => {
  it('a live lease held by another process → wait for it', () => {
    expect(existingClaimOutcome(record({}), 'me', 1_999)).toBe('in_progress');
  });
  it('a lease that ran out (at the very millisecond too) → take over', () => {
    expect(existingClaimOutcome(record({}), 'me', 2_000)).toBe('takeover');
    expect(existingClaimOutcome(record({}), 'me', 2_001)).toBe('takeover');
  });
  it('an uploading row without a lease, or with our own lease → take over', () => {
    expect(existingClaimOutcome(record({ leaseExpiresAt: null }), 'me', 0)).toBe('takeover');
    expect(existingClaimOutcome(record({ leaseOwner: 'me' }), 'me', 0)).toBe('takeover');
  });
  it('a transient failure → take over; anything answered → replay', () => {
    expect(existingClaimOutcome(record({ status: 'retryable' }), 'me', 0)).toBe('takeover');
    expect(existingClaimOutcome(record({ status: 'uploaded' }), 'me', 0)).toBe('done');
    expect(existingClaimOutcome(record({ status: 'failed' }), 'me', 0)).toBe('done');
    expect(
      existingClaimOutcome(record({ status: 'uploaded', leaseExpiresAt: 9_999, leaseOwner: 'other' }), 'me', 0),
    ).toBe('done');
  });
});

describe('ack rules', () => {
  const table: Array<[ExportState, 'accepted' | 'rejected' | 'invalid', string | null, string]> = [
    ['uploaded', 'accepted', 'accepted', 'accepted'],
    ['awaiting_ack', 'accepted', 'accepted', 'accepted'],
    ['uploaded', 'rejected', 'rejected', 'rejected'],
    ['awaiting_ack', 'rejected', 'rejected', 'rejected'],
    ['uploaded', 'invalid', 'ack_invalid', 'invalid'],
    ['awaiting_ack', 'invalid', 'ack_invalid', 'invalid'],
    ['ack_timeout', 'accepted', 'accepted', 'accepted_late'],
    ['ack_invalid', 'accepted', 'accepted', 'accepted_late'],
    ['ack_timeout', 'rejected', 'rejected', 'rejected_late'],
    ['ack_invalid', 'rejected', 'rejected', 'rejected_late'],
    ['ack_timeout', 'invalid', null, 'duplicate'],
    ['ack_invalid', 'invalid', null, 'duplicate'],
    ['accepted', 'rejected', null, 'duplicate'],
    ['rejected', 'accepted', null, 'duplicate'],
    ['accepted', 'invalid', null, 'duplicate'],
    ['uploading', 'accepted', null, 'duplicate'],
    ['failed', 'rejected', null, 'duplicate'],
    ['retryable', 'invalid', null, 'duplicate'],
  ];
  it.each(table)('%s + %s → state %s, outcome %s', (current, verdict, state, kind) => {
    expect(ackTransition(current, verdict)).toEqual({ state, kind });
  });

  it('what enters the outbox', () => {
    expect(initialDelivery('duplicate', {}, null)).toBe('not_needed');
    expect(initialDelivery('duplicate', { quietIfAccepted: false }, 'pending')).toBe('not_needed');
    expect(initialDelivery('accepted', { quietIfAccepted: true }, null)).toBe('not_needed');
    expect(initialDelivery('accepted', { quietIfAccepted: true }, 'pending')).toBe('pending');
    expect(initialDelivery('accepted', { quietIfAccepted: false }, null)).toBe('pending');
    expect(initialDelivery('accepted', {}, null)).toBe('pending');
    expect(initialDelivery('accepted_late', { quietIfAccepted: true }, null)).toBe('pending');
    expect(initialDelivery('rejected', { quietIfAccepted: true }, null)).toBe('pending');
  });

  it('an outbox row reads back as the outcome it stored', () => {
    const row = {
      id: 3,
      export_id: 7,
      ack_file_id: null,
      kind: 'rejected' as const,
      detail: '{"messages":[{"code":"E1","text":"x"}]}',
      delivery: 'pending' as const,
      attempts: 2,
      next_attempt_at: 10,
      created_at: 5,
      delivered_at: null,
      last_error: 'boom',
      last_attempt_at: '9',
      result: null,
      note_attempted_at: 8,
    };
    expect(rowToOutcome(row)).toEqual({
      id: 3,
      exportId: 7,
      ackFileId: null,
      kind: 'rejected',
      detail: { messages: [{ code: 'E1', text: 'x' }] },
      delivery: 'pending',
      attempts: 2,
      nextAttemptAt: 10,
      createdAt: 5,
      deliveredAt: null,
      lastError: 'boom',
      lastAttemptAt: 9,
      result: null,
      noteAttempted: true,
    });
  });

  it('an outbox row with nothing attempted yet, then with a result, reads back as such', () => {
    const base = {
      id: 4,
      export_id: 8,
      ack_file_id: 2,
      kind: 'timeout' as const,
      detail: '{}',
      delivery: 'pending' as const,
      attempts: 0,
      next_attempt_at: 1,
      created_at: 1,
      delivered_at: null,
      last_error: null,
      last_attempt_at: null,
      result: null,
      note_attempted_at: null,
    };
    expect(rowToOutcome(base)).toMatchObject({ lastAttemptAt: null, result: null, noteAttempted: false });
    expect(
      rowToOutcome({
        ...base,
        delivery: 'delivered' as const,
        last_attempt_at: 12,
        result: 'told',
        note_attempted_at: '11',
      }),
    ).toMatchObject({ delivery: 'delivered', lastAttemptAt: 12, result: 'told', noteAttempted: true });
  });

  it('the name and stem an ERP quotes back', () => {
    expect(nameParts('out/INV-1_7.xml')).toEqual({ name: 'INV-1_7.xml', stem: 'INV-1_7' });
    expect(nameParts('INV.tar.gz')).toEqual({ name: 'INV.tar.gz', stem: 'INV.tar' });
    expect(nameParts('README')).toEqual({ name: 'README', stem: 'README' });
    expect(nameParts('a/.hidden')).toEqual({ name: '.hidden', stem: '.hidden' });
  });
});
