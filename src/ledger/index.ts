import { z } from 'zod';
import { SqliteLedger } from './sqlite.ts';
import type { Ledger } from './types.ts';

export type { Ledger, ExportRecord, ExportStatus, ClaimInput, ClaimResult, StoredReply, LedgerEvent, ExportFilter } from './types.ts';
export type {
  AckState,
  ExportState,
  HoldState,
  AckVerdict,
  AckMessage,
  AckEntryInput,
  AckFileInput,
  AckOutcome,
  AckOutcomeKind,
  AckOutcomeDetail,
  AckDelivery,
  AckLookup,
  RecordAckResult,
  OutcomeSettlement,
} from './types.ts';
export { EXPORT_STATES, stateOf } from './types.ts';
export { nameParts, ackTransition } from './ack-rules.ts';
export { SqliteLedger } from './sqlite.ts';

export const ledgerConfigSchema = z
  .strictObject({
    url: z
      .string()
      .default('sqlite:./data/ledger.db')
      .describe('Where the ledger lives: `sqlite:PATH` (embedded default) or `postgres://user:pass@host:5432/db` when several replicas share the work'),
  })
  .describe('Durable record of every export and acknowledgement');

export type LedgerConfig = z.infer<typeof ledgerConfigSchema>;

/** Opens the ledger a URL names; PostgreSQL is loaded only when asked for. */
export async function openLedger(url: string): Promise<Ledger> {
  if (url.startsWith('sqlite:')) return new SqliteLedger({ path: url.slice('sqlite:'.length) || ':memory:' });
  if (url.startsWith('postgres://') || url.startsWith('postgresql://')) {
    const { PostgresLedger } = await import('./postgres.ts');
    return PostgresLedger.connect(url);
  }
  throw new Error(`unsupported ledger url "${url.replace(/\/\/[^@/]*@/, '//***@')}": expected sqlite:PATH or postgres://...`);
}
