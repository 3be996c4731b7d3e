import type { AnnotationView, Datapoint, Row } from '../annotation/index.ts';
import type { RenderContext } from './contract.ts';
import type { DatapointUse } from './datapoints.ts';
import type { ValueMap } from './schema.ts';

/** Everything one render shares: the document, the context, caches, and what --explain collects. */
export interface DocScope {
  view: AnnotationView;
  context: RenderContext;
  mappingName: string;
  mappingVersion: string;
  now: string;
  recordCount: number;
  vars: Map<string, string | undefined>;
  rowSets: Map<string, RowScope[]>;
  /** Vars being evaluated (a var met again refers to itself). */
  evaluating: Set<CompiledValue>;
  /** Datapoints read while evaluating the current value; null unless explaining. */
  touched: string[] | null;
  /** Datapoints conditions read for the current value (`when`, `cases`); null unless explaining. */
  checked: string[] | null;
  /** By datapoint and problem: one warning however many rows repeat the same value. */
  warnings: Map<string, { message: string; repeats: number }>;
  droppedWarnings: number;
  /** Results of values that do not depend on the row, computed once per document. */
  cache: Map<CompiledValue, { value: string | undefined; datapoint: Datapoint | undefined }>;
}

export interface RowScope {
  row: Row;
  /** 1-based among the rows written. */
  lineNumber: number;
  table: CompiledTable;
  label: string;
  /** The row's vars once evaluated; made at the first one (most rows of most mappings have none). */
  vars: Map<string, string | undefined> | undefined;
}

export interface Scope {
  doc: DocScope;
  row: RowScope | undefined;
  /** Where in the output the current value goes, for messages. */
  at: Location;
  /** The datapoint the current value came from, for error locations. */
  datapoint: Datapoint | undefined;
}

/** A spot in the output: text, or an object that spells itself out (toString) only when a message needs it. */
export type Location = string | { toString(): string };

export interface CompiledValue {
  evaluate(scope: Scope): string | undefined;
  /** Produces a formatted number (never formula-escaped, right-aligned in fixed width). */
  readonly numeric: boolean;
  /** The same for every row of a document (reads no row): evaluated once per render. */
  readonly perDocument?: true;
}

export type CompiledCondition = (scope: Scope) => boolean;

export interface CompiledTable {
  name: string;
  from: string;
  where: CompiledCondition | undefined;
  vars: Map<string, CompiledValue>;
}

export interface CompileEnv {
  valueMaps: Record<string, ValueMap>;
  tables: Map<string, CompiledTable>;
  docVars: Map<string, CompiledValue>;
  declaredDocVars: Set<string>;
  /** Row vars visible here; undefined outside a row context. */
  rowTable: CompiledTable | undefined;
  declaredRowVars: Set<string> | undefined;
  /** Counts references to the current row, so values that never read one can be computed once per document. */
  rowReads: { count: number };
  /** Makes text fit the output encoding (transliterate/replace per mapping); runs before trimming. */
  fitEncoding: ((text: string, scope: Scope) => string) | undefined;
  /** Every datapoint and table the mapping names, for the schema-aware check. */
  uses: DatapointUse[];
  /** Metadata keys the mapping reads anywhere (values, conditions, file name). */
  metaRead?: Set<string>;
  /** Set in a batch mapping: the names of its `batch.totals` (and `{batch}` is the batch number in templates). */
  batchTotals?: ReadonlySet<string>;
  problem(path: ReadonlyArray<PropertyKey>, message: string, hint?: string): void;
}

export type Path = ReadonlyArray<PropertyKey>;

/** Read through a function: the compiler narrows `scope.datapoint` after a reset and forgets sources set it. */
export function datapointIdOf(scope: Scope): number | undefined {
  return scope.datapoint?.id;
}

const MAX_WARNINGS = 20;

/**
 * Warnings become Rossum messages: one per datapoint and problem (a header value repeated on every CSV
 * row is one warning), the first few kept, then how many more there were. `key` identifies the
 * datapoint and problem; without one the message itself does.
 */
export function addWarning(doc: DocScope, message: string, key: string = message): void {
  const known = doc.warnings.get(key);
  if (known) known.repeats++;
  else if (doc.warnings.size < MAX_WARNINGS) doc.warnings.set(key, { message, repeats: 0 });
  else doc.droppedWarnings++;
}

/** A warning about the value being written at `scope.at`: keyed by its datapoint when it has one. */
export function warnAbout(doc: DocScope, scope: Scope, detail: string): void {
  const dp = scope.datapoint;
  if (dp) {
    // A repeat (or one past the limit) only counts: its message is never shown, so it is not built.
    const key = `datapoint ${dp.id}: ${detail}`;
    if (doc.warnings.has(key) || doc.warnings.size >= MAX_WARNINGS) {
      addWarning(doc, '', key);
      return;
    }
  }
  const source = dp ? ` (from ${dp.schemaId}, datapoint ${dp.id})` : '';
  addWarning(doc, `${scope.at}${source}: ${detail}`, dp ? `datapoint ${dp.id}: ${detail}` : undefined);
}

export function finalWarnings(doc: DocScope): string[] {
  const warnings = [...doc.warnings.values()].map(({ message, repeats }) =>
    repeats > 0 ? `${message} (and ${repeats} more place${repeats > 1 ? 's' : ''} with the same value)` : message,
  );
  return doc.droppedWarnings > 0 ? [...warnings, `... and ${doc.droppedWarnings} more similar changes`] : warnings;
}

export function newScope(doc: DocScope): Scope {
  return { doc, row: undefined, at: '', datapoint: undefined };
}

/** Document vars are attached per render (the compiled mapping owns them, the scope borrows them). */
const docVarTable = new WeakMap<DocScope, Map<string, CompiledValue>>();

export function attachDocVars(doc: DocScope, vars: Map<string, CompiledValue>): void {
  docVarTable.set(doc, vars);
}

export function docVarsOf(doc: DocScope): Map<string, CompiledValue> | undefined {
  return docVarTable.get(doc);
}
