import { describeError } from '../errors.ts';
import type { Logger } from '../observability/index.ts';
import type { OperationOptions, Target } from '../transport/index.ts';

/**
 * Removes the temp files earlier attempts at `fileName` left on the target and says so. A failure
 * changes nothing for the export (temp names are never final names, the ERP ignores them), so it is
 * logged, never thrown — but never dropped silently either.
 */
export async function removeLeftoverTemps(
  target: Target,
  fileName: string,
  opOptions: OperationOptions,
  log: Logger,
  of = 'an earlier attempt',
): Promise<void> {
  try {
    const leftovers = (await target.removeLeftoverTemps?.(fileName, opOptions)) ?? [];
    if (leftovers.length > 0) log.info({ leftovers }, `removed temporary files of ${of}`);
  } catch (error) {
    log.warn({ err: describeError(error) }, `could not remove temporary files of ${of}`);
  }
}
