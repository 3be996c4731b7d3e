import type { AnnotationView, Datapoint, Row } from '../annotation/index.ts';
import type { RenderContext } from './contract.ts';
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
  evaluating: Set<string>;
  /** Datapoints read while evaluating the current value; null unless explaining. */
  touched: string[] | null;
  warnings: string[];
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
  vars: Map<string, string | undefined>;
}

export interface Scope {
  doc: DocScope;
  row: RowScope | undefined;
  /** Where in the output the current value goes, for messages. */
  at: string;
  /** The datapoint the current value came from, for error locations. */
  datapoint: Datapoint | undefined;
}

export interface CompiledValue {
  evaluate(scope: Scope): string | undefined;
  /** Produces a formatted number (never formula-escaped, right-aligned in fixed width). */
  readonly numeric: boolean;
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
  /** Metadata keys the mapping reads anywhere (values, conditions, file name). */
  metaRead?: Set<string>;
  problem(path: ReadonlyArray<PropertyKey>, message: string, hint?: string): void;
}

export type Path = ReadonlyArray<PropertyKey>;

/** Read through a function: the compiler narrows `scope.datapoint` after a reset and forgets sources set it. */
export function datapointIdOf(scope: Scope): number | undefined {
  return scope.datapoint?.id;
}

const MAX_WARNINGS = 20;

/** Warnings become Rossum messages: keep the first few, then say how many more there were. */
export function addWarning(doc: DocScope, message: string): void {
  if (doc.warnings.length < MAX_WARNINGS) doc.warnings.push(message);
  else doc.droppedWarnings++;
}

export function finalWarnings(doc: DocScope): string[] {
  return doc.droppedWarnings > 0
    ? [...doc.warnings, `... and ${doc.droppedWarnings} more similar changes`]
    : doc.warnings;
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
