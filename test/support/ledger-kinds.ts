import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openLedger, type Ledger } from '../../src/ledger/index.ts';
import { usePostgres } from './postgres.ts';

/** One ledger dialect, for `describe.each`. */
export interface LedgerKind {
  name: 'sqlite' | 'postgres';
  /** A ledger on a fresh SQLite file, or on the file's PostgreSQL. */
  open(): Promise<Ledger>;
  /** n ledgers on one database: separate connections, as separate replicas have. */
  replicas(n: number): Promise<Ledger[]>;
}

/** Both dialects for the calling file; its PostgreSQL is started before its tests and stopped after them. */
export function useLedgerKinds(): LedgerKind[] {
  const postgres = usePostgres();
  const dir = mkdtempSync(join(tmpdir(), 'rsb-ledger-kinds-'));
  let files = 0;
  const sqliteReplicas = (n: number): Promise<Ledger[]> => {
    const file = join(dir, `ledger-${++files}.db`);
    return Promise.all(Array.from({ length: n }, () => openLedger(`sqlite:${file}`)));
  };
  const postgresReplicas = (n: number): Promise<Ledger[]> =>
    Promise.all(Array.from({ length: n }, () => openLedger(postgres().url)));
  return [
    { name: 'sqlite', replicas: sqliteReplicas, open: async () => (await sqliteReplicas(1))[0] as Ledger },
    { name: 'postgres', replicas: postgresReplicas, open: async () => (await postgresReplicas(1))[0] as Ledger },
  ];
}
