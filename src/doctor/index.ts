import type { BridgeConfig } from '../config/index.ts';
import type { DoctorReport } from './report.ts';

/** Loaded on use: `hook` needs none of the target, ledger and mapping machinery the checks bring in. */
export async function runDoctor(config: BridgeConfig): Promise<DoctorReport> {
  const { runDoctor: run } = await import('./doctor.ts');
  return run(config);
}

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
