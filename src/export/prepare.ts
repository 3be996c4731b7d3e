import { createHash } from 'node:crypto';
import type { AnnotationView, ExportPayload } from '../annotation/index.ts';
import { BridgeError, describeError, isBridgeError } from '../errors.ts';
import type { MappingRegistry, OnExisting, RenderedFile } from '../mapping/index.ts';
import type { HookCredentials } from '../transport/index.ts';
import { prepareBatchEntry, type PreparedBatchEntry } from './batches.ts';
import { documentOf, type PreparedDocument } from './document.ts';
import { errorReply, type ExportReply } from './replies.ts';
import { resolveRoute, type Route } from './routes.ts';

/**
 * One delivery routed and rendered: everything the upload and the ledger need (plain data, apart from
 * `renderAt` for the mappings that read per-delivery values).
 */
/**
 * The ledger key of one export: the same annotation, target and content are one upload, whichever
 * process or retry delivers it. `contentSha256` is the rendered file's (with pinned clock and sequence
 * when the mapping reads per-delivery values).
 */
export function exportIdempotencyKey(annotationId: number, target: string, contentSha256: string): string {
  return `${annotationId}:${target}:${contentSha256}`;
}

export interface PreparedExport {
  annotationId: number;
  requestId: string;
  mappingName: string;
  mappingHash: string;
  onExisting: OnExisting;
  targetName: string;
  file: RenderedFile;
  sha256: string;
  /**
   * annotation × target × sha256 of the bytes rendered with the per-delivery values (`meta.now`,
   * `meta.request_id`, `meta.hook_timestamp`) pinned: the same content is uploaded once, and Rossum's
   * retry of an export is recognised even when the mapping reads the clock.
   */
  idempotencyKey: string;
  /** The clock the render read (epoch ms); the ledger keeps it as the export's `createdAt`. */
  renderedAt: number;
  /** Renders again at another clock (the first attempt's), for mappings whose bytes depend on it. */
  renderAt?: (now: Date) => RenderedFile;
  documentRef: string | null;
  /**
   * Set when the mapping reads `{seq}`: `file` and `sha256` are then a placeholder render until the
   * service allocates the number (keyed by `idempotencyKey`, which is made with the number pinned).
   */
  sequence?: { counter: string; start: number; render: (sequence: number, now: Date) => RenderedFile };
  /** Set when the mapping uploads the original document beside the data file. */
  document?: PreparedDocument;
  /** Set for a batch mapping: the document's entry, recorded in the open batch instead of uploaded. */
  batch?: PreparedBatchEntry;
  credentials: HookCredentials | undefined;
  rossumBaseUrl: string | null;
}

/** What the export service is handed: a prepared export, or the permanent reason there is none. */
export type ExportPreparation =
  | { kind: 'ready'; prepared: PreparedExport }
  | { kind: 'refused'; annotationId: number; requestId: string; code: string; message: string; reply: ExportReply };

export interface PrepareSettings {
  mappings: MappingRegistry;
  routes: readonly Route[];
  /** Targets that exist (their connections live with the uploader, not here). */
  targetNames: ReadonlySet<string>;
  /** Values mappings may read with an env source (only what the operator exposes). */
  env?: Record<string, string | undefined>;
  now?: () => Date;
}

/** Route → render → hash; a mapping or routing problem becomes a refusal Rossum shows as failed_export. */
export function prepareOrRefuse(
  payload: ExportPayload,
  view: AnnotationView,
  settings: PrepareSettings,
): ExportPreparation {
  try {
    return { kind: 'ready', prepared: prepareExport(payload, view, settings) };
  } catch (error) {
    return {
      kind: 'refused',
      annotationId: view.meta.annotationId,
      requestId: view.meta.requestId,
      code: isBridgeError(error) ? error.code : 'INTERNAL',
      message: describeError(error),
      reply: errorReply(error, 'failed'),
    };
  }
}

/** Throws a permanent BridgeError when no mapping or target fits, or the mapping cannot render the document. */
export function prepareExport(payload: ExportPayload, view: AnnotationView, settings: PrepareSettings): PreparedExport {
  const route = resolveRoute(settings.routes, view.meta);
  const mapping = settings.mappings.get(route.mapping);
  if (!mapping) {
    throw new BridgeError(
      'MAPPING_NOT_FOUND',
      `Mapping "${route.mapping}" (chosen by ${route.reason}) does not exist in the mappings folder`,
      {
        permanent: true,
      },
    );
  }
  if (!settings.targetNames.has(route.target)) {
    throw new BridgeError(
      'TARGET_NOT_FOUND',
      `Target "${route.target}" (chosen by ${route.reason}) is not configured`,
      { permanent: true },
    );
  }
  const context = {
    route: { ...route.values, mapping: route.mapping, target: route.target },
    ...(settings.env ? { env: settings.env } : {}),
  };
  const now = settings.now?.() ?? new Date();
  const numbered = mapping.sequence;
  const placeholder = numbered ? { sequence: PINNED_SEQUENCE } : {};
  const file = mapping.render(view, { ...context, ...placeholder, now });
  const sha256 = createHash('sha256').update(file.bytes).digest('hex');
  const perDelivery = mapping.readsPerDeliveryValues === true;
  const keySha = perDelivery
    ? createHash('sha256')
        .update(mapping.render(pinnedView(view), { ...context, ...placeholder, now: PINNED_CLOCK }).bytes)
        .digest('hex')
    : sha256;
  const batch = mapping.batch
    ? prepareBatchEntry(mapping, view, { view: pinnedView(view), now: PINNED_CLOCK }, { ...context, now })
    : undefined;
  return {
    annotationId: view.meta.annotationId,
    requestId: view.meta.requestId,
    mappingName: mapping.name,
    mappingHash: mapping.versionHash,
    onExisting: mapping.onExisting,
    targetName: route.target,
    file,
    sha256,
    idempotencyKey: exportIdempotencyKey(view.meta.annotationId, route.target, batch?.keySha ?? keySha),
    renderedAt: now.getTime(),
    ...(perDelivery ? { renderAt: (at: Date) => mapping.render(view, { ...context, ...placeholder, now: at }) } : {}),
    ...(numbered
      ? {
          sequence: {
            counter: numbered.counter ?? `target:${route.target}`,
            start: numbered.start,
            render: (sequence: number, at: Date) => mapping.render(view, { ...context, sequence, now: at }),
          },
        }
      : {}),
    documentRef: view.field('document_id')?.value || null,
    ...(mapping.document ? { document: documentOf(payload, mapping.document) } : {}),
    ...(batch ? { batch } : {}),
    credentials: hookCredentials(payload.secrets),
    rossumBaseUrl: payload.base_url ?? null,
  };
}

/** What stands for the per-delivery values in the render the idempotency key is made of. */
const PINNED_CLOCK = new Date(0);
/** The number is not content: a re-delivery of the same content must find (and reuse) the same key. */
const PINNED_SEQUENCE = 0;

function pinnedView(view: AnnotationView): AnnotationView {
  return {
    meta: { ...view.meta, requestId: 'pinned', hookTimestamp: null },
    field: (schemaId) => view.field(schemaId),
    rows: (schemaId) => view.rows(schemaId),
    hasTable: (schemaId) => view.hasTable(schemaId),
  };
}

function hookCredentials(secrets: Record<string, unknown> | null | undefined): HookCredentials | undefined {
  if (!secrets) return undefined;
  const pick = (key: string): string | undefined =>
    typeof secrets[key] === 'string' ? (secrets[key] as string) : undefined;
  const credentials: HookCredentials = {};
  const username = pick('username');
  const password = pick('password');
  const privateKey = pick('privateKey') ?? pick('private_key');
  const passphrase = pick('passphrase');
  if (username) credentials.username = username;
  if (password) credentials.password = password;
  if (privateKey) credentials.privateKey = privateKey;
  if (passphrase) credentials.passphrase = passphrase;
  return Object.keys(credentials).length > 0 ? credentials : undefined;
}
