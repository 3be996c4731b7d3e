import { parse as parseCsv } from 'csv-parse/sync';
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import iconv from 'iconv-lite';
import { BridgeError } from '../errors.ts';
import type { AckLookup, AckMessage } from '../ledger/index.ts';
import { cleanText } from '../rossum/index.ts';
import type { AckLimits, CompanionAckConfig, CsvAckConfig, MappingAckConfig, XmlAckConfig } from './config.ts';
import { compilePattern, type NamePattern } from './pattern.ts';

export type AckReference = Pick<AckLookup, 'by' | 'value'>;

/** One export's verdict as read from an ack file. */
export interface ParsedAckEntry {
  /** Position in the file (0 for single acks, the data row for CSV). */
  index: number;
  reference: AckReference;
  verdict: 'accepted' | 'rejected' | 'invalid';
  messages: AckMessage[];
  erpReference: string | null;
}

/** An ack file we cannot read; `reference` is the export its name points at, when it does. */
export class AckParseError extends BridgeError {
  readonly reference: AckReference | null;
  constructor(message: string, reference: AckReference | null) {
    super('ACK_INVALID', message, { permanent: true });
    this.reference = reference;
  }
}

export interface AckConvention {
  readonly kind: 'companion' | 'xml' | 'csv';
  /** The encoding it reads files in (the console shows their content in it). */
  readonly encoding: string;
  /** Whether this convention reads a file of that name. */
  claims(fileName: string): boolean;
  /** Whether `parse` looks at the file's content; when not, the file is not read at all. */
  readsBody(fileName: string): boolean;
  /** The export a file's name alone points at (`{stem}` / `{name}` patterns), for files not read at all. */
  nameReference(fileName: string): AckReference | null;
  /** Throws AckParseError when the file cannot be read. */
  parse(fileName: string, bytes: Buffer): ParsedAckEntry[];
}

const DEFAULT_LIMITS: Omit<AckLimits, 'maxFileBytes'> = { maxMessages: 50, maxMessageChars: 1_000 };

export function createConvention(
  config: MappingAckConfig,
  limits: Omit<AckLimits, 'maxFileBytes'> = DEFAULT_LIMITS,
): AckConvention {
  switch (config.convention) {
    case 'companion':
      return new BoundedConvention(new CompanionConvention(config.companion), limits);
    case 'xml':
      return new BoundedConvention(new XmlConvention(config.xml), limits);
    case 'csv':
      return new BoundedConvention(new CsvConvention(config.csv), limits);
  }
}

/**
 * Every failure of a parser becomes an AckParseError (permanent: the file goes to invalid/ once instead
 * of being retried every pass), and what a file may make us keep is bounded: messages per export and
 * characters per message.
 */
class BoundedConvention implements AckConvention {
  readonly kind: AckConvention['kind'];
  readonly encoding: string;

  constructor(
    private readonly inner: AckConvention,
    private readonly limits: Omit<AckLimits, 'maxFileBytes'>,
  ) {
    this.kind = inner.kind;
    this.encoding = inner.encoding;
  }

  claims(fileName: string): boolean {
    return this.inner.claims(fileName);
  }

  readsBody(fileName: string): boolean {
    return this.inner.readsBody(fileName);
  }

  nameReference(fileName: string): AckReference | null {
    return this.inner.nameReference(fileName);
  }

  parse(fileName: string, bytes: Buffer): ParsedAckEntry[] {
    let entries: ParsedAckEntry[];
    try {
      entries = this.inner.parse(fileName, bytes);
    } catch (error) {
      if (error instanceof AckParseError) throw error;
      throw new AckParseError(
        `${fileName}: not readable as a ${this.kind} ack: ${error instanceof Error ? error.message : String(error)}`,
        null,
      );
    }
    return entries.map((entry) => ({ ...entry, messages: boundMessages(entry.messages, this.limits) }));
  }
}

function boundMessages(messages: readonly AckMessage[], limits: Omit<AckLimits, 'maxFileBytes'>): AckMessage[] {
  const cut = (text: string): string => {
    const points = Array.from(text);
    return points.length <= limits.maxMessageChars ? text : `${points.slice(0, limits.maxMessageChars - 1).join('')}…`;
  };
  // Cleaned here, before the ledger: every reader of the messages (notes, held-export replies, `status`) gets safe text.
  const kept = messages.slice(0, limits.maxMessages).map((message) => ({
    ...message,
    text: cut(cleanText(message.text)),
    ...(message.code === undefined ? {} : { code: cut(cleanText(message.code)) }),
  }));
  if (messages.length > limits.maxMessages)
    kept.push({ text: `… and ${messages.length - limits.maxMessages} more message(s) in the ack file` });
  return kept;
}

/** NUL bytes, or C0 controls other than tab/CR/LF in more than a few percent of the text: not a text answer. */
function looksBinary(bytes: Buffer, text: string): boolean {
  if (bytes.includes(0)) return true;
  let controls = 0;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if ((code < 0x20 && code !== 0x09 && code !== 0x0a && code !== 0x0d) || code === 0xfffd) controls++;
  }
  return controls > Math.max(4, text.length * 0.05);
}

function decode(bytes: Buffer, encoding: string, fileName: string, reference: AckReference | null): string {
  if (!iconv.encodingExists(encoding))
    throw new AckParseError(`${fileName}: unknown encoding "${encoding}" configured`, reference);
  // A BOM is the writer's statement of the encoding; iconv strips it for UTF encodings.
  return iconv.decode(bytes, encoding);
}

function verdictOf(
  status: string,
  accepted: readonly string[],
  rejected: readonly string[],
): 'accepted' | 'rejected' | null {
  const normalized = status.trim().toUpperCase();
  if (accepted.some((word) => word.toUpperCase() === normalized)) return 'accepted';
  if (rejected.some((word) => word.toUpperCase() === normalized)) return 'rejected';
  return null;
}

class CompanionConvention implements AckConvention {
  readonly kind = 'companion' as const;
  readonly encoding: string;
  private readonly ok: NamePattern;
  private readonly err: NamePattern;
  private readonly codePattern: RegExp;

  constructor(private readonly config: CompanionAckConfig) {
    this.encoding = config.encoding;
    this.ok = compilePattern(config.ok);
    this.err = compilePattern(config.err);
    this.codePattern = new RegExp(config.codePattern);
  }

  claims(fileName: string): boolean {
    return this.ok.match(fileName) !== null || this.err.match(fileName) !== null;
  }

  readsBody(fileName: string): boolean {
    // The name of an `.ok` file is the whole answer; whatever an ERP writes into it says nothing more.
    return this.ok.match(fileName) === null;
  }

  nameReference(fileName: string): AckReference | null {
    return (this.ok.match(fileName) ?? this.err.match(fileName))?.reference ?? null;
  }

  parse(fileName: string, bytes: Buffer): ParsedAckEntry[] {
    const ok = this.ok.match(fileName);
    const err = ok ? null : this.err.match(fileName);
    const reference = (ok ?? err)?.reference ?? null;
    if (!reference)
      throw new AckParseError(
        `${fileName}: the companion pattern has no {stem} or {name}, so the file names no export`,
        null,
      );
    if (ok) return [{ index: 0, reference, verdict: 'accepted', messages: [], erpReference: null }];
    const text = decode(bytes, this.config.encoding, fileName, reference);
    if (looksBinary(bytes, text))
      throw new AckParseError(`${fileName}: the error file holds binary data, not the ERP's message text`, reference);
    const messages = text
      .split(/\r\n|\r|\n/)
      .map((line) => line.trim())
      .filter(Boolean)
      .map((line): AckMessage => {
        const parts = this.codePattern.exec(line);
        const code = parts?.groups?.code;
        return code ? { code, text: (parts?.groups?.text ?? '').trim() || line } : { text: line };
      });
    if (messages.length === 0)
      messages.push({ text: 'The ERP rejected the file without giving a reason (empty error file)' });
    return [{ index: 0, reference, verdict: 'rejected', messages, erpReference: null }];
  }
}

type XmlNode = string | number | boolean | { [key: string]: XmlNode | XmlNode[] } | XmlNode[];

/**
 * A convention whose files carry their own verdicts: claimed by name pattern, read whole, decoded
 * with the configured encoding; subclasses parse the text.
 */
abstract class WholeFileConvention implements AckConvention {
  abstract readonly kind: AckConvention['kind'];
  private readonly files: NamePattern;
  readonly encoding: string;

  constructor(private readonly wholeFile: { files: string; encoding: string }) {
    this.files = compilePattern(wholeFile.files);
    this.encoding = wholeFile.encoding;
  }

  claims(fileName: string): boolean {
    return this.files.match(fileName) !== null;
  }

  readsBody(): boolean {
    return true;
  }

  nameReference(fileName: string): AckReference | null {
    return this.files.match(fileName)?.reference ?? null;
  }

  parse(fileName: string, bytes: Buffer): ParsedAckEntry[] {
    const fromName = this.files.match(fileName)?.reference ?? null;
    const text = decode(bytes, this.wholeFile.encoding, fileName, fromName);
    if (looksBinary(bytes, text)) throw new AckParseError(`${fileName}: binary data, not a ${this.kind} ack`, fromName);
    try {
      return this.parseText(fileName, text, fromName);
    } catch (error) {
      if (error instanceof AckParseError) throw error;
      throw new AckParseError(
        `${fileName}: not readable as a ${this.kind} ack: ${error instanceof Error ? error.message : String(error)}`,
        fromName,
      );
    }
  }

  /** `fromName`: what the file's name says it answers (used when the content names nothing). */
  protected abstract parseText(fileName: string, text: string, fromName: AckReference | null): ParsedAckEntry[];
}

class XmlConvention extends WholeFileConvention {
  readonly kind = 'xml' as const;
  private readonly parser = new XMLParser({
    ignoreAttributes: false,
    attributeNamePrefix: '@',
    removeNSPrefix: true,
    parseTagValue: false,
    parseAttributeValue: false,
    trimValues: true,
    processEntities: true,
  });

  constructor(private readonly config: XmlAckConfig) {
    super(config);
  }

  protected parseText(fileName: string, text: string, fromName: AckReference | null): ParsedAckEntry[] {
    // Acks never need a DTD; refusing it outright stops external entities (XXE) and entity expansion (billion laughs).
    const doctype = /<!DOCTYPE/i.exec(text);
    if (doctype)
      throw new AckParseError(
        `${fileName}:${lineOf(text, doctype.index)}: DOCTYPE (entity declarations) not accepted in an ack`,
        fromName,
      );
    const valid = XMLValidator.validate(text);
    if (valid !== true)
      throw new AckParseError(
        `${fileName}:${valid.err.line}:${valid.err.col}: not well-formed XML: ${valid.err.msg}`,
        fromName,
      );
    const document = this.parser.parse(text) as XmlNode;
    const { paths } = this.config;
    const reference = textOf(select(document, paths.reference)[0]);
    const named = reference ? { by: this.config.match, value: reference } : fromName;
    if (!reference) throw new AckParseError(`${fileName}: no ${paths.reference} element naming the export`, fromName);
    const status = textOf(select(document, paths.status)[0]);
    if (!status) throw new AckParseError(`${fileName}: no ${paths.status} element`, named);
    const verdict = verdictOf(status, this.config.accepted, this.config.rejected);
    if (!verdict) {
      throw new AckParseError(
        `${fileName}: unknown status "${status}" (accepted: ${this.config.accepted.join(', ')}; rejected: ${this.config.rejected.join(', ')})`,
        named,
      );
    }
    const messages = select(document, paths.messages).map((node): AckMessage => {
      const code = textOf(select(node, paths.messageCode)[0]);
      const message = textOf(node) ?? '';
      return code ? { code, text: message } : { text: message };
    });
    const erpReference = paths.erpReference ? (textOf(select(document, paths.erpReference)[0]) ?? null) : null;
    return [{ index: 0, reference: named as AckReference, verdict, messages, erpReference }];
  }
}

function lineOf(text: string, index: number): number {
  let line = 1;
  for (let i = text.indexOf('\n'); i !== -1 && i < index; i = text.indexOf('\n', i + 1)) line++;
  return line;
}

/** Follows `A/B/@attr` through the parsed tree; repeated elements fan out. */
function select(node: XmlNode | undefined, path: string): XmlNode[] {
  let current: XmlNode[] = node === undefined ? [] : [node];
  for (const segment of path.split('/').filter(Boolean)) {
    const next: XmlNode[] = [];
    for (const item of current) {
      if (typeof item !== 'object' || item === null || Array.isArray(item)) continue;
      const child = item[segment];
      if (child === undefined) continue;
      if (Array.isArray(child)) next.push(...child);
      else next.push(child);
    }
    current = next;
  }
  return current;
}

function textOf(node: XmlNode | undefined): string | undefined {
  if (node === undefined) return undefined;
  if (typeof node !== 'object') return String(node).trim() || undefined;
  if (Array.isArray(node)) return textOf(node[0]);
  const text = node['#text'];
  return text === undefined ? undefined : textOf(text as XmlNode);
}

class CsvConvention extends WholeFileConvention {
  readonly kind = 'csv' as const;
  private readonly erpReferencePattern: RegExp | null;

  constructor(private readonly config: CsvAckConfig) {
    super(config);
    this.erpReferencePattern = config.erpReferencePattern ? new RegExp(config.erpReferencePattern) : null;
  }

  protected parseText(fileName: string, text: string, fromName: AckReference | null): ParsedAckEntry[] {
    let rows: string[][];
    try {
      rows = parseCsv(text, {
        delimiter: this.config.delimiter,
        bom: true,
        skip_empty_lines: true,
        relax_quotes: true,
        trim: true,
      }) as string[][];
    } catch (error) {
      throw new AckParseError(
        `${fileName}: not readable as CSV with delimiter "${this.config.delimiter}": ${(error as Error).message}`,
        fromName,
      );
    }
    const [header, ...data] = rows;
    if (!header) throw new AckParseError(`${fileName}: empty file (no header line)`, fromName);
    const { columns } = this.config;
    const column = (name: string | undefined, required: boolean): number => {
      if (name === undefined) return -1;
      const index = header.findIndex((cell) => cell.toLowerCase() === name.toLowerCase());
      if (index < 0 && required)
        throw new AckParseError(
          `${fileName}: no "${name}" column in the header (${header.join(this.config.delimiter)})`,
          fromName,
        );
      return index;
    };
    const referenceAt = column(columns.reference, true);
    const statusAt = column(columns.status, true);
    const codeAt = column(columns.code, false);
    const messageAt = column(columns.message, false);
    const erpAt = column(columns.erpReference, false);
    return data.map((row, index): ParsedAckEntry => {
      const reference = { by: this.config.match, value: row[referenceAt] ?? '' };
      const status = row[statusAt] ?? '';
      const code = codeAt >= 0 ? row[codeAt] : undefined;
      const text = messageAt >= 0 ? (row[messageAt] ?? '') : '';
      const verdict = verdictOf(status, this.config.accepted, this.config.rejected);
      const messages: AckMessage[] = text || code ? [{ ...(code ? { code } : {}), text }] : [];
      if (!verdict || reference.value === '') {
        const problem = reference.value === '' ? `no ${columns.reference}` : `unknown status "${status}"`;
        return {
          index,
          reference,
          verdict: 'invalid',
          messages: [{ text: `${fileName} line ${index + 2}: ${problem}` }],
          erpReference: null,
        };
      }
      let erpReference = erpAt >= 0 ? row[erpAt] || null : null;
      if (erpReference === null && verdict === 'accepted' && this.erpReferencePattern)
        erpReference = this.erpReferencePattern.exec(text)?.[1] ?? null;
      return { index, reference, verdict, messages, erpReference };
    });
  }
}
