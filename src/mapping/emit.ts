import type { OutputEncoding, UnencodablePolicy } from './encoding.ts';
import { addWarning, type CompiledValue, type DocScope, type Scope } from './scope.ts';

/** One output value and where it came from (`render --explain`). */
export interface TraceEntry {
  output: string;
  value: string;
  from: string[];
}

export interface EmitSettings {
  encoding: OutputEncoding;
  unencodable: UnencodablePolicy;
  replacement: string;
}

/**
 * Evaluates a value for one spot in the output and makes it writable: the format's own character rules
 * (`filter`) first, then the encoding's. Every renderer goes through here, so every value is checked once.
 */
export class Emitter {
  readonly trace: TraceEntry[] | null;
  constructor(
    readonly doc: DocScope,
    readonly settings: EmitSettings,
    explain: boolean,
    private readonly filter?: (text: string, scope: Scope) => string,
  ) {
    this.trace = explain ? [] : null;
  }

  value(compiled: CompiledValue, scope: Scope, at: string): string | undefined {
    scope.at = at;
    scope.datapoint = undefined;
    if (this.trace) this.doc.touched = [];
    const raw = compiled.evaluate(scope);
    if (raw === undefined) return undefined;
    const out = this.prepare(raw, scope);
    if (this.trace) this.trace.push({ output: at, value: out, from: this.doc.touched ?? [] });
    return out;
  }

  /** Text that did not come from a value (e.g. a computed count) still has to fit the encoding. */
  prepare(text: string, scope: Scope): string {
    const filtered = this.filter ? this.filter(text, scope) : text;
    const { encoding, unencodable, replacement } = this.settings;
    if (encoding.fits(filtered)) return filtered;
    const what = scope.datapoint
      ? `${scope.at} (from ${scope.datapoint.schemaId}, datapoint ${scope.datapoint.id})`
      : scope.at;
    return encoding.prepare(filtered, unencodable, replacement, what, scope.datapoint?.id, (message) =>
      addWarning(this.doc, message),
    );
  }
}
