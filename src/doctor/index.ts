export { runDoctor } from './doctor.ts';
export { formatReport, reportOf, type CheckResult, type CheckStatus, type DoctorReport } from './report.ts';
export { adminApiOf } from './rossum.ts';
export {
  DEFAULT_HOOK_NAME,
  HOOK_EVENTS,
  describeHook,
  findHook,
  hookSpec,
  installHook,
  planHook,
  routeQueues,
  secretState,
  webhookUrlOf,
  type HookPlan,
  type HookSpec,
  type HookSpecOptions,
  type InstallResult,
  type SecretState,
} from './hook.ts';
