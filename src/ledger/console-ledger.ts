import * as operations from './console-operations.ts';
import type { ConsoleLedger } from './console-operations.ts';
import type { LedgerContext } from './export-operations.ts';
import * as retry from './retry-operations.ts';
import type { Ledger } from './types.ts';

export type { ConsoleLedger } from './console-operations.ts';

export function consoleLedger(context: LedgerContext): ConsoleLedger {
  return {
    listExports: (filter, after, limit) => operations.listConsoleExports(context, filter, after, limit),
    filterChoices: () => operations.filterChoices(context),
    ackFilesOfExport: (exportId) => operations.ackFilesOfExport(context, exportId),
    openAckFiles: (limit) => operations.openAckFiles(context, limit),
    ackFile: (id) => operations.ackFile(context, id),
    actionsOfExport: (exportId) => operations.actionsOfExport(context, exportId),
    overview: (since) => operations.overview(context, since),
    changeMark: () => operations.changeMark(context),
    redeliverOutcome: (outcomeId, actor) => operations.redeliverOutcome(context, outcomeId, actor),
    markAckFileHandled: (ackFileId, actor, note) => operations.markAckFileHandled(context, ackFileId, actor, note),
    keptPayload: (exportId) => retry.keptPayload(context, exportId),
    claimForRetry: (exportId, input) => retry.claimForRetry(context, exportId, input),
    ackFileContent: (ackFileId) => retry.ackFileContent(context, ackFileId),
  };
}

/** The console view of an open ledger (both the SQLite and the PostgreSQL ledger have one). */
export function consoleLedgerOf(ledger: Ledger): ConsoleLedger {
  const view = (ledger as Ledger & { console?: ConsoleLedger }).console;
  if (!view) throw new Error(`the ${ledger.kind} ledger has no console view`);
  return view;
}
