import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parseExportPayload, viewAnnotation } from '../annotation/index.ts';
import { describeError, isBridgeError } from '../errors.ts';
import type { LoadedMapping } from './compile.ts';
import type { RenderedFile } from './contract.ts';
import { OutputEncoding } from './encoding.ts';
import type { TestCase } from './schema.ts';

export interface TestResult {
  mapping: string;
  name: string;
  ok: boolean;
  /** Why it failed, with a unified diff when the output differs. */
  details: string[];
  updated?: boolean;
  /** The file name rendered, when rendering succeeded. */
  fileName?: string;
}

/** Runs a mapping's test cases. With `update`, writes the actual output into each `output_file`. */
export function runMappingTests(mapping: LoadedMapping, options: { update?: boolean } = {}): TestResult[] {
  return mapping.tests.map((test) => runOne(mapping, test, options.update === true));
}

function runOne(mapping: LoadedMapping, test: TestCase, update: boolean): TestResult {
  const base = dirname(mapping.sourcePath);
  const result: TestResult = { mapping: mapping.name, name: test.name, ok: true, details: [] };
  const fail = (message: string): TestResult => {
    result.ok = false;
    result.details.push(message);
    return result;
  };

  let payload: ReturnType<typeof parseExportPayload>;
  try {
    payload = parseExportPayload(JSON.parse(readFileSync(resolve(base, test.payload), 'utf8')));
  } catch (error) {
    return fail(`cannot read payload ${test.payload}: ${describeError(error)}`);
  }
  const now = new Date(test.now ?? payload.timestamp ?? '2024-01-01T00:00:00Z');
  let others: Array<ReturnType<typeof parseExportPayload>>;
  try {
    others = (test.batch_with ?? []).map((path) =>
      parseExportPayload(JSON.parse(readFileSync(resolve(base, path), 'utf8'))),
    );
  } catch (error) {
    return fail(`cannot read a batch_with payload: ${describeError(error)}`);
  }
  let file: RenderedFile;
  try {
    const context = { now, route: test.route ?? {}, env: test.env ?? {}, sequence: test.sequence };
    file = mapping.batch
      ? mapping.renderBatch(
          [payload, ...others].map((each) => mapping.renderBatchEntry(viewAnnotation(each), context)),
          { number: test.sequence, openedAt: now, closedAt: now },
          context,
        )
      : mapping.render(viewAnnotation(payload), context);
  } catch (error) {
    const message = isBridgeError(error)
      ? `${error.code}: ${error.message}${error.location.datapointId ? ` [datapoint ${error.location.datapointId}]` : ''}`
      : describeError(error);
    if (!test.expect.errors) return fail(`rendering failed: ${message}`);
    for (const expected of test.expect.errors)
      if (!message.includes(expected)) fail(`the error does not mention ${JSON.stringify(expected)}:\n  ${message}`);
    if (!isBridgeError(error)) fail('the error is not a mapping error (BridgeError)');
    return result;
  }
  if (test.expect.errors)
    return fail(
      `expected an error mentioning ${test.expect.errors.map((e) => JSON.stringify(e)).join(', ')}, but rendering succeeded`,
    );

  result.fileName = file.fileName;
  const { expect } = test;
  if (expect.file_name !== undefined && expect.file_name !== file.fileName)
    fail(`file name: expected ${JSON.stringify(expect.file_name)}, got ${JSON.stringify(file.fileName)}`);
  for (const warning of expect.warnings ?? []) {
    if (!(file.warnings ?? []).some((w) => w.includes(warning)))
      fail(`no warning mentions ${JSON.stringify(warning)} (warnings: ${JSON.stringify(file.warnings ?? [])})`);
  }
  const encoding = new OutputEncoding(file.encoding);
  if (expect.output !== undefined) {
    const actual = encoding.decode(file.bytes).replace(/^\ufeff/, '');
    if (actual !== expect.output) fail(`output differs:\n${unifiedDiff(expect.output, actual, 'expected', 'actual')}`);
  }
  if (expect.output_file !== undefined) {
    const path = resolve(base, expect.output_file);
    if (update) {
      const before = existsSync(path) ? readFileSync(path) : undefined;
      if (!before?.equals(file.bytes)) {
        mkdirSync(dirname(path), { recursive: true });
        writeFileSync(path, file.bytes);
        result.updated = true;
      }
    } else if (!existsSync(path)) {
      fail(
        `expected output file ${expect.output_file} does not exist (run with --update to create it from the current output)`,
      );
    } else {
      const expected = readFileSync(path);
      if (!expected.equals(file.bytes))
        fail(describeByteDifference(expected, file.bytes, encoding, expect.output_file));
    }
  }
  return result;
}

function describeByteDifference(expected: Buffer, actual: Buffer, encoding: OutputEncoding, name: string): string {
  const expectedText = encoding.decode(expected);
  const actualText = encoding.decode(actual);
  if (expectedText !== actualText)
    return `output differs from ${name}:\n${unifiedDiff(expectedText, actualText, name, 'actual')}`;
  let offset = 0;
  while (offset < expected.length && expected[offset] === actual[offset]) offset++;
  return `output bytes differ from ${name} at byte ${offset} (expected ${expected.length} bytes, got ${actual.length}); the decoded text is the same — check the encoding, BOM or line endings`;
}

/** Line endings made visible, so a CRLF/LF difference shows in the diff. */
function visibleLines(text: string): string[] {
  const lines = text.split(/(?<=\n)/);
  return lines.map((line) => line.replace(/\r\n$/, '␍␊').replace(/\n$/, '␊').replace(/\r/g, '␍').replace(/\t/g, '→'));
}

/** A unified diff of two texts (line based, 3 lines of context). */
export function unifiedDiff(expected: string, actual: string, expectedName: string, actualName: string): string {
  const a = visibleLines(expected);
  const b = visibleLines(actual);
  // Longest common subsequence table; outputs are small enough that O(n·m) is fine, and we cap it.
  if (a.length * b.length > 4_000_000)
    return `--- ${expectedName}\n+++ ${actualName}\n(outputs too large to diff: ${a.length} vs ${b.length} lines)`;
  const lcs: number[][] = Array.from({ length: a.length + 1 }, () => new Array<number>(b.length + 1).fill(0));
  for (let i = a.length - 1; i >= 0; i--) {
    const row = lcs[i] as number[];
    const below = lcs[i + 1] as number[];
    for (let j = b.length - 1; j >= 0; j--)
      row[j] = a[i] === b[j] ? (below[j + 1] as number) + 1 : Math.max(below[j] as number, row[j + 1] as number);
  }
  const ops: Array<{ op: ' ' | '-' | '+'; line: string; ai: number; bi: number }> = [];
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    if (i < a.length && j < b.length && a[i] === b[j]) ops.push({ op: ' ', line: a[i++] as string, ai: i, bi: ++j });
    else if (j < b.length && (i >= a.length || (lcs[i]?.[j + 1] ?? 0) >= (lcs[i + 1]?.[j] ?? 0)))
      ops.push({ op: '+', line: b[j++] as string, ai: i, bi: j });
    else ops.push({ op: '-', line: a[i++] as string, ai: i, bi: j });
  }
  const out = [`--- ${expectedName}`, `+++ ${actualName}`];
  const context = 3;
  let k = 0;
  while (k < ops.length) {
    if (ops[k]?.op === ' ') {
      k++;
      continue;
    }
    const start = Math.max(0, k - context);
    let end = k;
    let quiet = 0;
    while (end < ops.length && quiet <= context * 2) {
      quiet = ops[end]?.op === ' ' ? quiet + 1 : 0;
      end++;
    }
    end = Math.min(ops.length, end - Math.max(0, quiet - context));
    const hunk = ops.slice(start, end);
    const aStart = hunk.findIndex((o) => o.op !== '+');
    const bStart = hunk.findIndex((o) => o.op !== '-');
    const aCount = hunk.filter((o) => o.op !== '+').length;
    const bCount = hunk.filter((o) => o.op !== '-').length;
    const aLine = aStart < 0 ? (hunk[0]?.ai ?? 0) : (hunk[aStart]?.ai ?? 1);
    const bLine = bStart < 0 ? (hunk[0]?.bi ?? 0) : (hunk[bStart]?.bi ?? 1);
    out.push(`@@ -${aLine},${aCount} +${bLine},${bCount} @@`);
    for (const o of hunk) out.push(`${o.op}${o.line}`);
    k = end;
  }
  return out.join('\n');
}
