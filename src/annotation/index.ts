export { parseExportPayload, hookEnvelopeSchema, exportPayloadSchema } from './payload.ts';
export type { ExportPayload, RawNode } from './payload.ts';
export { emptyMetadata, viewAnnotation, idFromUrl } from './view.ts';
export type { AnnotationView, Datapoint, Row, DocumentMetadata } from './view.ts';
