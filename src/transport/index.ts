import { BridgeError } from '../errors.ts';
import type { Logger } from '../observability/index.ts';
import { parseTargetUrl, targetConfigSchema, type TargetConfigInput } from './config.ts';
import type { Target } from './contract.ts';
import { FileTarget } from './file.ts';
import { SftpTarget } from './sftp/index.ts';
import type { TransportHooks } from './types.ts';

export {
  targetConfigSchema,
  parseTargetUrl,
  type TargetConfig,
  type TargetConfigInput,
  type TargetUrl,
} from './config.ts';
export type {
  Target,
  UploadRequest,
  UploadResult,
  RemoteEntry,
  PoolStats,
  OperationOptions,
  ReadOptions,
  ListedFile,
  EntryIdentity,
  PlannedMove,
  MoveOptions,
  HookCredentials,
} from './contract.ts';
export type { TransportHooks } from './types.ts';
export type { SftpPoolStats } from './sftp/index.ts';
export { TransportError, isTransportError, type TransportErrorCode } from './errors.ts';
export { fingerprintOfKey, parseKnownHosts, knownHostsName } from './hostkey.ts';
export { diagnoseSftpConnection, formatBytes, MIN_FREE_BYTES, type ConnectionStep } from './diagnose.ts';

export interface CreateTargetOptions {
  logger: Logger;
  /** Metrics callbacks (pool size/in-use/pending, connects). */
  metrics?: TransportHooks;
}

/** Builds a target from its config (validated here too, so callers may pass raw input). */
export function createTarget(name: string, config: TargetConfigInput, options: CreateTargetOptions): Target {
  const parsed = targetConfigSchema.safeParse(config);
  if (!parsed.success) {
    const issues = parsed.error.issues
      .map((issue) => `${issue.path.join('.') || '(root)'}: ${issue.message}`)
      .join('; ');
    throw new BridgeError('CONFIG_INVALID', `target "${name}": ${issues}`, { permanent: true });
  }
  const url = parseTargetUrl(parsed.data.url);
  if (!url.ok) throw new BridgeError('CONFIG_INVALID', `target "${name}": url: ${url.reason}`, { permanent: true });
  if (url.value.scheme === 'file') return new FileTarget(name, parsed.data, url.value.dir, { logger: options.logger });
  return new SftpTarget(name, parsed.data, url.value, {
    logger: options.logger,
    ...(options.metrics ? { hooks: options.metrics } : {}),
  });
}
