import type { Datapoint } from '../annotation/index.ts';
import type { OutputEncoding, UnencodablePolicy } from './encoding.ts';
import { warnAbout, type CompiledValue, type DocScope, type Location, type Scope } from './scope.ts';

/** One output value and where it came from (`render --explain`). */
export interface TraceEntry {
  output: string;
  value: string;
  from: string[];
  checked?: string[];
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
  /** Values the same on every row (a header field in each CSV record), ready to write. */
  private readonly preparedOnce = new Map<CompiledValue, { text: string; datapoint: Datapoint | undefined }>();
  constructor(
    readonly doc: DocScope,
    readonly settings: EmitSettings,
    explain: boolean,
    private readonly filter?: (text: string, scope: Scope) => string,
  ) {
    this.trace = explain ? [] : null;
  }

  value(compiled: CompiledValue, scope: Scope, at: Location): string | undefined {
    scope.at = at;
    scope.datapoint = undefined;
    if (!this.trace) {
      const once = compiled.perDocument ? this.preparedOnce.get(compiled) : undefined;
      if (once) {
        scope.datapoint = once.datapoint;
        return once.text;
      }
      const raw = compiled.evaluate(scope);
      if (raw === undefined) return undefined;
      const text = this.prepare(raw, scope);
      // Only text that went through unchanged: a changed one warned, and each place it goes counts.
      if (compiled.perDocument && text === raw) this.preparedOnce.set(compiled, { text, datapoint: scope.datapoint });
      return text;
    }
    this.doc.touched = [];
    this.doc.checked = [];
    const raw = compiled.evaluate(scope);
    const from = [...new Set(this.doc.touched)];
    const checked = [...new Set(this.doc.checked)].filter((read) => !from.includes(read));
    // Reads after this value (an element's `when`, the file name) must not be credited to it.
    this.doc.touched = [];
    this.doc.checked = [];
    if (raw === undefined) return undefined;
    const out = this.prepare(raw, scope);
    this.trace.push({ output: String(at), value: out, from, ...(checked.length > 0 ? { checked } : {}) });
    return out;
  }

  /** Text that did not come from a value (e.g. a computed count) still has to fit the encoding. */
  prepare(text: string, scope: Scope): string {
    return fitEncoding(this.settings, this.filter ? this.filter(text, scope) : text, scope);
  }
}

/** Text as the encoding can hold it: unchanged when it fits, else per the mapping's `unencodable` (with a warning). */
export function fitEncoding(settings: EmitSettings, text: string, scope: Scope): string {
  const { encoding, unencodable, replacement } = settings;
  if (encoding.fits(text)) return text;
  // Only an error names the spot; transliterated values (maybe one per row) need not build it.
  const what =
    unencodable !== 'error'
      ? ''
      : scope.datapoint
        ? `${scope.at} (from ${scope.datapoint.schemaId}, datapoint ${scope.datapoint.id})`
        : String(scope.at);
  return encoding.prepare(text, unencodable, replacement, what, scope.datapoint?.id, (detail) =>
    warnAbout(scope.doc, scope, detail),
  );
}

/** fitEncoding as a value step (before trimming), with the settings bound once. */
export function fitEncodingStep(settings: EmitSettings): (text: string, scope: Scope) => string {
  return (text, scope) => fitEncoding(settings, text, scope);
}
