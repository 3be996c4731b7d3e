import { BridgeError } from '../errors.ts';
import { ackTransition, EMPTY_BACKLOG, initialDelivery, rowToOutcome, type OutcomeRow } from './ack-rules.ts';
import type { Queries } from './driver.ts';
import { addEvent, type LedgerContext } from './export-operations.ts';
import { rowToRecord, type ExportRow } from './rows.ts';
import type {
  AckDelivery,
  AckFileInput,
  AckLookup,
  AckOutcome,
  AckOutcomeDetail,
  ExportRecord,
  HoldState,
  OutcomeSettlement,
  RecordAckResult,
} from './types.ts';

export function awaitAcks(
  { driver, now: clock }: LedgerContext,
  rules: ReadonlyArray<{ mappingName: string; deadlineMs: number; since: number }>,
): Promise<number> {
  return driver.transaction(async (tx) => {
    const now = clock();
    let adopted = 0;
    for (const rule of rules) {
      const rows = await tx.all<{ id: number; ack_deadline_at: number }>(
        `UPDATE exports SET ack_state = 'awaiting_ack', ack_deadline_at = uploaded_at + ?, updated_at = ?
         WHERE mapping_name = ? AND status = 'uploaded' AND ack_state IS NULL AND uploaded_at >= ? RETURNING id, ack_deadline_at`,
        [rule.deadlineMs, now, rule.mappingName, rule.since],
      );
      for (const row of rows) await addEvent(tx, row.id, now, 'awaiting_ack', { deadlineAt: row.ack_deadline_at });
      adopted += rows.length;
    }
    return adopted;
  });
}

const ACK_COLUMNS = {
  name: 'e.remote_name',
  stem: 'e.remote_stem',
  annotationId: 'e.annotation_id',
  documentRef: 'e.document_ref',
} as const;

export async function findExportForAck(
  { driver, selectExport }: LedgerContext,
  lookup: AckLookup,
): Promise<ExportRecord | undefined> {
  const value = lookup.by === 'annotationId' ? Number(lookup.value) : lookup.value;
  if (lookup.by === 'annotationId' && !Number.isSafeInteger(value)) return undefined;
  const params: unknown[] = [lookup.target, value];
  const mappings =
    lookup.mappingNames && lookup.mappingNames.length > 0
      ? ` AND ${driver.dialect.inList('e.mapping_name', lookup.mappingNames, params)}`
      : '';
  const row = await driver.get<ExportRow>(
    `${selectExport} WHERE e.target = ? AND ${ACK_COLUMNS[lookup.by]} = ? AND e.status = 'uploaded'${mappings}
     ORDER BY CASE WHEN e.ack_state IS NULL OR e.ack_state IN ('awaiting_ack', 'ack_timeout', 'ack_invalid') THEN 0 ELSE 1 END, e.id DESC LIMIT 1`,
    params,
  );
  return row ? rowToRecord(row) : undefined;
}

/** One transaction (one commit) for the batch; results in input order. */
export function recordAcks(
  { driver, now }: LedgerContext,
  inputs: readonly AckFileInput[],
): Promise<RecordAckResult[]> {
  // Files in name order: two processes recording overlapping batches take their row locks in the same order.
  const order = inputs
    .map((input, index) => ({ input, index }))
    .sort((a, b) => (a.input.fileName < b.input.fileName ? -1 : a.input.fileName > b.input.fileName ? 1 : 0));
  return driver.transaction(async (tx) => {
    const results = new Array<RecordAckResult>(inputs.length);
    for (const { input, index } of order)
      results[index] = await recordOneAck(tx, driver.dialect.forUpdate, now(), input);
    return results;
  });
}

/** The console shows an ack file as it was read; beyond this the stored copy is cut (and says so). */
export const ACK_CONTENT_KEPT_BYTES = 64 * 1024;

async function recordOneAck(
  tx: Queries,
  forUpdate: string,
  now: number,
  input: AckFileInput,
): Promise<RecordAckResult> {
  const inserted = await tx.get<{ id: number }>(
    `INSERT INTO ack_files (source, file_name, sha256, convention, disposition, error, received_at, content, content_bytes, content_encoding)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (source, file_name, sha256) DO NOTHING RETURNING id`,
    [
      input.source,
      input.fileName,
      input.sha256,
      input.convention,
      input.disposition,
      input.error ?? null,
      now,
      input.content ? Buffer.from(input.content.subarray(0, ACK_CONTENT_KEPT_BYTES)) : null,
      input.content ? input.content.length : null,
      input.content ? (input.contentEncoding ?? null) : null,
    ],
  );
  if (!inserted) {
    const existing = (await tx.get<{ id: number }>(
      'SELECT id FROM ack_files WHERE source = ? AND file_name = ? AND sha256 = ?',
      [input.source, input.fileName, input.sha256],
    )) as { id: number };
    const outcomes = await tx.all<OutcomeRow>('SELECT * FROM ack_outcomes WHERE ack_file_id = ? ORDER BY id', [
      existing.id,
    ]);
    return { ackFileId: existing.id, alreadyRecorded: true, outcomes: outcomes.map(rowToOutcome) };
  }
  const ackFileId = inserted.id;
  const outcomes: AckOutcome[] = [];
  for (const entry of input.entries) {
    // Row lock: a concurrent ack or timeout for the same export waits and then sees this decision.
    const record = await tx.get<Pick<ExportRow, 'id' | 'status' | 'ack_state' | 'hold_state'>>(
      `SELECT id, status, ack_state, hold_state FROM exports WHERE id = ?${forUpdate}`,
      [entry.exportId],
    );
    if (!record) continue;
    const previous = record.ack_state ?? record.status;
    const { state, kind } = ackTransition(previous, entry.verdict);
    const detail: AckOutcomeDetail = {
      ackFile: input.fileName,
      messages: entry.messages,
      erpReference: entry.erpReference ?? null,
      previousState: previous,
      ...(input.landedAt !== undefined ? { landedAt: input.landedAt } : {}),
    };
    if (state !== null) {
      await tx.run(
        'UPDATE exports SET ack_state = ?, ack_at = ?, ack_file = ?, erp_reference = coalesce(?, erp_reference), updated_at = ? WHERE id = ?',
        [state, now, input.fileName, entry.erpReference ?? null, now, record.id],
      );
    }
    await addEvent(tx, record.id, now, kind === 'duplicate' ? 'ack_duplicate' : `ack_${kind}`, {
      ackFile: input.fileName,
      verdict: entry.verdict,
      codes: entry.messages.map((m) => m.code).filter(Boolean),
      ...(entry.erpReference ? { erpReference: entry.erpReference } : {}),
    });
    const delivery = initialDelivery(kind, entry, record.hold_state ?? null);
    const row = await tx.get<OutcomeRow>(
      `INSERT INTO ack_outcomes (export_id, ack_file_id, dedupe_key, kind, detail, delivery, next_attempt_at, created_at, delivered_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (dedupe_key) DO NOTHING RETURNING *`,
      [
        record.id,
        ackFileId,
        `file:${ackFileId}:${entry.index}`,
        kind,
        JSON.stringify(detail),
        delivery,
        now,
        now,
        delivery === 'pending' ? null : now,
      ],
    );
    if (row) outcomes.push(rowToOutcome(row));
  }
  return { ackFileId, alreadyRecorded: false, outcomes };
}

export function markAckFilesArchived(
  { driver, now: clock }: LedgerContext,
  archived: ReadonlyArray<{ ackFileId: number; archivedTo: string | null }>,
): Promise<void> {
  return driver.transaction(async (tx) => {
    const now = clock();
    for (const { ackFileId, archivedTo } of archived)
      await tx.run('UPDATE ack_files SET archived_to = ?, archived_at = ? WHERE id = ?', [
        archivedTo ?? '(deleted)',
        now,
        ackFileId,
      ]);
  });
}

/** `targets`: only exports to these targets (the ack folders that were read); all when omitted. */
export function expireAcks(
  { driver, now: clock }: LedgerContext,
  limit: number,
  targets?: readonly string[],
): Promise<AckOutcome[]> {
  if (targets?.length === 0) return Promise.resolve([]);
  return driver.transaction(async (tx) => {
    const now = clock();
    const params: unknown[] = [now, now];
    const onlyTargets = targets === undefined ? '' : ` AND ${driver.dialect.inList('target', targets, params)}`;
    params.push(limit);
    const due = await tx.all<{ id: number; ack_deadline_at: number }>(
      `UPDATE exports SET ack_state = 'ack_timeout', updated_at = ?
       WHERE id IN (SELECT id FROM exports WHERE ack_state = 'awaiting_ack' AND ack_deadline_at < ?${onlyTargets} ORDER BY ack_deadline_at LIMIT ?${driver.dialect.skipLocked})
       RETURNING id, ack_deadline_at`,
      params,
    );
    due.sort((a, b) => a.ack_deadline_at - b.ack_deadline_at || a.id - b.id);
    const outcomes: AckOutcome[] = [];
    for (const row of due) {
      await addEvent(tx, row.id, now, 'ack_timeout', { deadlineAt: row.ack_deadline_at });
      const detail: AckOutcomeDetail = { messages: [], previousState: 'awaiting_ack', deadlineAt: row.ack_deadline_at };
      const inserted = await tx.get<OutcomeRow>(
        `INSERT INTO ack_outcomes (export_id, dedupe_key, kind, detail, delivery, next_attempt_at, created_at)
         VALUES (?, ?, 'timeout', ?, 'pending', ?, ?) ON CONFLICT (dedupe_key) DO NOTHING RETURNING *`,
        [row.id, `timeout:${row.id}:${row.ack_deadline_at}`, JSON.stringify(detail), now, now],
      );
      if (inserted) outcomes.push(rowToOutcome(inserted));
    }
    return outcomes;
  });
}

export function claimOutcomes(
  { driver, now: clock }: LedgerContext,
  owner: string,
  leaseMs: number,
  limit: number,
): Promise<AckOutcome[]> {
  return driver.transaction(async (tx) => {
    const now = clock();
    const rows = await tx.all<OutcomeRow>(
      `UPDATE ack_outcomes SET lease_owner = ?, lease_expires_at = ?, attempts = attempts + 1, last_attempt_at = ?
       WHERE id IN (SELECT id FROM ack_outcomes WHERE delivery = 'pending' AND next_attempt_at <= ? AND (lease_expires_at IS NULL OR lease_expires_at < ?)
                    ORDER BY next_attempt_at, id LIMIT ?${driver.dialect.skipLocked})
       RETURNING *`,
      [owner, now + leaseMs, now, now, now, limit],
    );
    return rows.map(rowToOutcome).sort((a, b) => a.nextAttemptAt - b.nextAttemptAt || a.id - b.id);
  });
}

/**
 * The fence before each write to Rossum: one atomic statement extends the lease only while the outcome is
 * still this claim's — same owner and no claim since (`attempts` counts claims, so it is the claim's
 * generation). A lease that ran out but that nobody claimed since is still safely ours; one another process
 * claimed (or the console handed back) is not, and the caller must not write.
 */
export async function renewOutcomeLease(
  { driver, now }: LedgerContext,
  id: number,
  owner: string,
  generation: number,
  leaseMs: number,
): Promise<boolean> {
  const changed = await driver.run(
    `UPDATE ack_outcomes SET lease_expires_at = ? WHERE id = ? AND lease_owner = ? AND attempts = ? AND delivery = 'pending'`,
    [now() + leaseMs, id, owner, generation],
  );
  return changed === 1;
}

export async function markNoteAttempted({ driver, now }: LedgerContext, id: number): Promise<void> {
  await driver.run('UPDATE ack_outcomes SET note_attempted_at = coalesce(note_attempted_at, ?) WHERE id = ?', [
    now(),
    id,
  ]);
}

/** Pending outcomes become due now (new credentials: what waited for them goes at once). */
export async function retryPendingNow({ driver, now }: LedgerContext): Promise<number> {
  return driver.run(`UPDATE ack_outcomes SET next_attempt_at = ? WHERE delivery = 'pending' AND next_attempt_at > ?`, [
    now(),
    now(),
  ]);
}

export function settleOutcome(
  { driver, now: clock }: LedgerContext,
  id: number,
  owner: string,
  settlement: OutcomeSettlement,
  generation?: number,
): Promise<void> {
  return driver.transaction(async (tx) => {
    const now = clock();
    const params: unknown[] = [id, owner];
    if (generation !== undefined) params.push(generation);
    const row = await tx.get<{ export_id: number; kind: string }>(
      `SELECT export_id, kind FROM ack_outcomes WHERE id = ? AND lease_owner = ?${generation === undefined ? '' : ' AND attempts = ?'}${driver.dialect.forUpdate}`,
      params,
    );
    if (!row) throw lostOutcomeLease(id);
    if (settlement.delivery === 'retry') {
      await tx.run(
        'UPDATE ack_outcomes SET next_attempt_at = ?, last_error = ?, lease_owner = NULL, lease_expires_at = NULL WHERE id = ?',
        [settlement.retryAt, settlement.error, id],
      );
      await addEvent(tx, row.export_id, now, 'rossum_delivery_retry', {
        outcome: row.kind,
        error: settlement.error,
        retryAt: settlement.retryAt,
      });
      return;
    }
    const error = settlement.delivery === 'failed' || settlement.delivery === 'gone' ? settlement.error : null;
    const result = settlementResult(settlement);
    await tx.run(
      'UPDATE ack_outcomes SET delivery = ?, delivered_at = ?, last_error = coalesce(?, last_error), result = ?, lease_owner = NULL, lease_expires_at = NULL WHERE id = ?',
      [settlement.delivery, now, error, result, id],
    );
    if (settlement.delivery === 'not_needed') return;
    const eventKind = {
      failed: 'rossum_delivery_failed',
      gone: 'rossum_annotation_gone',
      left_alone: 'rossum_left_alone',
      delivered: 'rossum_told',
      by_hold: 'rossum_told',
    }[settlement.delivery];
    await addEvent(tx, row.export_id, now, eventKind, {
      outcome: row.kind,
      via: settlement.delivery === 'by_hold' ? 'held export reply' : 'api',
      ...(error ? { error } : {}),
      ...(result && settlement.delivery !== 'failed' && settlement.delivery !== 'gone' ? { note: result } : {}),
    });
  });
}

/** What `status` shows as the outcome's end in Rossum. */
function settlementResult(settlement: Exclude<OutcomeSettlement, { delivery: 'retry' }>): string | null {
  switch (settlement.delivery) {
    case 'left_alone':
      return `left alone: annotation was in ${settlement.rossumStatus}${settlement.note ? `; ${settlement.note}` : ''}`;
    case 'gone':
      return `gone: ${settlement.error}`;
    case 'failed':
      return null;
    case 'by_hold':
      return settlement.note ?? 'told by the held export reply';
    default:
      return settlement.note ?? null;
  }
}

export async function outcomesOf({ driver }: LedgerContext, exportId: number): Promise<AckOutcome[]> {
  return (await driver.all<OutcomeRow>('SELECT * FROM ack_outcomes WHERE export_id = ? ORDER BY id', [exportId])).map(
    rowToOutcome,
  );
}

export async function outcomeBacklog({ driver }: LedgerContext): Promise<Record<AckDelivery, number>> {
  const rows = await driver.all<{ delivery: AckDelivery; n: number | string }>(
    'SELECT delivery, count(*) AS n FROM ack_outcomes GROUP BY delivery',
  );
  const backlog = { ...EMPTY_BACKLOG };
  for (const row of rows) backlog[row.delivery] = Number(row.n);
  return backlog;
}

export function startHold({ driver, now: clock }: LedgerContext, exportId: number, until: number): Promise<void> {
  return driver.transaction(async (tx) => {
    const now = clock();
    const changed = await tx.run(
      `UPDATE exports SET hold_until = ?, hold_state = 'pending', updated_at = ? WHERE id = ? AND hold_state IS NULL`,
      [until, now, exportId],
    );
    if (changed === 1) await addEvent(tx, exportId, now, 'hold_started', { until });
  });
}

/** Compare-and-set of the hold state, and its event, in one transaction. */
export function moveHold(
  { driver, now: clock }: LedgerContext,
  exportId: number,
  from: readonly HoldState[],
  to: HoldState,
): Promise<boolean> {
  return driver.transaction(async (tx) => {
    const now = clock();
    const params: unknown[] = [to, now, exportId];
    const changed = await tx.run(
      `UPDATE exports SET hold_state = ?, updated_at = ? WHERE id = ? AND ${driver.dialect.inList('hold_state', from, params)}`,
      params,
    );
    if (changed === 1) await addEvent(tx, exportId, now, `hold_${to}`, {});
    return changed === 1;
  });
}

function lostOutcomeLease(id: number): BridgeError {
  return new BridgeError(
    'LEDGER_LEASE_LOST',
    `Ack outcome ${id} was taken over by another process before this one finished`,
    { permanent: false },
  );
}
