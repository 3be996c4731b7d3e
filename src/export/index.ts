/** The export pipeline below HTTP: route → render → claim → upload → answer. */
export {
  ExportService,
  KEEP_FOR_RETRY_MAX_BYTES,
  ownerIsGone,
  type ExportServiceOptions,
  type HandleOptions,
} from './service.ts';
export type { RetryRequest, RetryResult } from './retry.ts';
export {
  exportIdempotencyKey,
  prepareExport,
  prepareOrRefuse,
  type ExportPreparation,
  type PreparedExport,
  type PrepareSettings,
} from './prepare.ts';
export { errorReply, limitMessage, transientReply, type ExportReply, type RossumMessage } from './replies.ts';
export { routeSchema, resolveRoute, type Route, type ResolvedRoute } from './routes.ts';
export { documentPath, type DocumentFetchSettings, type PreparedDocument } from './document.ts';
export { BatchSender, type BatchSenderOptions, type PreparedBatchEntry } from './batches.ts';
