import { mappingError } from './errors.ts';
import type { Emitter } from './emit.ts';
import type { OutputEncoding } from './encoding.ts';
import type { FixedConfig } from './schema.ts';
import { compileCondition } from './conditions.ts';
import {
  newScope,
  type CompileEnv,
  type CompiledCondition,
  type CompiledTable,
  type CompiledValue,
  type DocScope,
  type RowScope,
} from './scope.ts';
import { rowsOf, tableFor } from './tables.ts';
import { compileValue } from './values.ts';

interface CompiledField {
  name: string;
  value: CompiledValue;
  /** 0-based byte offset. */
  start: number;
  width: number;
  align: 'left' | 'right';
  pad: string;
  truncate: boolean;
}

interface CompiledRecord {
  name: string;
  table: CompiledTable | undefined;
  when: CompiledCondition | undefined;
  length: number | undefined;
  fields: CompiledField[];
}

export interface CompiledFixed {
  fill: string;
  records: CompiledRecord[];
}

export function compileFixed(
  config: FixedConfig,
  env: CompileEnv,
  encoding: OutputEncoding | undefined,
): CompiledFixed {
  const singleByte = (ch: string, path: ReadonlyArray<PropertyKey>, what: string): void => {
    if (encoding && (!encoding.fits(ch) || encoding.byteLength(ch) !== 1))
      env.problem(
        path,
        `the ${what} "${ch}" is not a single byte in ${encoding.name}`,
        'use a space, "0" or another ASCII character',
      );
  };
  singleByte(config.fill, ['fixed', 'fill'], 'fill character');
  const records = config.records.map((record, r) => {
    const table = record.rows ? tableFor(env, record.rows, ['fixed', 'records', r, 'rows']) : undefined;
    const recordEnv: CompileEnv = table
      ? { ...env, rowTable: table, declaredRowVars: new Set(table.vars.keys()) }
      : env;
    let position = 0;
    const fields = record.fields.map((field, f) => {
      const path = ['fixed', 'records', r, 'fields', f];
      const start = field.start === undefined ? position : field.start - 1;
      if (start < position) {
        const previous = record.fields[f - 1];
        env.problem(
          [...path, 'start'],
          `field "${field.name}" starts at ${start + 1} but "${previous?.name}" already uses bytes up to ${position}`,
          `start it at ${position + 1} or later, or shorten "${previous?.name}"`,
        );
      }
      position = Math.max(position, start) + field.width;
      const value = compileValue(field.value, recordEnv, [...path, 'value']);
      const pad = field.pad ?? ' ';
      singleByte(pad, [...path, 'pad'], 'padding character');
      return {
        name: field.name,
        value,
        start,
        width: field.width,
        align: field.align ?? (value.numeric ? 'right' : 'left'),
        pad,
        truncate: field.truncate,
      };
    });
    if (record.length !== undefined && position > record.length) {
      env.problem(
        ['fixed', 'records', r, 'length'],
        `record "${record.name}" is ${record.length} bytes long but its fields need ${position}`,
        'widen the record or narrow the fields',
      );
    }
    return {
      name: record.name,
      table,
      when: record.when ? compileCondition(record.when, recordEnv, ['fixed', 'records', r, 'when']) : undefined,
      length: record.length,
      fields,
    };
  });
  return { fill: config.fill, records };
}

const HAS_LINE_BREAK = /[\r\n]/;
const isHighSurrogate = (code: number): boolean => code >= 0xd800 && code <= 0xdbff;
const isLowSurrogate = (code: number): boolean => code >= 0xdc00 && code <= 0xdfff;
const SIGNED = /^[+-]/;

interface PlannedRecord {
  record: CompiledRecord;
  row: RowScope | undefined;
}

function plan(fixed: CompiledFixed, doc: DocScope): PlannedRecord[] {
  const planned: PlannedRecord[] = [];
  const scope = newScope(doc);
  for (const record of fixed.records) {
    const rows: Array<RowScope | undefined> = record.table ? rowsOf(doc, record.table) : [undefined];
    for (const row of rows) {
      scope.row = row;
      scope.at = `record "${record.name}"`;
      if (record.when && !record.when(scope)) continue;
      planned.push({ record, row });
    }
  }
  return planned;
}

/** Cuts `text` to at most `width` bytes without splitting a character. */
function cutToBytes(text: string, width: number, encoding: OutputEncoding, bytes: number): string {
  if (bytes === text.length) {
    // Every character takes one byte per UTF-16 unit: cut by units, keeping a surrogate pair whole.
    let end = Math.min(width, text.length);
    if (
      end > 0 &&
      end < text.length &&
      isHighSurrogate(text.charCodeAt(end - 1)) &&
      isLowSurrogate(text.charCodeAt(end))
    )
      end--;
    return text.slice(0, end);
  }
  let out = '';
  let used = 0;
  for (const ch of text) {
    const size = encoding.byteLength(ch);
    if (used + size > width) break;
    out += ch;
    used += size;
  }
  return out;
}

export function renderFixed(fixed: CompiledFixed, emitter: Emitter, eol: string, finalNewline: boolean): string {
  const encoding = emitter.settings.encoding;
  const planned = plan(fixed, emitter.doc);
  emitter.doc.recordCount = planned.length;
  const scope = newScope(emitter.doc);
  const lines: string[] = [];
  for (let index = 0; index < planned.length; index++) {
    const { record, row } = planned[index] as PlannedRecord;
    scope.row = row;
    let line = '';
    let used = 0;
    const recordAt = `record ${index + 1} "${record.name}"${row ? ` (${row.label})` : ''} field "`;
    for (const field of record.fields) {
      if (field.start > used) {
        line += fixed.fill.repeat(field.start - used);
        used = field.start;
      }
      const at = `${recordAt}${field.name}"`;
      let value = emitter.value(field.value, scope, at) ?? '';
      if (HAS_LINE_BREAK.test(value)) {
        throw mappingError(
          'MAPPING_LINE_BREAK',
          `${at}: the value has a line break, which would split the record. Add collapse_whitespace: true or strip_line_breaks: true to the field's value.`,
          scope.datapoint?.id,
        );
      }
      let size = encoding.byteLength(value);
      if (size > field.width) {
        if (!field.truncate) {
          throw mappingError(
            'MAPPING_VALUE_TOO_LONG',
            `${at}: "${value}" is ${size} bytes in ${encoding.name}, but the field holds ${field.width}. Shorten the value in Rossum or set truncate: true on the field.`,
            scope.datapoint?.id,
          );
        }
        value = cutToBytes(value, field.width, encoding, size);
        size = encoding.byteLength(value);
      }
      const padding = field.pad.repeat(field.width - size);
      if (field.align === 'left') line += value + padding;
      else if (field.pad === '0' && SIGNED.test(value)) line += value[0] + padding + value.slice(1);
      else line += padding + value;
      used += field.width;
    }
    if (record.length !== undefined && used < record.length) line += fixed.fill.repeat(record.length - used);
    lines.push(line);
  }
  if (lines.length === 0) return '';
  // Appended rather than joined: each line is a string built piece by piece, which join copies slowly.
  let out = lines[0] as string;
  for (let i = 1; i < lines.length; i++) out += eol + (lines[i] as string);
  return out + (finalNewline ? eol : '');
}
