import iconv from 'iconv-lite';
import { describeChar, mappingError } from './errors.ts';

export type UnencodablePolicy = 'error' | 'replace' | 'transliterate';

const UTF = /^utf-?(8|16|16le|16be|32|32le|32be)$/;
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
/** A cheap first look: text without any surrogate (nearly all) needs no look-around. */
const SURROGATE = /[\uD800-\uDFFF]/;
const ASCII = /^[\x00-\x7f]*$/;
const NON_ASCII = /[^\x00-\x7f]/g;

/** Names to write in an XML declaration: the IANA name of the bytes actually produced. */
const IANA: Record<string, string> = {
  utf8: 'UTF-8',
  utf16le: 'UTF-16',
  utf16be: 'UTF-16',
  utf16: 'UTF-16',
  windows1252: 'windows-1252',
  windows1250: 'windows-1250',
  windows1251: 'windows-1251',
  iso88591: 'ISO-8859-1',
  iso885915: 'ISO-8859-15',
  iso88592: 'ISO-8859-2',
  cp850: 'IBM850',
  cp437: 'IBM437',
  cp852: 'IBM852',
  latin1: 'ISO-8859-1',
  ascii: 'US-ASCII',
  usascii: 'US-ASCII',
};

/** Simple transliterations beyond "strip the accent" (NFKD handles Š→S, ť→t). */
export const TRANSLITERATIONS: Readonly<Record<string, string>> = {
  ß: 'ss',
  ẞ: 'SS',
  Æ: 'AE',
  æ: 'ae',
  Ø: 'O',
  ø: 'o',
  Œ: 'OE',
  œ: 'oe',
  Đ: 'D',
  đ: 'd',
  Ł: 'L',
  ł: 'l',
  Þ: 'Th',
  þ: 'th',
  '\u2018': "'",
  '\u2019': "'",
  '\u201A': "'",
  '\u201C': '"',
  '\u201D': '"',
  '\u201E': '"',
  '\u2013': '-',
  '\u2014': '-',
  '\u2026': '...',
  '\u00A0': ' ',
  '\u2022': '*',
  '€': 'EUR',
  '™': 'TM',
  '©': '(C)',
  '®': '(R)',
};

export function isKnownEncoding(name: string): boolean {
  return iconv.encodingExists(name);
}

export function canonicalEncoding(name: string): string {
  return iconv._canonicalizeEncoding(name);
}

/**
 * Knows what the output encoding can hold, how many bytes text takes in it, and turns text into bytes.
 * Checks character by character (cached) because iconv-lite silently writes `?` for what it cannot encode.
 */
export class OutputEncoding {
  readonly name: string;
  readonly isUtf: boolean;
  readonly declarationName: string;
  private readonly cache = new Map<number, boolean>();
  /** Per character: its substitute under `transliterate` (undefined = none) and its description for warnings. */
  private readonly substitutes = new Map<string, { substitute: string | undefined; described: string }>();
  private readonly asciiSafe: boolean;
  private readonly singleByte: boolean;
  /** Single-byte and every ASCII character is its own byte: ASCII text is copied, not looked up per character. */
  private readonly asciiIdentity: boolean;
  private readonly byteTable: Uint8Array | undefined;
  private readonly isUtf8: boolean;

  constructor(name: string) {
    this.name = name;
    const canonical = canonicalEncoding(name);
    this.isUtf = UTF.test(canonical) || canonical === 'ucs2' || canonical === 'cesu8';
    this.isUtf8 = canonical === 'utf8';
    this.declarationName = IANA[canonical] ?? name.toUpperCase();
    const probe = iconv.encode('Az09', name);
    this.asciiSafe = probe.length === 4 && probe.toString('latin1') === 'Az09';
    this.singleByte = this.asciiSafe && !this.isUtf && iconv.encode('\u00e9', name).length <= 1;
    const ascii = Buffer.from(Array.from({ length: 128 }, (_, i) => i));
    this.asciiIdentity = this.singleByte && iconv.encode(ascii.toString('latin1'), name).equals(ascii);
    // iconv-lite's single-byte codecs encode each UTF-16 unit through this table; other codecs have none.
    const table = (iconv.getCodec(name) as { encodeBuf?: unknown }).encodeBuf;
    this.byteTable = this.asciiIdentity && table instanceof Uint8Array && table.length === 0x10000 ? table : undefined;
  }

  canEncode(ch: string): boolean {
    const code = ch.codePointAt(0) ?? 0;
    if (code < 0x80 && this.asciiSafe) return true;
    if (code >= 0xd800 && code <= 0xdfff && ch.length === 1) return false;
    if (this.isUtf) return true;
    let ok = this.cache.get(code);
    if (ok === undefined) {
      ok = iconv.decode(iconv.encode(ch, this.name), this.name) === ch;
      this.cache.set(code, ok);
    }
    return ok;
  }

  /** True when every character of `text` is representable (fast path for ASCII/UTF). */
  fits(text: string): boolean {
    if (this.isUtf) return !SURROGATE.test(text) || !LONE_SURROGATE.test(text);
    if (this.asciiSafe && ASCII.test(text)) return true;
    for (const ch of text) if (!this.canEncode(ch)) return false;
    return true;
  }

  /** Bytes `text` takes in this encoding (text already known to fit). */
  byteLength(text: string): number {
    if (this.singleByte) return text.length;
    if (this.isUtf8) return Buffer.byteLength(text, 'utf8');
    return iconv.encode(text, this.name).length;
  }

  encode(text: string, bom: boolean): Buffer {
    // Node's own encoder writes the same bytes as iconv-lite's UTF-8 codec (lone surrogates too), several times faster.
    if (this.isUtf8) return Buffer.from(bom ? `\uFEFF${text}` : text, 'utf8');
    if (this.asciiIdentity && !bom) {
      // As many UTF-8 bytes as characters: all ASCII (a native count, cheaper than a regex over the whole file).
      if (Buffer.byteLength(text, 'utf8') === text.length) return Buffer.from(text, 'latin1');
      const table = this.byteTable;
      if (table) {
        // One byte per UTF-16 unit, as iconv-lite writes it: copy, then look up only the non-ASCII units.
        const bytes = Buffer.from(text, 'latin1');
        NON_ASCII.lastIndex = 0;
        for (let found = NON_ASCII.exec(text); found; found = NON_ASCII.exec(text))
          bytes[found.index] = table[text.charCodeAt(found.index)] as number;
        return bytes;
      }
    }
    return iconv.encode(text, this.name, { addBOM: bom });
  }

  /** Text encoded piece by piece gives the same bytes as encoded whole (no state carried between characters). */
  get piecewise(): boolean {
    return this.isUtf8 || this.asciiIdentity;
  }

  decode(bytes: Buffer): string {
    return iconv.decode(bytes, this.name);
  }

  /**
   * Makes `text` encodable per policy. `what` names the field for the error; `warn` gets what was replaced.
   * Returns the text to write.
   */
  prepare(
    text: string,
    policy: UnencodablePolicy,
    replacement: string,
    what: string,
    datapointId: number | undefined,
    warn: (message: string) => void,
  ): string {
    if (this.fits(text)) return text;
    let out = '';
    const replaced: string[] = [];
    // Character by character (a surrogate pair is one), copying the runs that fit in one piece.
    let run = 0;
    for (let i = 0; i < text.length; ) {
      const code = text.codePointAt(i) as number;
      const size = code > 0xffff ? 2 : 1;
      if (code < 0x80 && this.asciiSafe) {
        i += size;
        continue;
      }
      const ch = size === 1 ? (text[i] as string) : text.slice(i, i + 2);
      if (this.canEncode(ch)) {
        i += size;
        continue;
      }
      out += text.slice(run, i);
      i += size;
      run = i;
      if (policy === 'error') {
        throw mappingError(
          'MAPPING_UNENCODABLE',
          `${what}: the character ${describeChar(ch)} cannot be written in ${this.name}. Correct the value in Rossum, or set "unencodable: transliterate" or "replace" in the mapping.`,
          datapointId,
        );
      }
      let known = this.substitutes.get(ch);
      if (!known) {
        known = { substitute: this.transliterate(ch), described: describeChar(ch) };
        this.substitutes.set(ch, known);
      }
      const substitute = policy === 'transliterate' ? known.substitute : undefined;
      out += substitute ?? replacement;
      replaced.push(`${known.described} → "${substitute ?? replacement}"`);
    }
    out += text.slice(run);
    warn(`replaced characters ${this.name} cannot hold: ${replaced.join(', ')}`);
    return out;
  }

  private transliterate(ch: string): string | undefined {
    const direct = TRANSLITERATIONS[ch];
    if (direct !== undefined && this.fits(direct)) return direct;
    const stripped = ch.normalize('NFKD').replace(/\p{M}/gu, '');
    return stripped !== '' && stripped !== ch && this.fits(stripped) ? stripped : undefined;
  }
}

/**
 * A large output encoded while it is written: the renderer hands over its text at points it will never take
 * back, a few tens of kB at a time. The bytes are the same as for the whole text encoded at once, but the
 * text never lives on as a rope of thousands of small strings that the GC keeps copying and the encoder
 * must flatten (a sixth of a 2,000-line XML render).
 */
export class PiecewiseEncoder {
  /** Below this, text is not worth encoding on its own (the last piece is encoded whatever its size). Tests vary it. */
  static pieceCharacters = 32 * 1024;
  private readonly pieces: Buffer[] = [];
  private bom: boolean;

  constructor(
    private readonly encoding: OutputEncoding,
    bom: boolean,
  ) {
    this.bom = bom;
  }

  /** Encodes `text` when it is big enough (and the encoding is piecewise) and returns what is left to append to: '' or `text`. */
  settle(text: string): string {
    if (!this.encoding.piecewise || text.length < PiecewiseEncoder.pieceCharacters) return text;
    this.push(text);
    return '';
  }

  /** The whole output: what was settled, then `rest`. */
  finish(rest: string): Buffer {
    if (rest !== '' || this.pieces.length === 0) this.push(rest);
    return this.pieces.length === 1 ? (this.pieces[0] as Buffer) : Buffer.concat(this.pieces);
  }

  private push(text: string): void {
    this.pieces.push(this.encoding.encode(text, this.bom));
    this.bom = false;
  }
}
