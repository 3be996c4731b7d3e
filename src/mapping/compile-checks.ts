import { existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { MappingSource } from './schema.ts';

type Problem = (path: ReadonlyArray<PropertyKey>, message: string, hint?: string) => void;

/** The mapping's own test cases: their payloads exist and each expects something. */
export function checkTestCases(source: MappingSource, file: string, problem: Problem): void {
  const base = dirname(file);
  const missing = (path: ReadonlyArray<PropertyKey>, payload: string): void => {
    if (!existsSync(resolve(base, payload)))
      problem(path, `payload file not found: ${resolve(base, payload)}`, 'paths are relative to the mapping file');
  };
  for (const [i, test] of (source.tests ?? []).entries()) {
    missing(['tests', i, 'payload'], test.payload);
    if (test.batch_with && !source.batch)
      problem(['tests', i, 'batch_with'], 'batch_with is for batch mappings (this one has no batch:)');
    for (const [j, payload] of (test.batch_with ?? []).entries()) missing(['tests', i, 'batch_with', j], payload);
    const expectations = ['output', 'output_file', 'errors', 'file_name'].filter(
      (key) => test.expect[key as keyof typeof test.expect] !== undefined,
    );
    if (expectations.length === 0)
      problem(['tests', i, 'expect'], 'the test expects nothing', 'add output, output_file, file_name or errors');
    if (test.expect.errors && (test.expect.output !== undefined || test.expect.output_file !== undefined))
      problem(['tests', i, 'expect'], 'a test expects either output or errors, not both');
  }
}
