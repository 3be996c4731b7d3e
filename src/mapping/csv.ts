import { stringify } from 'csv-stringify/sync';
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

export interface CompiledCsv {
  config: CsvConfig;
  table: CompiledTable | undefined;
  columns: Array<{ name: string; value: CompiledValue }>;
}

const FORMULA_START = /^[=+\-@\t\r\uFF1D\uFF0B\uFF0D\uFF20]/;
/** Numbers as ERPs and people write them: -5,00  1.234,56  +3  (never formulas). */
const NUMBER_LIKE = /^[+-]?\d[\d.,' ]*$/;
const LINE_BREAK = /\r\n|\r|\n/g;

interface NumberCell {
  number: string;
}

export function compileCsv(config: CsvConfig, env: CompileEnv): CompiledCsv {
  const table = config.rows ? tableFor(env, config.rows) : undefined;
  const rowEnv: CompileEnv = table ? { ...env, rowTable: table, declaredRowVars: new Set(table.vars.keys()) } : env;
  if (config.delimiter === config.quote)
    env.problem(['csv', 'delimiter'], 'the delimiter and the quote character are the same');
  if (/[\r\n]/.test(config.delimiter)) env.problem(['csv', 'delimiter'], 'the delimiter cannot contain a line break');
  const seen = new Set<string>();
  const columns = config.columns.map((column, i) => {
    if (seen.has(column.name)) env.problem(['csv', 'columns', i, 'name'], `column "${column.name}" appears twice`);
    seen.add(column.name);
    return { name: column.name, value: compileValue(column.value, rowEnv, ['csv', 'columns', i, 'value']) };
  });
  return { config, table, columns };
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

export function renderCsv(csv: CompiledCsv, emitter: Emitter, eol: string, finalNewline: boolean): string {
  const { config, columns } = csv;
  const scope = newScope(emitter.doc);
  const rows = csvRows(csv, emitter.doc);
  emitter.doc.recordCount = rows.length;
  const records: Array<Array<string | NumberCell>> = [];
  if (config.header)
    records.push(columns.map((column) => emitter.prepare(column.name, { ...scope, at: `header "${column.name}"` })));
  for (const [index, row] of rows.entries()) {
    scope.row = row;
    const record: string[] = [];
    for (const column of columns) {
      const at = `column "${column.name}" of record ${index + 1}${row ? ` (${row.label})` : ''}`;
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
      if (config.quote === '' && (value.includes(config.delimiter) || /[\r\n]/.test(value))) {
        throw mappingError(
          'MAPPING_INVALID',
          `${at}: the value contains the delimiter or a line break, and this CSV has no quote character to protect it.`,
          scope.datapoint?.id,
        );
      }
      record.push(value);
    }
    records.push(record);
  }
  if (records.length === 0) return '';
  // "text" quoting: csv-stringify quotes values whose type is string (quoted_string); numbers travel
  // wrapped in an object and come back as strings through cast.object, so they stay unquoted.
  const textMode = config.quoting === 'text';
  if (textMode) {
    const numeric = columns.map((column) => column.value.numeric);
    for (let r = config.header ? 1 : 0; r < records.length; r++) {
      const record = records[r] as Array<string | NumberCell>;
      for (let c = 0; c < record.length; c++) if (numeric[c]) record[c] = { number: record[c] as string };
    }
  }
  const out = stringify(records, {
    delimiter: config.delimiter,
    quote: config.quote,
    escape: config.escape ?? (config.quote || '"'),
    quoted: config.quoting === 'all',
    quote_record_delimiter: true,
    record_delimiter: eol,
    eof: true,
    quoted_string: textMode,
    quoted_empty: false,
    cast: { object: (value) => (value as unknown as NumberCell).number },
  });
  return finalNewline ? out : out.slice(0, out.length - eol.length);
}
