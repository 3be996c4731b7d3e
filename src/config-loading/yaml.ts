import { readFileSync } from 'node:fs';
import { isMap, isScalar, LineCounter, parseDocument, visit, type Document } from 'yaml';
import type { z } from 'zod';
import { BridgeError } from '../errors.ts';
import { formatPath } from './paths.ts';

/** One problem in a config or mapping file, pointing at the offending key. */
export interface Diagnostic {
  file: string;
  line: number;
  column: number;
  /** Dotted path of the offending key, e.g. `targets.erp.pool.size`. */
  key: string;
  message: string;
  hint?: string;
}

export function formatDiagnostic(diagnostic: Diagnostic): string {
  const key = diagnostic.key ? `${diagnostic.key}: ` : '';
  const hint = diagnostic.hint ? ` (hint: ${diagnostic.hint})` : '';
  return `${diagnostic.file}:${diagnostic.line}:${diagnostic.column}: ${key}${diagnostic.message}${hint}`;
}

/** A file that does not parse or validate; carries every problem found, not just the first. */
export class ConfigFileError extends BridgeError {
  readonly diagnostics: Diagnostic[];
  constructor(diagnostics: Diagnostic[]) {
    const first = diagnostics[0];
    const more =
      diagnostics.length > 1 ? ` (and ${diagnostics.length - 1} more problem${diagnostics.length > 2 ? 's' : ''})` : '';
    super('CONFIG_INVALID', first ? `${formatDiagnostic(first)}${more}` : 'invalid file', {
      permanent: true,
      location: first ? { file: first.file, line: first.line, column: first.column } : {},
    });
    this.diagnostics = diagnostics;
  }

  override where(): string {
    return '';
  }
}

export interface YamlLoadOptions {
  /** Replace `${NAME}` / `${NAME:-default}` in string values from this environment. */
  env?: NodeJS.ProcessEnv;
}

export interface LoadedYaml<T> {
  value: T;
  /** Position of a path in the source, for semantic checks done after schema validation. */
  locate(path: ReadonlyArray<PropertyKey>): { line: number; column: number };
  source: string;
}

export function loadYamlFile<S extends z.ZodType>(
  file: string,
  schema: S,
  options: YamlLoadOptions = {},
): LoadedYaml<z.infer<S>> {
  let source: string;
  try {
    source = readFileSync(file, 'utf8');
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code === 'ENOENT' ? 'file not found' : (error as Error).message;
    throw new ConfigFileError([{ file, line: 1, column: 1, key: '', message: reason }]);
  }
  return parseYamlSource(file, source, schema, options);
}

export function parseYamlSource<S extends z.ZodType>(
  file: string,
  source: string,
  schema: S,
  options: YamlLoadOptions = {},
): LoadedYaml<z.infer<S>> {
  const lineCounter = new LineCounter();
  const doc = parseDocument(source, { lineCounter, uniqueKeys: true, prettyErrors: false });
  const position = (offset: number): { line: number; column: number } => {
    const pos = lineCounter.linePos(offset);
    return { line: pos.line, column: pos.col };
  };
  const locate = (path: ReadonlyArray<PropertyKey>): { line: number; column: number } =>
    locatePath(doc, path, position);
  const locateKey = (path: ReadonlyArray<PropertyKey>): { line: number; column: number } =>
    locateKeyPath(doc, path, position) ?? locate(path);

  if (doc.errors.length > 0) {
    throw new ConfigFileError(
      doc.errors.map((error) => ({
        file,
        ...position(error.pos[0]),
        key: '',
        message: error.message.split('\n')[0] ?? error.message,
      })),
    );
  }

  const diagnostics: Diagnostic[] = [];
  if (options.env)
    interpolateEnv(doc, options.env, (offset, key, message, hint) =>
      diagnostics.push({ file, ...position(offset), key, message, ...(hint ? { hint } : {}) }),
    );

  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: 100 });
  } catch (error) {
    throw new ConfigFileError([{ file, line: 1, column: 1, key: '', message: (error as Error).message }]);
  }

  const parsed = schema.safeParse(data ?? {}, { reportInput: true });
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      diagnostics.push(...issueToDiagnostics(file, issue, { locate, locateKey }, schema, data));
    }
  }
  if (diagnostics.length > 0) {
    diagnostics.sort((a, b) => a.line - b.line || a.column - b.column);
    throw new ConfigFileError(diagnostics);
  }
  return { value: (parsed as { data: z.infer<S> }).data, locate, source };
}

/** Position of the key itself (not its value) for "unknown key" messages. */
function locateKeyPath(
  doc: Document,
  path: ReadonlyArray<PropertyKey>,
  position: (offset: number) => { line: number; column: number },
): { line: number; column: number } | undefined {
  const parent = path.length === 1 ? doc.contents : doc.getIn(path.slice(0, -1) as unknown[], true);
  if (!isMap(parent)) return undefined;
  const name = String(path[path.length - 1]);
  const pair = parent.items.find((item) => isScalar(item.key) && String(item.key.value) === name);
  const range = pair && isScalar(pair.key) ? pair.key.range : undefined;
  return range ? position(range[0]) : undefined;
}

function locatePath(
  doc: Document,
  path: ReadonlyArray<PropertyKey>,
  position: (offset: number) => { line: number; column: number },
): { line: number; column: number } {
  // Missing keys point at nothing: walk up until a node exists.
  for (let length = path.length; length >= 0; length--) {
    const node = doc.getIn(path.slice(0, length) as unknown[], true) as
      | { range?: [number, number, number] }
      | undefined;
    if (node && typeof node === 'object' && node.range) return position(node.range[0]);
  }
  return { line: 1, column: 1 };
}

type ZodIssue = z.core.$ZodIssue;

interface Locator {
  locate(path: ReadonlyArray<PropertyKey>): { line: number; column: number };
  locateKey(path: ReadonlyArray<PropertyKey>): { line: number; column: number };
}

function issueToDiagnostics(
  file: string,
  issue: ZodIssue,
  locator: Locator,
  schema: z.ZodType,
  data: unknown,
): Diagnostic[] {
  const path = issue.path as PropertyKey[];
  if (issue.code === 'invalid_union') {
    // Report the branch the author evidently meant (a map for a map, ...) instead of "no allowed form".
    const branch = closestBranch(issue.errors, valueAt(data, path));
    if (branch)
      return branch.flatMap((inner) =>
        issueToDiagnostics(file, { ...inner, path: [...path, ...inner.path] } as ZodIssue, locator, schema, data),
      );
  }
  if (issue.code === 'unrecognized_keys') {
    const known = knownKeysAt(schema, path, data);
    return issue.keys.map((key) => {
      const suggestion = closest(key, known);
      return {
        file,
        ...locator.locateKey([...path, key]),
        key: formatPath([...path, key]),
        message: `unknown key "${key}"`,
        hint: suggestion
          ? `did you mean "${suggestion}"?`
          : known.length > 0
            ? `expected one of: ${known.join(', ')}`
            : 'remove it',
      };
    });
  }
  const key = formatPath(path);
  const message = humanMessage(issue);
  return [{ file, ...locator.locate(path), key, message }];
}

function valueAt(data: unknown, path: ReadonlyArray<PropertyKey>): unknown {
  let value = data;
  for (const segment of path)
    value = value && typeof value === 'object' ? (value as Record<PropertyKey, unknown>)[segment as string] : undefined;
  return value;
}

/** Among a union's failed branches, the one whose issues are not "wrong type at the top" and fewest. */
function closestBranch(
  branches: ReadonlyArray<ReadonlyArray<ZodIssue>>,
  value: unknown,
): ReadonlyArray<ZodIssue> | undefined {
  if (value === undefined) return undefined;
  const candidates = branches.filter(
    (issues) => issues.length > 0 && !issues.some((inner) => inner.path.length === 0 && inner.code === 'invalid_type'),
  );
  candidates.sort((a, b) => a.length - b.length);
  return candidates[0];
}

function humanMessage(issue: ZodIssue): string {
  switch (issue.code) {
    case 'invalid_type':
      return issue.input === undefined
        ? `required, expected ${issue.expected}`
        : `expected ${issue.expected}, got ${describeValue(issue.input)}`;
    case 'invalid_value':
      return `expected one of ${issue.values.map((v) => JSON.stringify(v)).join(', ')}, got ${describeValue(issue.input)}`;
    case 'invalid_union':
      return issue.message && issue.message !== 'Invalid input' ? issue.message : 'does not match any allowed form';
    default:
      return issue.message;
  }
}

function describeValue(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a map';
  return `${typeof value} ${JSON.stringify(value)}`;
}

/** Keys the schema allows at `path`, for "did you mean" hints. */
function knownKeysAt(schema: z.ZodType, path: PropertyKey[], data: unknown): string[] {
  let current: unknown = schema;
  let value: unknown = data;
  for (const segment of path) {
    current = unwrap(current, value);
    const def = (current as { _zod?: { def?: Record<string, unknown> } })._zod?.def;
    if (!def) return [];
    if (def.type === 'object') current = (def.shape as Record<string, unknown>)[String(segment)];
    else if (def.type === 'array') current = def.element;
    else if (def.type === 'record') current = def.valueType;
    else return [];
    value = value && typeof value === 'object' ? (value as Record<PropertyKey, unknown>)[segment as string] : undefined;
  }
  current = unwrap(current, value);
  const def = (current as { _zod?: { def?: Record<string, unknown> } })._zod?.def;
  return def?.type === 'object' ? Object.keys(def.shape as Record<string, unknown>) : [];
}

function unwrap(schema: unknown, value: unknown): unknown {
  let current = schema;
  for (let i = 0; i < 20; i++) {
    const def = (current as { _zod?: { def?: Record<string, unknown> } })._zod?.def;
    if (!def) return current;
    if (
      def.type === 'optional' ||
      def.type === 'nullable' ||
      def.type === 'default' ||
      def.type === 'prefault' ||
      def.type === 'readonly' ||
      def.type === 'catch'
    ) {
      current = def.innerType;
    } else if (def.type === 'lazy') {
      current = (def.getter as () => unknown)();
    } else if (def.type === 'pipe') {
      current = def.in;
    } else if (def.type === 'union') {
      const options = def.options as unknown[];
      // Discriminated or plain union: pick the option whose shape fits the value best.
      const best = options
        .map((option) => ({ option, score: shapeScore(unwrap(option, value), value) }))
        .sort((a, b) => b.score - a.score)[0];
      current = best?.option;
    } else {
      return current;
    }
  }
  return current;
}

function shapeScore(schema: unknown, value: unknown): number {
  const def = (schema as { _zod?: { def?: Record<string, unknown> } })._zod?.def;
  if (def?.type !== 'object' || !value || typeof value !== 'object') return 0;
  const keys = Object.keys(def.shape as Record<string, unknown>);
  // A map always fits an object schema better than a scalar one, even before any key matches.
  return 0.5 + Object.keys(value).filter((key) => keys.includes(key)).length;
}

export function closest(word: string, candidates: string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of candidates) {
    const distance = levenshtein(word.toLowerCase(), candidate.toLowerCase());
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return best !== undefined && bestDistance <= Math.max(2, Math.floor(word.length / 3)) ? best : undefined;
}

/** Edit distance, for the "did you mean" hints of config and mapping checks. */
export function levenshtein(a: string, b: string): number {
  const previous = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let diagonal = previous[0] as number;
    previous[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const above = previous[j] as number;
      previous[j] = Math.min(above + 1, (previous[j - 1] as number) + 1, diagonal + (a[i - 1] === b[j - 1] ? 0 : 1));
      diagonal = above;
    }
  }
  return previous[b.length] as number;
}

const ENV_REFERENCE = /\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;

function interpolateEnv(
  doc: Document,
  env: NodeJS.ProcessEnv,
  report: (offset: number, key: string, message: string, hint?: string) => void,
): void {
  visit(doc, {
    Scalar(_key, node, path) {
      if (!isScalar(node) || typeof node.value !== 'string' || !node.value.includes('${')) return;
      const keyPath = path
        .map((ancestor) =>
          ancestor && typeof ancestor === 'object' && 'key' in ancestor && isScalar(ancestor.key)
            ? String(ancestor.key.value)
            : null,
        )
        .filter((k): k is string => k !== null)
        .join('.');
      node.value = node.value.replace(ENV_REFERENCE, (_match, name: string, fallback: string | undefined) => {
        const value = env[name];
        if (value !== undefined && value !== '') return value;
        if (fallback !== undefined) return fallback;
        report(
          node.range?.[0] ?? 0,
          keyPath,
          `environment variable ${name} is not set`,
          `export ${name}=... or write \${${name}:-default}`,
        );
        return '';
      });
    },
  });
}
