import { createHash } from 'node:crypto';
import type { ExportPayload } from '../annotation/index.ts';
import { BridgeError, describeError, isBridgeError } from '../errors.ts';
import type { ExportRecord, Ledger } from '../ledger/index.ts';
import type { DocumentSettings, OnExisting } from '../mapping/index.ts';
import type { Logger } from '../observability/index.ts';
import { DEFAULT_ALLOWED_HOSTS, trustedPayloadRoot } from '../rossum/index.ts';
import type { OperationOptions, Target } from '../transport/index.ts';

/** The original document of one delivery, as far as the payload tells (plain data). */
export interface PreparedDocument {
  settings: DocumentSettings;
  /** Rossum's content URL: `document.content`, else `annotation.document` + `/content`; null when the payload names none. */
  url: string | null;
  /** `document 314621 (invoice.pdf)`, for messages. */
  label: string;
  originalFileName: string | null;
  /** The webhook's short-lived `rossum_authorization_token`, when the hook has a token owner. */
  webhookToken: string | null;
}

/** How the bridge may fetch documents when the webhook brings no token, and where tokens may go. */
export interface DocumentFetchSettings {
  /** Configured API root (`rossum.baseUrl`): documents are fetched from its origin only. */
  apiRoot?: string;
  /** Hosts a payload may name when no API root is configured (default: Rossum's cloud domains). */
  allowedHosts?: readonly string[];
  /** Configured long-lived token (`rossum.token`), used when the webhook carries none. */
  token?: string;
  authScheme?: 'Bearer' | 'Token';
  timeoutMs?: number;
}

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

function unavailable(document: PreparedDocument, reason: string, permanent: boolean, cause?: unknown): BridgeError {
  return new BridgeError('DOCUMENT_UNAVAILABLE', `The original ${document.label} could not be fetched: ${reason}`, {
    permanent,
    ...(cause === undefined ? {} : { cause }),
  });
}

/** Only the configured API's origin, or (without one) an allow-listed https host, ever gets a token. */
function trustedUrl(document: PreparedDocument, url: string, settings: DocumentFetchSettings): URL {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw unavailable(document, `the payload's document URL is not a URL: ${JSON.stringify(url.slice(0, 200))}`, true);
  }
  const refuse = (why: string): BridgeError =>
    new BridgeError(
      'DOCUMENT_NOT_TRUSTED',
      `Refusing to fetch the original ${document.label} from ${parsed.origin}: ${why}`,
      {
        permanent: true,
      },
    );
  if (settings.apiRoot) {
    if (parsed.origin !== new URL(settings.apiRoot).origin)
      throw refuse(`it is not rossum.baseUrl (${new URL(settings.apiRoot).origin})`);
    return parsed;
  }
  try {
    trustedPayloadRoot(parsed.origin, settings.allowedHosts ?? DEFAULT_ALLOWED_HOSTS);
  } catch (error) {
    throw refuse(`the host is not in rossum.allowedHosts, or not https (${describeError(error)})`);
  }
  return parsed;
}

/** Streams the document into memory up to `maxBytes` (refused beyond), hashing as it goes. */
export async function fetchDocument(
  document: PreparedDocument,
  settings: DocumentFetchSettings,
  signal?: AbortSignal,
): Promise<{ bytes: Buffer; sha256: string }> {
  if (!document.url) throw unavailable(document, 'the export payload names no document (annotation.document)', true);
  const url = trustedUrl(document, document.url, settings);
  const token = document.webhookToken ?? settings.token;
  if (!token)
    throw unavailable(
      document,
      'no token: the hook has no token_owner (no rossum_authorization_token in the call) and rossum.token is not set',
      true,
    );
  const timeout = AbortSignal.timeout(settings.timeoutMs ?? 30_000);
  const combined = signal ? AbortSignal.any([signal, timeout]) : timeout;
  let response: Response;
  try {
    response = await fetch(url, {
      headers: { Authorization: `${settings.authScheme ?? 'Bearer'} ${token}` },
      signal: combined,
    });
  } catch (error) {
    const reason = timeout.aborted ? `no answer within ${settings.timeoutMs ?? 30_000} ms` : describeError(error);
    throw unavailable(document, reason, false, error);
  }
  if (!response.ok) {
    await response.body?.cancel().catch(() => undefined);
    const status = response.status;
    const permanent =
      status === 404 || status === 410 || (status >= 400 && status < 500 && ![401, 403, 408, 429].includes(status));
    const why =
      status === 401 || status === 403
        ? `HTTP ${status} (the token was refused; Rossum's retry brings a fresh one)`
        : status === 404 || status === 410
          ? `HTTP ${status} (Rossum no longer has it)`
          : `HTTP ${status}`;
    throw unavailable(document, why, permanent);
  }
  const { maxBytes } = document.settings;
  const tooLarge = (size: string): BridgeError =>
    new BridgeError(
      'DOCUMENT_TOO_LARGE',
      `The original ${document.label} is ${size}, more than the mapping's document.max_bytes (${maxBytes})`,
      { permanent: true },
    );
  const declared = Number(response.headers.get('content-length') ?? Number.NaN);
  if (declared > maxBytes) {
    await response.body?.cancel().catch(() => undefined);
    throw tooLarge(`${declared} bytes`);
  }
  const hash = createHash('sha256');
  const chunks: Buffer[] = [];
  let total = 0;
  try {
    for await (const chunk of response.body ?? []) {
      total += chunk.byteLength;
      if (total > maxBytes) throw tooLarge(`over ${maxBytes} bytes`);
      const buffer = Buffer.from(chunk);
      hash.update(buffer);
      chunks.push(buffer);
    }
  } catch (error) {
    await response.body?.cancel().catch(() => undefined);
    if (isBridgeError(error)) throw error;
    throw unavailable(document, `the download broke off after ${total} bytes (${describeError(error)})`, false, error);
  }
  return { bytes: Buffer.concat(chunks, total), sha256: hash.digest('hex') };
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
  let fetched: { bytes: Buffer; sha256: string };
  try {
    fetched = await fetchDocument(document, input.fetchSettings, opOptions.signal);
    if (input.takeover && (await sameOnServer(target, path, fetched, opOptions))) {
      log.info({ exportId: record.id, documentPath: path }, 'an earlier attempt had already uploaded the document');
    } else {
      await target.upload(
        {
          relativePath: path,
          bytes: fetched.bytes,
          onExisting: input.onExisting === 'overwrite' ? 'overwrite' : 'fail',
        },
        opOptions,
      );
    }
  } catch (error) {
    if (document.settings.required) throw error;
    const warning = `The data file was uploaded without its original document (document.required: false): ${describeError(error)}`;
    log.warn({ exportId: record.id, documentPath: path }, warning);
    return { kind: 'skipped', warning };
  }
  await input.ledger.recordDocument(record.id, input.owner, {
    path,
    sha256: fetched.sha256,
    bytes: fetched.bytes.length,
  });
  return { kind: 'placed', path, bytes: fetched.bytes.length };
}

async function sameOnServer(
  target: Target,
  path: string,
  fetched: { bytes: Buffer; sha256: string },
  opOptions: OperationOptions,
): Promise<boolean> {
  const stat = await target.stat(path, opOptions);
  if (!stat || stat.size !== fetched.bytes.length) return false;
  const bytes = await target.readFile(path, opOptions);
  return createHash('sha256').update(bytes).digest('hex') === fetched.sha256;
}
