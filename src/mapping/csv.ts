import { mappingError } from './errors.ts';
import type { Emitter } from './emit.ts';
import type { CsvConfig } from './schema.ts';
import {
  newScope,
  type CompileEnv,
  type CompiledTable,
  type CompiledValue,
  type DocScope,
  type RowScope,
} from './scope.ts';
import { rowsOf, tableFor } from './tables.ts';
import { compileValue } from './values.ts';

type QuotePolicy = 'always' | 'never' | 'auto';

interface CompiledColumn {
  name: string;
  value: CompiledValue;
  quote: QuotePolicy;
  quoteEmpty: boolean;
}

export interface CompiledCsv {
  config: CsvConfig;
  table: CompiledTable | undefined;
  columns: CompiledColumn[];
  headerQuote: QuotePolicy;
}

const FORMULA_START = /^[=+\-@\t\r\uFF1D\uFF0B\uFF0D\uFF20]/;
/** Numbers as ERPs and people write them: -5,00  1.234,56  +3  (never formulas). */
const NUMBER_LIKE = /^[+-]?\d[\d.,' ]*$/;
const LINE_BREAK = /\r\n|\r|\n/g;
const HAS_LINE_BREAK = /[\r\n]/;

function defaultPolicy(quoting: CsvConfig['quoting'], numeric: boolean): QuotePolicy {
  if (quoting === 'all') return 'always';
  if (quoting === 'text') return numeric ? 'auto' : 'always';
  return 'auto';
}

export function compileCsv(config: CsvConfig, env: CompileEnv): CompiledCsv {
  const table = config.rows ? tableFor(env, config.rows, ['csv', 'rows']) : undefined;
  const rowEnv: CompileEnv = table ? { ...env, rowTable: table, declaredRowVars: new Set(table.vars.keys()) } : env;
  if (config.delimiter === config.quote)
    env.problem(['csv', 'delimiter'], 'the delimiter and the quote character are the same');
  if (/[\r\n]/.test(config.delimiter)) env.problem(['csv', 'delimiter'], 'the delimiter cannot contain a line break');
  const seen = new Set<string>();
  const columns = config.columns.map((column, i): CompiledColumn => {
    if (seen.has(column.name)) env.problem(['csv', 'columns', i, 'name'], `column "${column.name}" appears twice`);
    seen.add(column.name);
    const value = compileValue(column.value, rowEnv, ['csv', 'columns', i, 'value']);
    if (column.empty === 'quoted' && value.numeric)
      env.problem(
        ['csv', 'columns', i, 'empty'],
        `column "${column.name}" is a formatted number; "" is for empty text`,
        'remove empty: quoted, or drop the number formatting',
      );
    if (config.quote === '' && (column.quote === 'always' || column.empty === 'quoted'))
      env.problem(
        ['csv', 'columns', i, column.quote === 'always' ? 'quote' : 'empty'],
        'this CSV has no quote character (csv.quote is "")',
        "set csv.quote, e.g. '\"'",
      );
    return {
      name: column.name,
      value,
      quote: column.quote ?? defaultPolicy(config.quoting, value.numeric),
      quoteEmpty: column.empty === 'quoted',
    };
  });
  const headerQuote = config.header_quote ?? (config.quoting === 'auto' ? 'auto' : 'always');
  return { config, table, columns, headerQuote };
}

/** Records to write (rows after the filter), so `meta.record_count` is known before any value is evaluated. */
export function csvRows(csv: CompiledCsv, doc: DocScope): Array<RowScope | undefined> {
  if (!csv.table) return [undefined];
  const rows = rowsOf(doc, csv.table);
  if (rows.length > 0) return rows;
  if (csv.config.no_rows === 'document_row') return [undefined];
  if (csv.config.no_rows === 'error')
    throw mappingError(
      'MAPPING_NO_ROWS',
      `The CSV needs at least one row of "${csv.table.from}", but the annotation has none. Add the line items in Rossum.`,
    );
  return [];
}

/** A longer delimiter also counts when the value ends in its beginning (`a:` then `::` reads as `a` then `:`). */
function needsQuotes(value: string, config: Pick<CsvConfig, 'delimiter' | 'quote'>): boolean {
  const { delimiter, quote } = config;
  return (
    value.includes(delimiter) ||
    (delimiter.length > 1 && (value + delimiter).indexOf(delimiter) < value.length) ||
    (quote !== '' && value.includes(quote)) ||
    HAS_LINE_BREAK.test(value)
  );
}

/**
 * One cell as it is written: quoted when the column says always or the value needs it (the delimiter, the
 * quote or a line break in it), the quote escaped inside (doubled, or preceded by `escape`, which is then
 * itself doubled), an empty cell as nothing or as `""`. csv-stringify's rules, written out: per-cell
 * options made it re-read its settings on every cell, a third of a large CSV's render time.
 */
export function csvCell(
  value: string,
  policy: QuotePolicy,
  quoteEmpty: boolean,
  config: Pick<CsvConfig, 'delimiter' | 'quote' | 'escape'>,
  at: string,
  datapointId: number | undefined,
): string {
  const quote = config.quote;
  if (value === '') return quoteEmpty ? quote + quote : '';
  const needed = needsQuotes(value, config);
  if (needed && quote === '')
    throw mappingError(
      'MAPPING_INVALID',
      `${at}: the value contains the delimiter or a line break, and this CSV has no quote character to protect it.`,
      datapointId,
    );
  if (needed && policy === 'never')
    throw mappingError(
      'MAPPING_INVALID',
      `${at}: the value contains the delimiter, the quote or a line break, and the column is never quoted. Correct the value in Rossum or set quote: auto on the column.`,
      datapointId,
    );
  if (!needed && (policy !== 'always' || quote === '')) return value;
  const escapeCharacter = config.escape ?? quote;
  let body = value;
  if (escapeCharacter !== quote && body.includes(escapeCharacter))
    body = body.replaceAll(escapeCharacter, escapeCharacter + escapeCharacter);
  if (body.includes(quote)) body = body.replaceAll(quote, escapeCharacter + quote);
  return quote + body + quote;
}

/** `parts`: a batch writes its header once (`records: false`) and each document's records without it (`header: false`). */
export function renderCsv(
  csv: CompiledCsv,
  emitter: Emitter,
  eol: string,
  finalNewline: boolean,
  parts: { header: boolean; records: boolean } = { header: csv.config.header, records: true },
): string {
  const { config, columns } = csv;
  const scope = newScope(emitter.doc);
  const rows = parts.records ? csvRows(csv, emitter.doc) : [];
  emitter.doc.recordCount = rows.length;
  const { delimiter } = config;
  let out = '';
  if (parts.header) {
    for (let c = 0; c < columns.length; c++) {
      const column = columns[c] as CompiledColumn;
      const at = `header "${column.name}"`;
      if (c > 0) out += delimiter;
      out += csvCell(emitter.prepare(column.name, { ...scope, at }), csv.headerQuote, false, config, at, undefined);
    }
    out += eol;
  }
  // Locations for messages, put together from pieces made once per column and once per record.
  const columnAt = columns.map((column) => `column "${column.name}" of record `);
  for (let index = 0; index < rows.length; index++) {
    const row = rows[index];
    scope.row = row;
    const recordAt = `${index + 1}${row ? ` (${row.label})` : ''}`;
    for (let c = 0; c < columns.length; c++) {
      const column = columns[c] as CompiledColumn;
      const at = (columnAt[c] as string) + recordAt;
      let value = emitter.value(column.value, scope, at) ?? '';
      if (value.includes('\n') || value.includes('\r')) {
        if (config.line_breaks === 'strip') value = value.replace(LINE_BREAK, ' ');
        else if (config.line_breaks === 'error') {
          throw mappingError(
            'MAPPING_LINE_BREAK',
            `${at}: the value has a line break, which this CSV does not allow. Remove it in Rossum or set csv.line_breaks to strip.`,
            scope.datapoint?.id,
          );
        }
      }
      if (config.escape_formulas && !column.value.numeric && FORMULA_START.test(value) && !NUMBER_LIKE.test(value))
        value = `'${value}`;
      if (c > 0) out += delimiter;
      out += csvCell(value, column.quote, column.quoteEmpty, config, at, scope.datapoint?.id);
    }
    out += eol;
  }
  if (out === '') return '';
  return finalNewline ? out : out.slice(0, out.length - eol.length);
}
