import { posix } from 'node:path';
import type { OperationOptions, Target } from './contract.ts';
import type { UploadConfig } from './config.ts';
import { parentOf } from './paths.ts';

/**
 * Temporary files an interrupted upload of `relativePath` left behind (its process died between
 * writing the temp name and the rename). Uploads name them `<prefix><name>.<8 hex><suffix>`, so the
 * pattern matches only temps of this one file name, never a published file.
 */
export async function removeLeftoverTemps(
  target: Target,
  upload: UploadConfig,
  relativePath: string,
  options?: OperationOptions,
): Promise<string[]> {
  const name = posix.basename(relativePath);
  const dir = upload.tempDir !== null ? upload.tempDir : parentOf(relativePath);
  const pattern = new RegExp(
    `^${escapeRegExp(`${upload.tempPrefix}${name}`)}\\.[0-9a-f]{8}${escapeRegExp(upload.tempSuffix)}$`,
  );
  const leftovers: string[] = [];
  for await (const entry of target.list(dir, options)) {
    if (entry.isFile && pattern.test(entry.name)) leftovers.push(entry.path);
  }
  for (const path of leftovers) await target.remove(path, options);
  return leftovers;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
