import { describeChar, mappingError } from './errors.ts';
import type { EdifactSyntaxLevel } from './edifact-schema.ts';
import { TRANSLITERATIONS, type UnencodablePolicy } from './encoding.ts';

/**
 * UN/EDIFACT syntax rules (ISO 9735) that do not depend on a mapping: the service characters, release
 * escaping, the character repertoires of the syntax levels, and the serialization of segments and envelopes.
 */

export const SEPARATORS = { component: ':', element: '+', decimal: '.', release: '?', segment: "'" } as const;
export const UNA = `UNA${SEPARATORS.component}${SEPARATORS.element}${SEPARATORS.decimal}${SEPARATORS.release} ${SEPARATORS.segment}`;
const SERVICE_CHARS = /[+:'?]/g;
const HAS_SERVICE_CHAR = /[+:'?]/;

/** Puts the release character before every separator and before itself. */
export function escapeEdifact(text: string): string {
  return HAS_SERVICE_CHAR.test(text) ? text.replace(SERVICE_CHARS, '?$&') : text;
}

/** Level A: capital letters, digits, space and . , - ( ) / = ' + : ? ! " % & * ; < > (ISO 9735 annex). */
const ALL_LEVEL_A = /^[A-Z0-9 .,\-()/='+:?!"%&*;<>]*$/;
const ALL_LEVEL_B = /^[A-Za-z0-9 .,\-()/='+:?!"%&*;<>]*$/;
const ALL_LEVEL_C = /^[\u0020-\u007E\u00A0-\u00FF]*$/;

/** Characters outside each level, one code point at a time (an emoji is one match, not two halves). */
const OUTSIDE_LEVEL_A = /[^A-Z0-9 .,\-()/='+:?!"%&*;<>]/gu;
const OUTSIDE_LEVEL_B = /[^A-Za-z0-9 .,\-()/='+:?!"%&*;<>]/gu;
const OUTSIDE_LEVEL_C = /[^\u0020-\u007E\u00A0-\u00FF]/gu;

const LEVELS: Record<EdifactSyntaxLevel, { outside: RegExp; all: RegExp; described: string }> = {
  UNOA: {
    outside: OUTSIDE_LEVEL_A,
    all: ALL_LEVEL_A,
    described: 'capital letters, digits, space and . , - ( ) / = \' + : ? ! " % & * ; < >',
  },
  UNOB: {
    outside: OUTSIDE_LEVEL_B,
    all: ALL_LEVEL_B,
    described: 'letters, digits, space and . , - ( ) / = \' + : ? ! " % & * ; < >',
  },
  UNOC: { outside: OUTSIDE_LEVEL_C, all: ALL_LEVEL_C, described: 'ISO 8859-1 without control characters' },
};

/** Substitutes tried in order under `transliterate`; the first one the level holds wins. */
const SUBSTITUTES: Record<string, string> = {
  ...TRANSLITERATIONS,
  // Both letters upper case, as this list always had it (level A text is upper case).
  Þ: 'TH',
  // Line breaks and tabs are not allowed in any level's data elements.
  '\t': ' ',
  '\n': ' ',
  '\r': ' ',
  // Beyond the shared list: characters level A lacks.
  '@': '(AT)',
  '#': 'NO.',
  $: 'USD',
  _: '-',
  '[': '(',
  ']': ')',
  '{': '(',
  '}': ')',
  '\\': '/',
  '|': '/',
  '~': '-',
  '`': "'",
  '^': '',
  '²': '2',
  '³': '3',
  '°': 'DEG',
};

export function fitsLevel(level: EdifactSyntaxLevel, text: string): boolean {
  return LEVELS[level].all.test(text);
}

/** Per level and character: its substitute under `transliterate` (undefined = none) and its description. */
const SUBSTITUTE_CACHE: Record<
  EdifactSyntaxLevel,
  Map<string, { substitute: string | undefined; described: string }>
> = { UNOA: new Map(), UNOB: new Map(), UNOC: new Map() };

function known(level: EdifactSyntaxLevel, ch: string): { substitute: string | undefined; described: string } {
  let entry = SUBSTITUTE_CACHE[level].get(ch);
  if (!entry) {
    entry = { substitute: substitute(level, ch), described: describeChar(ch) };
    SUBSTITUTE_CACHE[level].set(ch, entry);
  }
  return entry;
}

function substitute(level: EdifactSyntaxLevel, ch: string): string | undefined {
  const fits = (candidate: string): boolean => LEVELS[level].all.test(candidate);
  const candidates: string[] = [];
  const direct = SUBSTITUTES[ch];
  if (direct !== undefined) candidates.push(direct);
  const stripped = ch.normalize('NFKD').replace(/\p{M}/gu, '');
  if (stripped !== ch) candidates.push(stripped);
  for (const candidate of candidates) {
    if (fits(candidate)) return candidate;
    if (fits(candidate.toUpperCase())) return candidate.toUpperCase();
  }
  if (fits(ch.toUpperCase())) return ch.toUpperCase();
  return undefined;
}

/**
 * Makes `text` fit the syntax level per the mapping's `unencodable` policy. `what` names the output spot
 * and the datapoint for the error (asked only then); `warn` gets what was replaced.
 */
export function fitToLevel(
  text: string,
  level: EdifactSyntaxLevel,
  policy: UnencodablePolicy,
  replacement: string,
  what: () => string,
  datapointId: number | undefined,
  warn: (detail: string) => void,
): string {
  const rules = LEVELS[level];
  if (rules.all.test(text)) return text;
  const replaced: string[] = [];
  const out = text.replace(rules.outside, (ch) => {
    if (policy === 'error') {
      throw mappingError(
        'MAPPING_UNENCODABLE',
        `${what()}: the character ${describeChar(ch)} is not allowed in EDIFACT syntax level ${level} (${rules.described}). Correct the value in Rossum, or set "unencodable: transliterate" or "replace" in the mapping.`,
        datapointId,
      );
    }
    const { substitute: candidate, described } = known(level, ch);
    const instead = policy === 'transliterate' ? candidate : undefined;
    replaced.push(`${described} → "${instead ?? replacement}"`);
    return instead ?? replacement;
  });
  warn(`replaced characters EDIFACT syntax level ${level} cannot hold: ${replaced.join(', ')}`);
  return out;
}

/** A segment as plain values: elements of components, nothing escaped yet. */
export interface Segment {
  tag: string;
  elements: string[][];
}

/**
 * Writes one segment value by value: escapes each, and leaves out trailing empty components and elements
 * (an empty one is held back until a non-empty one follows).
 */
export class SegmentWriter {
  private out = '';
  private element = '';
  private pendingElements = '';
  private pendingComponents = '';
  private components = 0;

  start(tag: string): void {
    this.out = tag;
    this.pendingElements = '';
    this.element = '';
    this.components = -1;
  }

  /** Begins the next element (the first included). */
  nextElement(): void {
    this.closeElement();
    this.pendingElements += SEPARATORS.element;
    this.element = '';
    this.pendingComponents = '';
    this.components = 0;
  }

  component(value: string): void {
    if (this.components++ > 0) this.pendingComponents += SEPARATORS.component;
    if (value === '') return;
    this.element += this.pendingComponents + escapeEdifact(value);
    this.pendingComponents = '';
  }

  finish(): string {
    this.closeElement();
    return this.out + SEPARATORS.segment;
  }

  private closeElement(): void {
    if (this.element === '') return;
    this.out += this.pendingElements + this.element;
    this.pendingElements = '';
    this.element = '';
  }
}

/** Writes one segment given as plain values: escapes every value, and leaves out trailing empty components and elements. */
export function writeSegment(segment: Segment): string {
  const writer = new SegmentWriter();
  writer.start(segment.tag);
  for (const components of segment.elements) {
    writer.nextElement();
    for (const value of components) writer.component(value);
  }
  return writer.finish();
}

export interface Message {
  reference: string;
  /** S009: type, version, release, agency[, association]. */
  identifier: string[];
  /** The body between UNH and UNT. */
  segments: Segment[];
  /** What UNT counts when the body is written apart (`messageEnvelope`); default `segments.length`. */
  segmentCount?: number;
}

export interface Interchange {
  una: boolean;
  /** UNB elements after the syntax identifier is known: syntax, sender, recipient, date/time. */
  syntax: [EdifactSyntaxLevel, string];
  sender: string[];
  recipient: string[];
  prepared: [string, string];
  reference: string;
  applicationReference?: string | undefined;
  testIndicator?: boolean | undefined;
  messages: Message[];
}

/** The segments of an interchange, envelopes included; UNT counts its message's segments, UNZ the messages. */
export function interchangeSegments(interchange: Interchange): Segment[] {
  const unb: string[][] = [
    [...interchange.syntax],
    interchange.sender,
    interchange.recipient,
    [...interchange.prepared],
    [interchange.reference],
  ];
  if (interchange.applicationReference !== undefined || interchange.testIndicator)
    unb.push([], [interchange.applicationReference ?? '']);
  if (interchange.testIndicator) unb.push([], [], [], ['1']);
  const out: Segment[] = [{ tag: 'UNB', elements: unb }];
  for (const message of interchange.messages) {
    out.push({ tag: 'UNH', elements: [[message.reference], message.identifier] });
    out.push(...message.segments);
    const count = (message.segmentCount ?? message.segments.length) + 2;
    out.push({ tag: 'UNT', elements: [[String(count)], [message.reference]] });
  }
  out.push({ tag: 'UNZ', elements: [[String(interchange.messages.length)], [interchange.reference]] });
  return out;
}

/**
 * One message's envelope as text, for a body written in between: `head` is UNA (when asked), UNB and UNH; `tail` is
 * UNT and UNZ. `head + newline + body + newline + tail` (the body's segments joined by `newline`) is what
 * `writeInterchange` writes for the same message.
 */
export function messageEnvelope(
  interchange: Omit<Interchange, 'messages'>,
  message: Omit<Message, 'segments'> & { segmentCount: number },
  newline = '',
): { head: string; tail: string } {
  const [unb, unh, unt, unz] = interchangeSegments({ ...interchange, messages: [{ ...message, segments: [] }] }).map(
    writeSegment,
  );
  return {
    head: `${interchange.una ? UNA + newline : ''}${unb}${newline}${unh}`,
    tail: `${unt}${newline}${unz}`,
  };
}

/** The interchange as text; `newline` goes between segments (and after UNA), not after the last. */
export function writeInterchange(interchange: Interchange, newline = ''): string {
  const parts = interchangeSegments(interchange).map(writeSegment);
  return (interchange.una ? [UNA, ...parts] : parts).join(newline);
}
