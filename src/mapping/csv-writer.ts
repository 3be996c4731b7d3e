/**
 * Writes CSV records exactly as csv-stringify does with the settings the CSV format always used (`quoted_string`,
 * `quote_record_delimiter`, `eof`; a cell that is an AutoCell is quoted only when it must be). csv-stringify
 * spends most of a render normalizing options and allocating per cell; this is the same rules, once.
 * test/mapping/csv-writer.test.ts holds it to csv-stringify's output.
 */

/** A cell quoted only when its value needs it (the delimiter, the quote, a line break); a plain string is always quoted. */
export interface AutoCell {
  auto: string;
}

export interface CsvWriteSettings {
  delimiter: string;
  /** One character, or "" for none. */
  quote: string;
  /** One character. */
  escape: string;
  recordDelimiter: string;
}

/** True when `separator` would be found starting inside `value` (also across the boundary to the next separator). */
function emitsSeparator(value: string, separator: string): boolean {
  return (
    separator.length !== 0 &&
    (value.indexOf(separator) !== -1 || (separator.length > 1 && (value + separator).indexOf(separator) < value.length))
  );
}

function field(value: string, alwaysQuoted: boolean, settings: CsvWriteSettings): string {
  const { delimiter, quote, escape, recordDelimiter } = settings;
  const containsQuote = quote !== '' && value.indexOf(quote) >= 0;
  const containsEscape = value.indexOf(escape) >= 0 && escape !== quote;
  const shouldQuote =
    containsQuote ||
    emitsSeparator(value, delimiter) ||
    emitsSeparator(value, recordDelimiter) ||
    value.indexOf('\n') !== -1 ||
    value.indexOf('\r') !== -1 ||
    alwaysQuoted;
  let text = value;
  if (shouldQuote && containsEscape) text = text.replaceAll(escape, () => escape + escape);
  if (containsQuote) text = text.replaceAll(quote, () => escape + quote);
  return shouldQuote ? quote + text + quote : text;
}

export function writeCsv(records: ReadonlyArray<ReadonlyArray<string | AutoCell>>, settings: CsvWriteSettings): string {
  const { delimiter, quote, recordDelimiter } = settings;
  let out = '';
  for (const record of records) {
    let line = '';
    const last = record.length - 1;
    for (let i = 0; i <= last; i++) {
      const cell = record[i] as string | AutoCell;
      if (typeof cell === 'string') line += cell === '' ? quote + quote : field(cell, true, settings);
      else if (cell.auto !== '') line += field(cell.auto, false, settings);
      if (i !== last) line += delimiter;
    }
    out += line + recordDelimiter;
  }
  return out;
}
