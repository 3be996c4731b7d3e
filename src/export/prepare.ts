import { createHash } from 'node:crypto';
import type { AnnotationView, ExportPayload } from '../annotation/index.ts';
import { BridgeError, describeError, isBridgeError } from '../errors.ts';
import type { MappingRegistry, OnExisting, RenderedFile } from '../mapping/index.ts';
import type { HookCredentials } from '../transport/index.ts';
import { errorReply, type ExportReply } from './replies.ts';
import { resolveRoute, type Route } from './routes.ts';

/**
 * One delivery routed and rendered: everything the upload and the ledger need, as plain data, so it
 * can be made on another thread than the one that uploads.
 */
export interface PreparedExport {
  annotationId: number;
  requestId: string;
  mappingName: string;
  mappingHash: string;
  onExisting: OnExisting;
  targetName: string;
  file: RenderedFile;
  sha256: string;
  /** annotation × target × sha256 of the bytes: the same content is uploaded once. */
  idempotencyKey: string;
  documentRef: string | null;
  credentials: HookCredentials | undefined;
  rossumBaseUrl: string | null;
}

/** What the export service is handed: a prepared export, or the permanent reason there is none. */
export type ExportIntake =
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
export function intakeExport(payload: ExportPayload, view: AnnotationView, settings: PrepareSettings): ExportIntake {
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
    throw new BridgeError('MAPPING_NOT_FOUND', `Mapping "${route.mapping}" (chosen by ${route.reason}) does not exist in the mappings folder`, {
      permanent: true,
    });
  }
  if (!settings.targetNames.has(route.target)) {
    throw new BridgeError('TARGET_NOT_FOUND', `Target "${route.target}" (chosen by ${route.reason}) is not configured`, { permanent: true });
  }
  const file = mapping.render(view, {
    route: { ...route.values, mapping: route.mapping, target: route.target },
    ...(settings.env ? { env: settings.env } : {}),
    now: settings.now?.() ?? new Date(),
  });
  const sha256 = createHash('sha256').update(file.bytes).digest('hex');
  return {
    annotationId: view.meta.annotationId,
    requestId: view.meta.requestId,
    mappingName: mapping.name,
    mappingHash: mapping.versionHash,
    onExisting: mapping.onExisting,
    targetName: route.target,
    file,
    sha256,
    idempotencyKey: `${view.meta.annotationId}:${route.target}:${sha256}`,
    documentRef: view.field('document_id')?.value || null,
    credentials: hookCredentials(payload.secrets),
    rossumBaseUrl: payload.base_url ?? null,
  };
}

function hookCredentials(secrets: Record<string, unknown> | null | undefined): HookCredentials | undefined {
  if (!secrets) return undefined;
  const pick = (key: string): string | undefined => (typeof secrets[key] === 'string' ? (secrets[key] as string) : undefined);
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
