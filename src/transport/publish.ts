import type { UploadRequest } from './contract.ts';
import { TransportError } from './errors.ts';
import { versionedName } from './paths.ts';

/** `invoice.xml` … `invoice_v9999.xml`: beyond that, something is wrong with the folder, not the export. */
export const MAX_VERSIONS = 9_999;

export interface PublishSteps {
  /** Replaces whatever is at the final name. */
  overwrite(): Promise<void>;
  /** Publishes under `candidate` only if nothing is there; `taken` leaves everything as it was. */
  placeIfFree(candidate: string): Promise<'placed' | 'taken'>;
}

/**
 * The `onExisting` policy, the same for every target: `overwrite` replaces, `fail` refuses a taken
 * name, `version` takes the first free one of `name`, `name_v2`, `name_v3`…
 * `where` names the place for messages (`on 10.0.0.5:22`, `in file:///mnt/erp`). Returns the name used.
 */
export async function publishUnderPolicy(
  relative: string,
  onExisting: UploadRequest['onExisting'],
  where: { host: string; place: string },
  steps: PublishSteps,
): Promise<string> {
  if (onExisting === 'overwrite') {
    await steps.overwrite();
    return relative;
  }
  const maxVersion = onExisting === 'version' ? MAX_VERSIONS : 1;
  for (let version = 1; version <= maxVersion; version++) {
    const candidate = versionedName(relative, version);
    if ((await steps.placeIfFree(candidate)) === 'placed') return candidate;
  }
  const message =
    onExisting === 'fail'
      ? `${relative} already exists ${where.place} and the policy is onExisting: fail; nothing was changed`
      : `${relative} and ${MAX_VERSIONS - 1} versions of it already exist ${where.place}`;
  throw new TransportError('TARGET_EXISTS', message, { permanent: true, host: where.host, path: relative });
}
