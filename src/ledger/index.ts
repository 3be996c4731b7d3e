import { z } from 'zod';
import { SqliteLedger } from './sqlite.ts';
import type { Ledger } from './types.ts';

export type {
  Ledger,
  ExportRecord,
  ExportStatus,
  ClaimInput,
  ClaimResult,
  StoredReply,
  LedgerEvent,
  ExportFilter,
  SequenceRequest,
  FailureInput,
} from './types.ts';
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
export type {
  BatchStatus,
  BatchRecord,
  BatchEntryRecord,
  BatchEntryInput,
  BatchAddResult,
  BatchFilter,
} from './batch-types.ts';
export { EXPORT_STATES, stateOf } from './types.ts';
export { nameParts, ackTransition } from './ack-rules.ts';
export { SqliteLedger } from './sqlite.ts';

export const ledgerConfigSchema = z
  .strictObject({
    url: z
      .string()
      .default('sqlite:./data/ledger.db')
      .superRefine((url, context) => {
        if (!url.startsWith('sqlite:')) return;
        try {
          sqliteOptions(splitQuery(url.slice('sqlite:'.length))[1]);
        } catch (error) {
          context.addIssue({ code: 'custom', message: (error as Error).message });
        }
      })
      .describe(
        'Where the ledger lives: `sqlite:PATH` (embedded default) or `postgres://user:pass@host:5432/db` when several replicas share the work. ' +
          '`sqlite:PATH?synchronous=full` fsyncs every commit, so a power cut cannot lose one (the default, `normal`, survives a crash of the process but not of the machine)',
      ),
  })
  .describe('Durable record of every export and acknowledgement');

export type LedgerConfig = z.infer<typeof ledgerConfigSchema>;

/** Opens the ledger a URL names; PostgreSQL is loaded only when asked for. */
export async function openLedger(url: string): Promise<Ledger> {
  if (url.startsWith('sqlite:')) {
    const [path, query] = splitQuery(url.slice('sqlite:'.length));
    return new SqliteLedger({ path: path || ':memory:', ...sqliteOptions(query) });
  }
  if (url.startsWith('postgres://') || url.startsWith('postgresql://')) {
    const { PostgresLedger } = await import('./postgres.ts');
    return PostgresLedger.connect(url);
  }
  throw new Error(
    `unsupported ledger url "${url.replace(/\/\/[^@/]*@/, '//***@')}": expected sqlite:PATH or postgres://...`,
  );
}

function splitQuery(location: string): [string, string] {
  const at = location.lastIndexOf('?');
  return at < 0 ? [location, ''] : [location.slice(0, at), location.slice(at + 1)];
}

function sqliteOptions(query: string): { synchronous?: 'normal' | 'full' } {
  const options: { synchronous?: 'normal' | 'full' } = {};
  for (const [key, value] of new URLSearchParams(query)) {
    if (key !== 'synchronous')
      throw new Error(`unsupported sqlite ledger option "${key}": the only one is synchronous=normal|full`);
    if (value !== 'normal' && value !== 'full')
      throw new Error(`sqlite ledger option synchronous="${value}": expected normal or full`);
    options.synchronous = value;
  }
  return options;
}

export { consoleLedgerOf } from './console-ledger.ts';
export { ConsoleActionRefused, exportPageQuery } from './console-operations.ts';
export type {
  ConsoleLedger,
  ConsoleExportFilter,
  ConsoleCursor,
  ConsoleExportRow,
  ConsoleExportPage,
  ConsoleAckFile,
  ConsoleAction,
  ConsoleOverview,
} from './console-operations.ts';
export type { KeptPayload, AckFileContent } from './types.ts';
