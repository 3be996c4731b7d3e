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
export {
  RossumClient,
  rossumApiConfigSchema,
  apiRootFromBaseUrl,
  parseRetryAfter,
  ANNOTATION_STATUSES,
} from './client.ts';
export type {
  RossumClientOptions,
  RossumApiConfig,
  RossumApiConfigInput,
  RossumAnnotation,
  RossumNote,
  AnnotationPatch,
  AnnotationStatus,
} from './client.ts';
export { RossumAdminApi, rossumHookSchema, type RossumHook, type RossumUser, type RossumQueue } from './admin.ts';
