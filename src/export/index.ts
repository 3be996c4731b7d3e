export { ExportService, ownerIsGone, type ExportServiceOptions, type HandleOptions } from './service.ts';
export { intakeExport, prepareExport, type ExportIntake, type PreparedExport, type PrepareSettings } from './prepare.ts';
export { errorReply, limitMessage, transientReply, type ExportReply, type RossumMessage } from './replies.ts';
export { routeSchema, resolveRoute, type Route, type ResolvedRoute } from './routes.ts';
