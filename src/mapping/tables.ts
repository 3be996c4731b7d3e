import { compileCondition } from './conditions.ts';
import type { TableConfig } from './schema.ts';
import { newScope, type CompileEnv, type CompiledTable, type DocScope, type Path, type RowScope } from './scope.ts';
import { compileValue } from './values.ts';

/** Named row sets: a multivalue, an optional filter and per-row vars; rows are filtered once per render. */

export function tableFor(env: CompileEnv, name: string, path: Path): CompiledTable {
  let table = env.tables.get(name);
  if (!table) {
    env.uses.push({ kind: 'table', id: name, path });
    table = { name, from: name, where: undefined, vars: new Map() };
    env.tables.set(name, table);
  }
  return table;
}

export function compileTables(config: Record<string, TableConfig> | undefined, env: CompileEnv): void {
  const entries = Object.entries(config ?? {});
  for (const [name, table] of entries) {
    env.tables.set(name, { name, from: table.from, where: undefined, vars: new Map() });
    env.uses.push({ kind: 'table', id: table.from, path: ['tables', name, 'from'] });
  }
  for (const [name, table] of entries) {
    const compiled = env.tables.get(name) as CompiledTable;
    const rowEnv: CompileEnv = {
      ...env,
      rowTable: compiled,
      declaredRowVars: new Set(Object.keys(table.vars ?? {})),
      rowReads: { count: 0 },
    };
    if (table.where) compiled.where = compileCondition(table.where, rowEnv, ['tables', name, 'where']);
    for (const [varName, spec] of Object.entries(table.vars ?? {}))
      compiled.vars.set(varName, compileValue(spec, rowEnv, ['tables', name, 'vars', varName]));
  }
}

/** Rows of a table after its filter, computed once per render. */
export function rowsOf(doc: DocScope, table: CompiledTable): RowScope[] {
  let rows = doc.rowSets.get(table.name);
  if (rows) return rows;
  rows = [];
  const scope = newScope(doc);
  for (const row of doc.view.rows(table.from)) {
    const candidate: RowScope = {
      row,
      lineNumber: rows.length + 1,
      table,
      label: `${table.from} row ${row.index}`,
      vars: undefined,
    };
    if (table.where) {
      scope.row = candidate;
      if (!table.where(scope)) continue;
    }
    rows.push(candidate);
  }
  doc.rowSets.set(table.name, rows);
  return rows;
}
