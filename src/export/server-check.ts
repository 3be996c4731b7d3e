import { createHash } from 'node:crypto';
import type { ExportRecord } from '../ledger/index.ts';
import type { HookCredentials, Target } from '../transport/index.ts';

/** After a crash or a lost answer: is the file already there, byte for byte? */
export async function reconcileWithServer(
  record: Pick<ExportRecord, 'remotePath' | 'plannedPath' | 'bytes' | 'sha256'>,
  prepared: { target: Target; sha256: string; file: { fileName: string; bytes: Buffer } },
  opOptions: { signal?: AbortSignal; credentials?: HookCredentials },
): Promise<string | null> {
  const found = await findOnServer(
    prepared.target,
    { remotePath: record.remotePath, plannedPath: record.plannedPath, bytes: record.bytes, sha256: record.sha256 },
    opOptions,
  );
  if (found || (record.sha256 === prepared.sha256 && record.plannedPath === prepared.file.fileName)) return found;
  return findOnServer(
    prepared.target,
    {
      remotePath: null,
      plannedPath: prepared.file.fileName,
      bytes: prepared.file.bytes.length,
      sha256: prepared.sha256,
    },
    opOptions,
  );
}

export async function findOnServer(
  target: Target,
  record: Pick<ExportRecord, 'remotePath' | 'plannedPath' | 'bytes' | 'sha256'>,
  opOptions: { signal?: AbortSignal; credentials?: HookCredentials },
): Promise<string | null> {
  const candidates = [
    ...new Set([record.remotePath, record.plannedPath].filter((path): path is string => Boolean(path))),
  ];
  for (const path of candidates) {
    const stat = await target.stat(path, opOptions);
    if (!stat || stat.size !== record.bytes) continue;
    const bytes = await target.readFile(path, opOptions);
    if (createHash('sha256').update(bytes).digest('hex') === record.sha256) return path;
  }
  return null;
}
