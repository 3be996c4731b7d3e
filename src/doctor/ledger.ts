import { constants, existsSync } from 'node:fs';
import { access } from 'node:fs/promises';
import { dirname } from 'node:path';
import { describeError } from '../errors.ts';
import { openLedger, type Ledger } from '../ledger/index.ts';
import type { CheckResult } from './report.ts';

/**
 * Reachable (it opens), migrated (opening applies pending migrations and refuses a schema newer than
 * this program), writable (`ping` takes the write lock without changing data). A SQLite file that
 * does not exist yet is not created here: only its folder is checked, `serve` creates it.
 */
export async function checkLedger(url: string): Promise<CheckResult[]> {
  const shown = withoutPassword(url);
  const result = (check: string, status: CheckResult['status'], detail: string, fix?: string): CheckResult => ({
    area: 'ledger',
    subject: shown,
    check,
    status,
    detail,
    ...(fix ? { fix } : {}),
  });
  const sqlitePath = url.startsWith('sqlite:') ? url.slice('sqlite:'.length).replace(/\?.*$/, '') : undefined;
  if (sqlitePath !== undefined && sqlitePath !== '' && sqlitePath !== ':memory:' && !existsSync(sqlitePath)) {
    const folder = dirname(sqlitePath);
    try {
      await access(folder, constants.W_OK);
      return [result('reachable', 'ok', `the file does not exist yet; serve creates it in ${folder} (writable)`)];
    } catch (error) {
      return [
        result(
          'reachable',
          'fail',
          `the file does not exist and ${folder} is not writable: ${describeError(error)}`,
          `create ${folder} and let the bridge's user write to it, or change ledger.url`,
        ),
      ];
    }
  }

  let ledger: Ledger;
  try {
    ledger = await openLedger(url);
  } catch (error) {
    const message = describeError(error);
    const newer = /newer than this program/.test(message);
    return [
      result(
        newer ? 'migrated' : 'reachable',
        'fail',
        message,
        newer
          ? 'the ledger was migrated by a newer bridge: upgrade this installation to that version'
          : sqlitePath !== undefined
            ? "check that the file and its folder belong to the bridge's user and the disk is not full"
            : 'check that PostgreSQL runs and accepts this user and database (ledger.url)',
      ),
    ];
  }
  const results = [
    result('reachable', 'ok', `opened the ${ledger.kind} ledger`),
    result(
      'migrated',
      'ok',
      'the schema is at the latest version this bridge knows (opening applies pending migrations)',
    ),
  ];
  try {
    await ledger.ping();
    results.push(result('writable', 'ok', 'a write transaction was taken and released'));
  } catch (error) {
    results.push(
      result(
        'writable',
        'fail',
        `the ledger does not accept writes: ${describeError(error)}`,
        ledger.kind === 'sqlite'
          ? "let the bridge's user write the file, its -wal/-shm files and its folder; free disk space"
          : 'grant the user write privileges; a read-only replica cannot be the ledger',
      ),
    );
  } finally {
    await ledger.close();
  }
  return results;
}

function withoutPassword(url: string): string {
  return url.replace(/\/\/([^:@/]*):[^@/]*@/, '//$1:***@');
}
