/** The export pipeline below HTTP: route → render → claim → upload → answer, and held exports. */
export { ExportHold, HOLD_CEILING_MS, type ExportHoldOptions, type HeldAnswer } from './hold.ts';
export { prepareExport, prepareOrRefuse, type ExportPreparation, type PreparedExport, type PrepareSettings } from './prepare.ts';
export { type ExportReply, type RossumMessage } from './replies.ts';
export { resolveRoute, routeSchema, type ResolvedRoute, type Route } from './routes.ts';
export { ExportService, ownerIsGone, type ExportServiceOptions, type HandleOptions } from './service.ts';
