import type { AckLookup } from '../ledger/index.ts';

/** A file name pattern: `*` / `?` wildcards, `{stem}` / `{name}` capturing the exported file's stem or name. */
export interface NamePattern {
  readonly source: string;
  /** null when the name does not match; else the export it names, when the pattern captures one. */
  match(fileName: string): { reference: Pick<AckLookup, 'by' | 'value'> | null } | null;
}

export function compilePattern(pattern: string): NamePattern {
  let regex = '^';
  let capture: 'stem' | 'name' | null = null;
  for (let i = 0; i < pattern.length; i++) {
    const rest = pattern.slice(i);
    const placeholder = /^\{(stem|name)\}/.exec(rest);
    if (placeholder) {
      capture = placeholder[1] as 'stem' | 'name';
      regex += '(?<ref>.+?)';
      i += placeholder[0].length - 1;
      continue;
    }
    const char = pattern[i] as string;
    if (char === '*') regex += '[^/]*';
    else if (char === '?') regex += '[^/]';
    else regex += char.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  const compiled = new RegExp(`${regex}$`);
  return {
    source: pattern,
    match(fileName) {
      const found = compiled.exec(fileName);
      if (!found) return null;
      const value = found.groups?.ref;
      return { reference: capture && value ? { by: capture, value } : null };
    },
  };
}

/** Plain `*` / `?` patterns for names to leave alone. */
export function compileIgnore(patterns: readonly string[]): (fileName: string) => boolean {
  const compiled = patterns.map(compilePattern);
  return (fileName) => compiled.some((pattern) => pattern.match(fileName) !== null);
}
