import type { RawNode } from '../annotation/index.ts';
import type { Path } from './scope.ts';
import { levenshtein } from '../config-loading/index.ts';

/**
 * Which datapoints a queue has, from its schema (`GET /v1/schemas/{id}`) or from sample payloads, and the
 * check of a mapping's datapoint references against them: misspelled ids and header/line-item mix-ups are
 * found when the mapping is written, not when the ERP receives empty columns.
 */

export interface DatapointCatalogue {
  /** Where the names come from, for messages: `schema 223 "Invoices"`, `the test payloads`. */
  origin: string;
  /** Datapoints outside any multivalue. */
  header: Set<string>;
  /** Multivalue schema_id → the datapoints of one of its rows. */
  tables: Map<string, Set<string>>;
}

/** One place a mapping names a datapoint or a table. */
export interface DatapointUse {
  kind: 'field' | 'row' | 'table';
  id: string;
  /** For `row`: the multivalue the row belongs to, when known. */
  table?: string | undefined;
  path: Path;
}

export interface DatapointProblem {
  path: Path;
  message: string;
  hint?: string | undefined;
}

interface SchemaNode {
  category?: unknown;
  id?: unknown;
  children?: unknown;
}

function asNodes(value: unknown): SchemaNode[] {
  if (Array.isArray(value)) return value.filter((v): v is SchemaNode => typeof v === 'object' && v !== null);
  return typeof value === 'object' && value !== null ? [value as SchemaNode] : [];
}

/** The datapoints of a Rossum queue schema; throws an Error naming what is wrong when it is not one. */
export function catalogueFromSchema(json: unknown, file: string): DatapointCatalogue {
  const schema = json as { id?: unknown; name?: unknown; content?: unknown };
  if (typeof json !== 'object' || json === null || !Array.isArray(schema.content)) {
    throw new Error(
      `${file}: not a Rossum schema (expected the JSON of GET /v1/schemas/{id}, with a "content" list of sections)`,
    );
  }
  const catalogue: DatapointCatalogue = {
    origin: `schema ${typeof schema.id === 'number' ? `${schema.id} ` : ''}(${file})`,
    header: new Set(),
    tables: new Map(),
  };
  const walk = (nodes: SchemaNode[], table: Set<string> | undefined): void => {
    for (const node of nodes) {
      if (typeof node.id !== 'string') continue;
      if (node.category === 'section' || node.category === 'tuple') walk(asNodes(node.children), table);
      else if (node.category === 'multivalue') {
        const columns = new Set<string>();
        catalogue.tables.set(node.id, columns);
        walk(asNodes(node.children), columns);
      } else if (node.category === 'datapoint') (table ?? catalogue.header).add(node.id);
    }
  };
  walk(asNodes(schema.content), undefined);
  if (catalogue.header.size === 0 && catalogue.tables.size === 0)
    throw new Error(`${file}: the schema has no datapoints`);
  return catalogue;
}

/** The datapoints present in export payloads (a stand-in when no schema is at hand). */
export function catalogueFromPayloads(contents: RawNode[][], origin: string): DatapointCatalogue {
  const catalogue: DatapointCatalogue = { origin, header: new Set(), tables: new Map() };
  const walk = (nodes: RawNode[], table: Set<string> | undefined): void => {
    for (const node of nodes) {
      if (node.category === 'multivalue') {
        const columns = catalogue.tables.get(node.schema_id) ?? new Set<string>();
        catalogue.tables.set(node.schema_id, columns);
        walk(node.children ?? [], columns);
      } else if (node.category === 'datapoint') (table ?? catalogue.header).add(node.schema_id);
      else walk(node.children ?? [], table);
    }
  };
  for (const content of contents) walk(content, undefined);
  return catalogue;
}

/** The candidate closest to `word`, when close enough to be a typo of it. */
export function closestName(word: string, candidates: Iterable<string>): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of candidates) {
    const [a, b] = [word.toLowerCase(), candidate.toLowerCase()];
    // A name cut short (sender_vat for sender_vat_id) beats an equally distant other name.
    const d = levenshtein(a, b) - (a.startsWith(b) || b.startsWith(a) ? 0.5 : 0);
    if (d < bestDistance) [best, bestDistance] = [candidate, d];
  }
  return best !== undefined && bestDistance <= Math.max(2, Math.floor(word.length / 3)) ? best : undefined;
}

function tableOfColumn(catalogue: DatapointCatalogue, id: string): string | undefined {
  for (const [table, columns] of catalogue.tables) if (columns.has(id)) return table;
  return undefined;
}

/** `subject` names what is missing, e.g. `header field "sender_vat"`; `word` is what the author wrote. */
function unknown(
  subject: string,
  word: string,
  catalogue: DatapointCatalogue,
  candidates: Iterable<string>,
  path: Path,
): DatapointProblem {
  const list = [...candidates];
  const suggestion = closestName(word, list);
  const hint = suggestion
    ? `did you mean "${suggestion}"?`
    : list.length > 0
      ? `known: ${list.slice(0, 12).join(', ')}${list.length > 12 ? ', ...' : ''}`
      : undefined;
  return { path, message: `${subject} is not in ${catalogue.origin}`, hint };
}

/** Every use that names no datapoint of the catalogue, or names it in the wrong place (header vs line item). */
export function checkDatapointUses(uses: DatapointUse[], catalogue: DatapointCatalogue): DatapointProblem[] {
  const problems: DatapointProblem[] = [];
  for (const use of uses) {
    const { id, path } = use;
    if (use.kind === 'field') {
      if (catalogue.header.has(id)) continue;
      const table = tableOfColumn(catalogue, id);
      if (table)
        problems.push({
          path,
          message: `"${id}" is a line-item column of "${table}", not a header field`,
          hint: `read it per row with {row: ${id}} under repeat/rows: ${table}, or add it up with {sum: ${table}.${id}}`,
        });
      else if (catalogue.tables.has(id))
        problems.push({
          path,
          message: `"${id}" is a table (multivalue), not a header field`,
          hint: `repeat over it (repeat/rows: ${id}) and read its columns with {row: ...}`,
        });
      else problems.push(unknown(`header field "${id}"`, id, catalogue, catalogue.header, path));
      continue;
    }
    if (use.kind === 'table') {
      if (catalogue.tables.has(id)) continue;
      if (catalogue.header.has(id))
        problems.push({
          path,
          message: `"${id}" is a header field, not a table (multivalue)`,
          hint: `tables: ${[...catalogue.tables.keys()].join(', ') || 'none'}`,
        });
      else problems.push(unknown(`table "${id}"`, id, catalogue, catalogue.tables.keys(), path));
      continue;
    }
    const columns = use.table === undefined ? undefined : catalogue.tables.get(use.table);
    if (columns?.has(id)) continue;
    const owner = tableOfColumn(catalogue, id);
    if (columns === undefined && owner !== undefined) continue;
    if (catalogue.header.has(id))
      problems.push({
        path,
        message: `"${id}" is a header field, not a line-item column${use.table ? ` of "${use.table}"` : ''}`,
        hint: `read it with {field: ${id}}`,
      });
    else if (owner !== undefined)
      problems.push({
        path,
        message: `"${id}" is a column of "${owner}", not of "${use.table}"`,
        hint: `repeat over ${owner} to read it`,
      });
    else
      problems.push(
        unknown(
          use.table ? `column "${id}" of table "${use.table}"` : `line-item column "${id}"`,
          id,
          catalogue,
          columns ?? [...catalogue.tables.values()].flatMap((c) => [...c]),
          path,
        ),
      );
  }
  return problems;
}
