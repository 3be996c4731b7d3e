import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import iconv from 'iconv-lite';
import type { RossumSimulator } from '../support/rossum-simulator.ts';
import type { Attempt } from './deliveries.ts';
import { BATCH_NAME } from './documents.ts';
import { exportStatus } from './export-analysis.ts';
import type { LedgerProbe } from './ledger-probe.ts';

export interface BatchFindings {
  /** Batch annotations of the run. */
  annotations: number;
  /** Batch files on the server, and how many documents they hold in all. */
  files: number;
  /** Batches whose send was tried more than once (a fault struck it, or a kill left it to the next process). */
  sendsRetried: number;
  /** Annotations found in exactly one sent batch file, the ledger and Rossum agreeing. */
  sentExactlyOnce: number;
  /** Each must stay empty. */
  lost: string[];
  duplicated: string[];
  partial: string[];
  ledgerMismatches: string[];
  badReplies: string[];
}

/** A data row names its document in "Belegfeld 1" (`B<annotation id>`, quoted text). */
const DOCUMENT_FIELD = /(?:^|;)"?B(\d+)"?(?=;|$)/;

/**
 * The batch side's end state: every batch annotation in exactly one batch file on the server (its rows read back
 * to their annotations by document number), no file twice or changed after it was visible, every batch the ledger
 * has sent with exactly that file (name, size, hash, documents), its export rows pointing at it, and Rossum told
 * 200 (or 503 while the bridge could not record it, then retried).
 */
export function analyseBatches(input: {
  inboundDir: string;
  probe: LedgerProbe;
  /** Annotation id → its document number in a batch file. */
  batched: ReadonlyMap<number, string>;
  /** Batch files as the observer first saw them. */
  firstViews: ReadonlyMap<string, Buffer>;
  simulator: RossumSimulator;
  attempts: Attempt[];
}): BatchFindings {
  const { inboundDir, probe, batched, simulator } = input;
  const lost: string[] = [];
  const duplicated: string[] = [];
  const partial: string[] = [];
  const ledgerMismatches: string[] = [];
  const badReplies: string[] = [];

  const files = readdirSync(inboundDir).filter((name) => BATCH_NAME.test(name));
  const documentsIn = new Map<string, Set<number>>();
  const filesOf = new Map<number, string[]>();
  for (const name of files) {
    const bytes = readFileSync(join(inboundDir, name));
    const first = input.firstViews.get(name);
    if (first && !first.equals(bytes))
      partial.push(`${name}: first seen with ${first.length} bytes, now ${bytes.length}`);
    const lines = iconv.decode(bytes, 'windows-1252').split('\r\n');
    if (lines.at(-1) !== '') partial.push(`${name}: does not end with a complete record`);
    const ids = new Set<number>();
    for (const line of lines.slice(1, -1)) {
      const id = Number(DOCUMENT_FIELD.exec(line)?.[1]);
      if (!batched.has(id)) partial.push(`${name}: a row naming no batch document: ${line.slice(0, 80)}`);
      else ids.add(id);
    }
    documentsIn.set(name, ids);
    for (const id of ids) filesOf.set(id, [...(filesOf.get(id) ?? []), name]);
  }

  const { batches, entries, exports } = probe.batches();
  const sentFiles = new Set<string>();
  for (const batch of batches) {
    const name = batch.remote_path === null ? null : basename(batch.remote_path);
    const holds = new Set(
      entries.filter((entry) => entry.batch_id === batch.id && entry.replaced === 0).map((e) => e.annotation_id),
    );
    if (batch.status !== 'sent' || name === null) {
      ledgerMismatches.push(`batch ${batch.number}: ${batch.status} at the end (${holds.size} documents)`);
      continue;
    }
    sentFiles.add(name);
    const inFile = documentsIn.get(name);
    if (!inFile) {
      ledgerMismatches.push(`batch ${batch.number}: sent as ${name}, which is not on the server`);
      continue;
    }
    const bytes = readFileSync(join(inboundDir, name));
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    if (bytes.length !== batch.bytes || sha256 !== batch.sha256)
      ledgerMismatches.push(
        `batch ${batch.number}: ledger ${batch.bytes} bytes, ${name} has ${bytes.length} (or another hash)`,
      );
    const same = inFile.size === holds.size && [...holds].every((id) => inFile.has(id));
    if (!same)
      ledgerMismatches.push(
        `batch ${batch.number}: ledger holds ${JSON.stringify([...holds])}, ${name} ${JSON.stringify([...inFile])}`,
      );
  }
  for (const name of files)
    if (!sentFiles.has(name)) ledgerMismatches.push(`${name}: on the server, but no sent batch in the ledger names it`);

  let sentExactlyOnce = 0;
  for (const [id] of batched) {
    const names = filesOf.get(id) ?? [];
    const annotation = simulator.annotation(id);
    if (names.length > 1) duplicated.push(`${id}: in ${names.join(', ')}`);
    if (names.length === 0) lost.push(`${id}: Rossum ${annotation.status}, in no batch file on the server`);
    else if (exportStatus(annotation) !== 'exported')
      lost.push(`${id}: in ${names.join(', ')} but Rossum ${exportStatus(annotation)}`);
    const rows = exports.filter((row) => row.annotation_id === id);
    const rowsAgree =
      rows.length === 1 && rows[0]!.status === 'uploaded' && names.includes(basename(rows[0]!.remote_path ?? ''));
    if (!rowsAgree)
      ledgerMismatches.push(
        `${id}: export rows ${JSON.stringify(rows.map((row) => [row.status, row.remote_path]))}, files ${JSON.stringify(names)}`,
      );
    // Rossum was told: 200 with a message (the batch, or where it was sent); 503 only while it could not be recorded.
    for (const { record } of input.attempts.filter((attempt) => attempt.id === id)) {
      if (record.statusCode !== null && record.statusCode !== 200 && record.statusCode !== 503)
        badReplies.push(`${id} attempt ${record.attempt}: ${record.statusCode} ${record.bodyExcerpt.slice(0, 160)}`);
    }
    const told = annotation.messages.some((m) => m.type === 'info' && /batch/i.test(m.content));
    if (!told) badReplies.push(`${id}: no info message naming its batch in Rossum`);
    if (names.length === 1 && rowsAgree && exportStatus(annotation) === 'exported') sentExactlyOnce++;
  }
  return {
    annotations: batched.size,
    files: files.length,
    sendsRetried: batches.filter((batch) => batch.attempts > 1).length,
    sentExactlyOnce,
    lost,
    duplicated,
    partial,
    ledgerMismatches,
    badReplies,
  };
}
