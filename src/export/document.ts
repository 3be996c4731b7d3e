import { createHash } from 'node:crypto';
import type { ExportPayload } from '../annotation/index.ts';
import { describeError, isBridgeError } from '../errors.ts';
import type { ExportRecord, Ledger } from '../ledger/index.ts';
import type { DocumentSettings, OnExisting } from '../mapping/index.ts';
import type { Logger } from '../observability/index.ts';
import type { OperationOptions, Target } from '../transport/index.ts';
import {
  fetchDocument,
  type DocumentDigest,
  type DocumentFetchSettings,
  type PreparedDocument,
} from './document-fetch.ts';
import { removeLeftoverTemps } from './leftovers.ts';

export type { DocumentFetchSettings, PreparedDocument } from './document-fetch.ts';

export function documentOf(payload: ExportPayload, settings: DocumentSettings): PreparedDocument {
  const document = payload.document as (Record<string, unknown> & { id?: number }) | undefined;
  const content = typeof document?.content === 'string' ? document.content : null;
  const annotationDocument = payload.annotation.document ?? null;
  const url = content ?? (annotationDocument ? `${annotationDocument.replace(/\/+$/, '')}/content` : null);
  const originalFileName = typeof document?.original_file_name === 'string' ? document.original_file_name : null;
  const id = document?.id ?? annotationDocument?.match(/\/(\d+)\/?$/)?.[1] ?? '?';
  return {
    settings,
    url,
    label: `document ${id}${originalFileName ? ` (${JSON.stringify(originalFileName).slice(1, -1)})` : ''}`,
    originalFileName,
    webhookToken: payload.rossum_authorization_token ?? null,
  };
}

/** `INV_1.xml` → `INV_1.pdf` (or `scans/INV_1.pdf`): the data file's stem, the document's extension. */
export function documentPath(dataFileName: string, document: PreparedDocument): string {
  const slash = dataFileName.lastIndexOf('/');
  const name = dataFileName.slice(slash + 1);
  const dot = name.lastIndexOf('.');
  const stem = dot > 0 ? name.slice(0, dot) : name;
  const originalExtension = document.originalFileName?.match(/\.([A-Za-z0-9]{1,10})$/)?.[0]?.toLowerCase();
  const extension = document.settings.extension ?? originalExtension ?? '.pdf';
  const folder = document.settings.folder ?? (slash >= 0 ? dataFileName.slice(0, slash) : '');
  const fileName = document.settings.name.replaceAll('{stem}', stem).replaceAll('{ext}', extension);
  // A data file without an extension would otherwise be overwritten by its own document.
  const distinct = fileName === name ? `${stem}.document${extension}` : fileName;
  return folder ? `${folder}/${distinct}` : distinct;
}

export interface PlaceDocumentInput {
  document: PreparedDocument;
  dataFileName: string;
  onExisting: OnExisting;
  record: ExportRecord;
  takeover: boolean;
  target: Target;
  ledger: Ledger;
  owner: string;
  fetchSettings: DocumentFetchSettings;
  opOptions: OperationOptions;
  log: Logger;
}

export type PlacedDocument = { kind: 'placed'; path: string; bytes: number } | { kind: 'skipped'; warning: string };

/**
 * Puts the original document in place (atomic upload) and records it, before the data file is uploaded.
 * A retry of a pair whose document already landed (recorded, or found byte for byte after a crash
 * before recording) does not upload it again. With `required: false` a failure becomes a warning.
 */
export async function placeDocument(input: PlaceDocumentInput): Promise<PlacedDocument> {
  const { document, record, target, opOptions, log } = input;
  const path = documentPath(input.dataFileName, document);
  if (record.documentUploadedAt !== null && record.documentPath === path) {
    const stat = await target.stat(path, opOptions);
    if (stat && stat.size === record.documentBytes) return { kind: 'placed', path, bytes: stat.size };
  }
  let placed: Uploaded;
  try {
    const fetched = await fetchDocument(document, input.fetchSettings, opOptions.signal);
    try {
      placed =
        fetched.kind === 'whole' ? await uploadWhole(input, path, fetched) : await uploadStreamed(input, path, fetched);
    } finally {
      fetched.close();
    }
  } catch (error) {
    if (document.settings.required) throw error;
    const warning = `The data file was uploaded without its original document (document.required: false): ${describeError(error)}`;
    log.warn({ exportId: record.id, documentPath: path }, warning);
    return { kind: 'skipped', warning };
  }
  if (input.takeover || placed.mayHaveLeftTemps)
    await removeLeftoverTemps(
      input.target,
      path,
      input.opOptions,
      input.log.child({ exportId: input.record.id }),
      'an earlier document upload',
    );
  await input.ledger.recordDocument(record.id, input.owner, { path, ...placed.digest });
  return { kind: 'placed', path, bytes: placed.digest.bytes };
}

/** What was uploaded, and whether a try of the upload may have left a temp file behind. */
interface Uploaded {
  digest: DocumentDigest;
  mayHaveLeftTemps: boolean;
}

const uploadPolicy = (onExisting: OnExisting): OnExisting => (onExisting === 'overwrite' ? 'overwrite' : 'fail');

async function uploadWhole(
  input: PlaceDocumentInput,
  path: string,
  fetched: { bytes: Buffer; sha256: string },
): Promise<Uploaded> {
  const { target, opOptions } = input;
  const digest = { sha256: fetched.sha256, bytes: fetched.bytes.length };
  if (input.takeover && (await sameOnServer(target, path, digest, opOptions))) {
    alreadyThere(input, path);
    return { digest, mayHaveLeftTemps: false };
  }
  const result = await target.upload(
    { relativePath: path, bytes: fetched.bytes, onExisting: uploadPolicy(input.onExisting) },
    opOptions,
  );
  return { digest, mayHaveLeftTemps: result.mayHaveLeftTemps === true };
}

/**
 * Streams the download into the upload's temp name. Its hash is known only once it is written, so an
 * earlier attempt's copy (a crash after the rename, before the ledger) is compared after the upload
 * found the name taken.
 */
async function uploadStreamed(
  input: PlaceDocumentInput,
  path: string,
  fetched: { stream: AsyncIterable<Buffer>; digest(): DocumentDigest },
): Promise<Uploaded> {
  const { target, opOptions } = input;
  try {
    const result = await target.upload(
      { relativePath: path, stream: fetched.stream, onExisting: uploadPolicy(input.onExisting) },
      opOptions,
    );
    return { digest: fetched.digest(), mayHaveLeftTemps: result.mayHaveLeftTemps === true };
  } catch (error) {
    const taken = isBridgeError(error) && error.code === 'TARGET_EXISTS';
    if (!taken || !input.takeover || !(await sameOnServer(target, path, fetched.digest(), opOptions))) throw error;
    alreadyThere(input, path);
    return { digest: fetched.digest(), mayHaveLeftTemps: false };
  }
}

function alreadyThere(input: PlaceDocumentInput, path: string): void {
  input.log.info(
    { exportId: input.record.id, documentPath: path },
    'an earlier attempt had already uploaded the document',
  );
}

async function sameOnServer(
  target: Target,
  path: string,
  digest: DocumentDigest,
  opOptions: OperationOptions,
): Promise<boolean> {
  const stat = await target.stat(path, opOptions);
  if (!stat || stat.size !== digest.bytes) return false;
  const bytes = await target.readFile(path, { ...opOptions, maxBytes: digest.bytes });
  return createHash('sha256').update(bytes).digest('hex') === digest.sha256;
}
