import { randomBytes } from 'node:crypto';
import { statfs } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { BridgeConfig } from '../config/index.ts';
import { describeError } from '../errors.ts';
import { silentLogger } from '../observability/index.ts';
import {
  createTarget,
  diagnoseSftpConnection,
  formatBytes,
  MIN_FREE_BYTES,
  parseTargetUrl,
  type Target,
  type TargetConfig,
} from '../transport/index.ts';
import type { CheckResult } from './report.ts';

type TargetSettings = BridgeConfig['targets'][string];

/** Every target: the way there (sftp), then a probe file written, renamed and deleted in each folder the bridge writes to. */
export async function checkTargets(config: BridgeConfig): Promise<CheckResult[]> {
  const results: CheckResult[] = [];
  for (const [name, settings] of Object.entries(config.targets))
    results.push(...(await checkTarget(config, name, settings)));
  return results;
}

async function checkTarget(config: BridgeConfig, name: string, settings: TargetSettings): Promise<CheckResult[]> {
  const results: CheckResult[] = [];
  const result = (check: string, status: CheckResult['status'], detail: string, fix?: string): CheckResult => ({
    area: 'target',
    subject: name,
    check,
    status,
    detail,
    ...(fix ? { fix } : {}),
  });
  const url = parseTargetUrl(settings.url);
  if (!url.ok) return [result('url', 'fail', url.reason, `correct targets.${name}.url`)];

  let canWrite = true;
  if (url.value.scheme === 'sftp') {
    const steps = await diagnoseSftpConnection(name, settings as TargetConfig);
    for (const step of steps) results.push(result(step.step, step.status, step.detail, step.fix));
    canWrite = steps.some((step) => step.step === 'login' && step.status === 'ok');
  } else {
    results.push(await localFreeSpace(name, url.value.dir));
  }

  const folders = folderLabels(config, name);
  if (!canWrite) {
    for (const folder of folders) results.push(result(probeName(folder), 'skip', 'not tried: no SFTP session'));
    return results;
  }
  // One attempt, no backoff: the step results above already say why a connection would fail.
  let target: Target;
  try {
    target = createTarget(name, { ...settings, retry: { ...settings.retry, attempts: 1 } }, { logger: silentLogger() });
  } catch (error) {
    for (const folder of folders)
      results.push(result(probeName(folder), 'fail', describeError(error), `correct targets.${name} in the config`));
    return results;
  }
  try {
    for (const folder of folders) {
      const problem = await probeFolder(target, folder.path);
      results.push(
        problem === undefined
          ? result(
              probeName(folder),
              'ok',
              `a probe file was written, renamed and deleted in ${shownFolder(target, folder.path)}`,
            )
          : result(
              probeName(folder),
              'fail',
              `${problem.step} failed in ${shownFolder(target, folder.path)}: ${problem.message}`,
              fixFor(name, settings, target, folder, problem.step),
            ),
      );
    }
  } finally {
    await target.close();
  }
  return results;
}

interface ProbeFolder {
  /** Relative to the target folder; `''` is the target folder itself. */
  path: string;
  /** Why the bridge writes there. */
  role: 'exports' | 'acks';
  /** The ack source (export target) reading this folder, when role is `acks`. */
  ackSource?: string;
}

/**
 * The export folder (when a route sends files here, or nothing else uses the target), and each ack
 * folder read through this target (`acks.targets.X.readFrom`, default X itself).
 */
function folderLabels(config: BridgeConfig, name: string): ProbeFolder[] {
  const folders: ProbeFolder[] = [];
  for (const [source, ack] of Object.entries(config.acks.targets)) {
    if ((ack.readFrom ?? source) !== name) continue;
    const path = ack.folder.replace(/^\.?\/*|\/+$/g, '');
    if (!folders.some((folder) => folder.path === path)) folders.push({ path, role: 'acks', ackSource: source });
  }
  const exported = config.routes.some((route) => route.target === name);
  if (exported || folders.length === 0) {
    const same = folders.findIndex((folder) => folder.path === '');
    if (same >= 0) folders.splice(same, 1);
    folders.unshift({ path: '', role: 'exports' });
  }
  return folders;
}

function probeName(folder: ProbeFolder): string {
  return folder.role === 'exports'
    ? 'write + rename + delete (exports)'
    : `write + rename + delete (acks of ${folder.ackSource}: ${folder.path || '.'}/)`;
}

function shownFolder(target: Target, path: string): string {
  return path === '' ? target.description : `${target.description.replace(/\/+$/, '')}/${path}`;
}

type ProbeStep = 'write' | 'rename' | 'delete';

/**
 * What an upload and the ack archive do, on a dot-file the ERP and the acks process ignore: write
 * (under the upload's temporary name, then renamed into place), rename, delete. Cleans up after itself whatever fails.
 */
async function probeFolder(target: Target, folder: string): Promise<{ step: ProbeStep; message: string } | undefined> {
  const base = `.rsb-doctor-${randomBytes(4).toString('hex')}`;
  const written = folder === '' ? `${base}.probe` : `${folder}/${base}.probe`;
  const renamed = `${written}.renamed`;
  let step: ProbeStep = 'write';
  try {
    await target.upload({
      relativePath: written,
      bytes: Buffer.from('rossum-sftp-bridge doctor probe; safe to delete\n'),
      onExisting: 'fail',
    });
    step = 'rename';
    await target.move(written, renamed);
    step = 'delete';
    await target.remove(renamed);
    return undefined;
  } catch (error) {
    for (const leftover of [written, renamed]) await target.remove(leftover).catch(() => undefined);
    return { step, message: describeError(error) };
  }
}

function fixFor(name: string, settings: TargetSettings, target: Target, folder: ProbeFolder, step: ProbeStep): string {
  const url = parseTargetUrl(settings.url);
  const user =
    url.ok && url.value.scheme === 'sftp' ? `user "${url.value.username ?? ''}"` : 'the user running the bridge';
  const where = shownFolder(target, folder.path);
  const why =
    folder.role === 'exports'
      ? 'uploads write a temporary file there and rename it into place'
      : `the acks process moves read acks into ${folder.path || '.'}/processed, unmatched and invalid (or deletes them)`;
  if (step === 'write')
    return `give ${user} write permission on ${where} (${why}); check targets.${name}.url points at the right folder`;
  if (step === 'rename')
    return `allow ${user} to rename files in ${where} (${why}); some servers forbid rename — ask the server's administrator`;
  return `allow ${user} to delete files in ${where} (interrupted uploads leave temporary files the bridge removes)`;
}

async function localFreeSpace(name: string, dir: string): Promise<CheckResult> {
  const base = { area: 'target' as const, subject: name, check: 'free space' };
  // The folder may not exist yet (createDirs): its nearest existing parent holds the same file system.
  for (let path = dir; ; path = dirname(path)) {
    try {
      const info = await statfs(path);
      const freeBytes = info.bavail * info.bsize;
      const shown = `${formatBytes(freeBytes)} free of ${formatBytes(info.blocks * info.bsize)} at ${path}`;
      if (freeBytes < MIN_FREE_BYTES) {
        return {
          ...base,
          status: 'fail',
          detail: `only ${shown}`,
          fix: `free space on the file system of targets.${name} (under ${formatBytes(MIN_FREE_BYTES)}, uploads may fail halfway)`,
        };
      }
      return { ...base, status: 'ok', detail: shown };
    } catch (error) {
      if (dirname(path) === path)
        return { ...base, status: 'skip', detail: `cannot read free space: ${describeError(error)}` };
    }
  }
}
