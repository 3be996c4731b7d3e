export { deliver, signSha256, signSha1, parseReply, truncateContent, DELIVERY_DEFAULTS, RETRYABLE_STATUSES, SIGNATURE_HEADER, LEGACY_SIGNATURE_HEADER, MESSAGE_CONTENT_LIMIT } from './delivery.ts';
export type { DeliveryOptions, DeliveryOutcome, AttemptRecord, PollRecord, DeliveredMessage, HookMessage, HookMessageType, ExportAnnotationStatus, Sleep } from './delivery.ts';
export { RossumClient, RossumApiError, rossumApiConfigSchema, apiRootFromBaseUrl, parseRetryAfter, ANNOTATION_STATUSES, NOTE_CONTENT_LIMIT } from './client.ts';
export type { RossumClientOptions, RossumApiConfig, RossumApiConfigInput, RossumApiErrorCode, RossumAnnotation, RossumNote, AnnotationPatch, AnnotationStatus } from './client.ts';
