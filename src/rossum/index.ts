export {
  callHook,
  signSha256,
  signSha1,
  parseReply,
  HOOK_CALL_DEFAULTS,
  RETRYABLE_STATUSES,
  SIGNATURE_HEADER,
  LEGACY_SIGNATURE_HEADER,
} from './hook-call.ts';
export type {
  HookCallOptions,
  HookCallOutcome,
  AttemptRecord,
  PollRecord,
  ShownMessage,
  HookMessage,
  HookMessageType,
  ExportAnnotationStatus,
} from './hook-call.ts';
export { ROSSUM_MESSAGE_LIMIT, truncateContent, cleanText, cleanContent } from './limits.ts';
export { realSleep, type Sleep } from './sleep.ts';
export { RossumApiError, type RossumApiErrorCode } from './errors.ts';
export { DEFAULT_ALLOWED_HOSTS, hostAllowed, trustedPayloadRoot } from './trust.ts';
export { rossumApiConfigSchema, type RossumApiConfig, type RossumApiConfigInput } from './config.ts';
export { RossumClient } from './client.ts';
export { apiRootFromBaseUrl, parseRetryAfter, ANNOTATION_STATUSES } from './api-shapes.ts';
export type {
  RossumClientOptions,
  RossumAnnotation,
  RossumNote,
  AnnotationPatch,
  AnnotationStatus,
  WriteOptions,
} from './api-shapes.ts';
export { RossumAdminApi, rossumHookSchema, type RossumHook, type RossumUser, type RossumQueue } from './admin.ts';
