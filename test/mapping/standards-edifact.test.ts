import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Decimal } from 'decimal.js';
import fc from 'fast-check';
import iconv from 'iconv-lite';
import { describe, expect, it } from 'vitest';
import { parseDocument } from 'yaml';
import { BridgeError } from '../../src/errors.ts';
import { checkMappingFile } from '../../src/mapping/index.ts';
import {
  escapeEdifact,
  messageEnvelope,
  writeInterchange,
  writeSegment,
  type Message,
  type Segment,
} from '../../src/mapping/edifact-syntax.ts';
import { bigInvoice } from '../support/big-invoice.ts';
import { annotation, fixture, mappingFrom } from './helpers.ts';

/** The independent parser: the `edifact` npm package (validates characters per UNB syntax level, element formats and lengths). */
interface ParsedSegment {
  name: string;
  elements: string[][];
}
const { Reader } = createRequire(import.meta.url)('edifact') as {
  Reader: new (config?: { autoDetectEncoding?: boolean }) => { parse(document: string): ParsedSegment[] };
};
const parseEdifact = (text: string): ParsedSegment[] => new Reader().parse(text);

const ROOT = join(import.meta.dirname, '..', '..');
const MAPPING = join(ROOT, 'mappings', 'edifact-invoic-d96a.yaml');
const EXPECTED = join(ROOT, 'mappings', 'expected', 'edifact-invoic-d96a');
const ROUTE = { edi_sender_gln: '4012345000009', edi_recipient_gln: '8712345000004' };
const NOW = new Date('2024-02-02T10:15:30Z');

/** The shipped mapping with changes, written to a temporary folder (its stored tests left out). */
function variant(change: (doc: ReturnType<typeof parseDocument>) => void) {
  const doc = parseDocument(readFileSync(MAPPING, 'utf8'));
  doc.delete('tests');
  change(doc);
  return mappingFrom(String(doc), 'edifact-variant');
}
const shipped = variant(() => {});

const value = (segment: ParsedSegment | undefined, element: number, component = 0): string | undefined =>
  segment?.elements[element]?.[component];

/** Envelope rules checked on the parsed segments: references match, UNT counts its message, UNZ counts messages. */
function checkEnvelope(segments: ParsedSegment[]): ParsedSegment[][] {
  expect(segments[0]?.name).toBe('UNB');
  expect(segments.at(-1)?.name).toBe('UNZ');
  const messages: ParsedSegment[][] = [];
  let open: ParsedSegment[] | undefined;
  for (const segment of segments.slice(1, -1)) {
    if (segment.name === 'UNH') open = [segment];
    else open?.push(segment);
    if (segment.name === 'UNT') {
      expect(open, 'UNT without UNH').toBeDefined();
      const message = open as ParsedSegment[];
      expect(Number(value(segment, 0))).toBe(message.length);
      expect(value(segment, 1)).toBe(value(message[0], 0));
      messages.push(message);
      open = undefined;
    }
  }
  expect(open, 'a message without UNT').toBeUndefined();
  const unz = segments.at(-1);
  expect(Number(value(unz, 0))).toBe(messages.length);
  expect(value(unz, 1)).toBe(value(segments[0], 4));
  return messages;
}

/** INVOIC D.96A body as the shipped mapping writes it, checked segment by segment. */
function checkInvoic(message: ParsedSegment[], lineCount: number): void {
  const names = message.map((s) => s.name);
  expect(value(message[0], 1, 0)).toBe('INVOIC');
  expect(message[0]?.elements[1]).toEqual(['INVOIC', 'D', '96A', 'UN', 'EAN008']);
  expect(names[1]).toBe('BGM');
  expect(names[2]).toBe('DTM');
  expect(names.filter((n) => n === 'NAD')).toHaveLength(2);
  expect(names.filter((n) => n === 'CUX')).toHaveLength(1);
  expect(names.filter((n) => n === 'LIN')).toHaveLength(lineCount);
  const uns = names.indexOf('UNS');
  expect(uns).toBeGreaterThan(names.lastIndexOf('LIN'));
  expect(names.indexOf('CUX')).toBeLessThan(names.indexOf('LIN') < 0 ? uns : names.indexOf('LIN'));
  // Every LIN opens its group: QTY, MOA 203 and PRI follow before the next LIN.
  const lines = message.map((s, i) => (s.name === 'LIN' ? i : -1)).filter((i) => i >= 0);
  for (const [k, start] of lines.entries()) {
    const group = message.slice(start, lines[k + 1] ?? uns).map((s) => s.name);
    expect(value(message[start], 0)).toBe(String(k + 1));
    expect(group).toContain('QTY');
    expect(group).toContain('MOA');
  }
  const lineAmounts = message
    .filter((s, i) => s.name === 'MOA' && i < uns && value(s, 0, 0) === '203')
    .map((s) => new Decimal(value(s, 0, 1) ?? 'NaN'));
  const total79 = message.find((s, i) => s.name === 'MOA' && i > uns && value(s, 0, 0) === '79');
  expect(
    lineAmounts.reduce((a, b) => a.plus(b), new Decimal(0)).equals(new Decimal(value(total79, 0, 1) ?? 'NaN')),
  ).toBe(true);
  expect(message.some((s, i) => s.name === 'MOA' && i > uns && value(s, 0, 0) === '77')).toBe(true);
}

describe('edifact-invoic-d96a: stored outputs and renders read back by an independent EDIFACT parser', () => {
  it('every stored expected file parses, with a correct envelope and INVOIC structure', () => {
    const files = readdirSync(EXPECTED);
    expect(files.sort()).toEqual(['invoice.edi', 'no-line-items.edi', 'tricky-characters.edi']);
    const lineCounts: Record<string, number> = { 'invoice.edi': 3, 'no-line-items.edi': 0, 'tricky-characters.edi': 4 };
    for (const file of files) {
      const text = readFileSync(join(EXPECTED, file)).toString('latin1');
      expect(text.startsWith("UNA:+.? '")).toBe(true);
      const segments = parseEdifact(text);
      expect(segments[0]?.elements[0]).toEqual(['UNOA', '3']);
      const messages = checkEnvelope(segments);
      expect(messages).toHaveLength(1);
      checkInvoic(messages[0] as ParsedSegment[], lineCounts[file] as number);
    }
  });

  it("values with + : ' ? are released and read back unchanged", () => {
    const file = shipped.render(fixture('export-tricky-characters'), { now: NOW, route: ROUTE });
    expect(file.mediaType).toBe('application/EDIFACT');
    const segments = parseEdifact(file.bytes.toString('latin1'));
    const nads = segments.filter((s) => s.name === 'NAD');
    expect(value(nads[0], 3)).toBe('STASTNY "QUOTE" & <TAG> ; \'SEMI\', L');
    const lins = segments.filter((s) => s.name === 'LIN');
    expect(lins.map((s) => value(s, 2))).toEqual(['=SUM(A1:A9)', 'C;1', '<X/>', 'NBSP']);
    expect(
      value(
        segments.find((s) => s.name === 'BGM'),
        1,
      ),
    ).toBe('R&D/2024<01>');
    expect(
      file.warnings?.some(
        (w) => w.includes('segment 5 NAD element 4 (from sender_name') && w.includes('"Š" (U+0160) → "S"'),
      ),
    ).toBe(true);
  });

  it('UNOA with unencodable: error refuses a character outside the level, naming the output spot, datapoint and level', () => {
    const strict = variant((doc) => doc.set('unencodable', 'error'));
    let error: unknown;
    try {
      strict.render(fixture('export-invoice'), { now: NOW, route: ROUTE });
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(BridgeError);
    const bridgeError = error as BridgeError;
    expect(bridgeError.code).toBe('MAPPING_UNENCODABLE');
    expect(bridgeError.message).toContain('segment 5 NAD element 3.2 (from sender_address, datapoint');
    expect(bridgeError.message).toContain('"Ü" (U+00DC) is not allowed in EDIFACT syntax level UNOA');
    expect(bridgeError.location.datapointId).toBeTypeOf('number');
  });

  it('UNOC writes ISO 8859-1 (Ü and Ý stay, Š and Ť are transliterated) and the parser reads it at level UNOC', () => {
    const unoc = variant((doc) => {
      doc.setIn(['edifact', 'syntax'], 'UNOC');
      doc.set('encoding', 'iso-8859-1');
    });
    const file = unoc.render(fixture('export-tricky-characters'), { now: NOW, route: ROUTE });
    const text = iconv.decode(file.bytes, 'iso-8859-1');
    const segments = parseEdifact(text);
    expect(segments[0]?.elements[0]).toEqual(['UNOC', '3']);
    checkEnvelope(segments);
    const nads = segments.filter((s) => s.name === 'NAD');
    expect(nads[0]?.elements[2]).toEqual(['HAUPTSTRASSE 5', '80331 MÜNCHEN']);
    expect(value(nads[0], 3)).toBe('STASTNÝ "QUOTE" & <TAG> ; \'SEMI\', L');
    // Transliteration runs before `upper` (and trimming), so the warning names the character as Rossum holds it.
    expect(file.warnings?.some((w) => w.includes('"Š" (U+0160) → "S", "ť" (U+0165) → "t"'))).toBe(true);
    expect(value(segments.filter((s) => s.name === 'QTY')[3], 0, 2)).toBe('M²');
  });

  it('UNA can be left out; the parser then uses the default separators', () => {
    const file = variant((doc) => doc.setIn(['edifact', 'una'], false)).render(fixture('export-invoice'), {
      now: NOW,
      route: ROUTE,
    });
    const text = file.bytes.toString('latin1');
    expect(text.startsWith('UNB+UNOA:3+')).toBe(true);
    checkEnvelope(parseEdifact(text));
  });

  it('--explain names the datapoints of segment values', () => {
    const { trace } = shipped.explain(fixture('export-invoice'), { now: NOW, route: ROUTE });
    const bgm = trace.find((entry) => entry.output === 'segment 2 BGM element 2');
    expect(bgm?.value).toBe('INV-2024-00417');
    expect(bgm?.from.join(' ')).toContain('document_id');
  });
});

describe('edifact format: check reports what cannot work, at the key', () => {
  const problems = (edifact: string, top = 'encoding: ascii'): string[] => {
    const path = join(mkdtempSync(join(tmpdir(), 'edifact-check-')), 'broken.yaml');
    writeFileSync(
      path,
      `format: edifact\n${top}\nfile: { name: x.edi }\nedifact:\n  sender: { id: S }\n  recipient: { id: R }\n  interchange_reference: "1"\n  message: { type: INVOIC, version: D, release: 96A }\n${edifact}`,
    );
    return checkMappingFile(path).map((d) => `${d.line}:${d.column} ${d.key}: ${d.message}`);
  };

  it('flags the envelope tags, bad tags, entries that are both or neither, no_rows without repeat', () => {
    const found = problems(`  segments:
    - { segment: UNH, elements: ["1"] }
    - { segment: bgm }
    - { segment: FTX, group: G, segments: [{ segment: FTX }] }
    - { when: { field: x, present: true } }
    - { segment: LIN, no_rows: error }
`);
    expect(found).toEqual([
      '10:18 edifact.segments[0].segment: UNH is part of the envelope, which the bridge writes and counts',
      '11:18 edifact.segments[1].segment: "bgm" is not a segment tag',
      '12:7 edifact.segments[2]: an entry is either a segment (segment + elements) or a group (group + segments), not both',
      '13:7 edifact.segments[3]: the entry names no segment',
      '14:32 edifact.segments[4].no_rows: no_rows only applies to a repeated segment or group',
    ]);
  });

  it('UNOC needs ISO 8859-1 and the replacement must fit the level', () => {
    expect(problems('  syntax: UNOC\n  segments: [{ segment: BGM }]\n', 'encoding: utf-8')).toEqual([
      '2:11 encoding: EDIFACT syntax level UNOC cannot be written in utf-8',
    ]);
    expect(
      problems('  segments: [{ segment: BGM }]\n', 'encoding: ascii\nunencodable: replace\nreplacement: "_"'),
    ).toEqual(['4:14 replacement: the replacement "_" is not allowed in syntax level UNOA']);
  });
});

const unoc = fc.string({
  unit: fc
    .oneof(fc.integer({ min: 0x20, max: 0x7e }), fc.integer({ min: 0xa0, max: 0xff }))
    .map((code) => String.fromCharCode(code)),
  minLength: 1,
  maxLength: 40,
});
const unoa = fc.string({
  unit: fc.constantFrom(...'ABCXYZ0189 .,-()/=\'+:?!"%&*;<>'.split('')),
  minLength: 1,
  maxLength: 40,
});
const runs = { numRuns: 300 };

function interchange(messages: Message[], syntax: 'UNOA' | 'UNOC', reference = '42'): string {
  return writeInterchange(
    {
      una: true,
      syntax: [syntax, '3'],
      sender: ['SENDER', '14'],
      recipient: ['RECIPIENT', '14'],
      prepared: ['240202', '1015'],
      reference,
      messages,
    },
    '\n',
  );
}

describe('property: EDIFACT syntax', () => {
  it('escaping round-trips arbitrary UNOC and UNOA text through the independent parser', () => {
    for (const [syntax, text] of [
      ['UNOC', unoc],
      ['UNOA', unoa],
    ] as const) {
      fc.assert(
        fc.property(fc.array(text, { minLength: 1, maxLength: 5 }), (components) => {
          const ftx: Segment = { tag: 'FTX', elements: [['AAI'], [], [], components] };
          const parsed = parseEdifact(
            interchange([{ reference: '1', identifier: ['INVOIC', 'D', '96A', 'UN'], segments: [ftx] }], syntax),
          );
          expect(parsed.find((s) => s.name === 'FTX')?.elements[3]).toEqual(components);
        }),
        runs,
      );
    }
  });

  it('empty components and elements keep their place inside a segment and trailing ones are left out', () => {
    const maybeEmpty = fc.oneof(fc.constant(''), unoa);
    fc.assert(
      fc.property(fc.array(fc.array(maybeEmpty, { maxLength: 4 }), { maxLength: 5 }), (elements) => {
        const parsed = parseEdifact(
          interchange(
            [{ reference: '1', identifier: ['INVOIC', 'D', '96A', 'UN'], segments: [{ tag: 'ZZA', elements }] }],
            'UNOA',
          ),
        );
        const trimmed = elements.map((components) => {
          const kept = [...components];
          while (kept.length > 0 && kept.at(-1) === '') kept.pop();
          return kept.length === 0 ? [''] : kept;
        });
        while (trimmed.length > 0 && trimmed.at(-1)?.join('') === '') trimmed.pop();
        expect(parsed.find((segment) => segment.name === 'ZZA')?.elements ?? []).toEqual(trimmed);
      }),
      runs,
    );
  });

  it('a released character is always preceded by an odd number of ?', () => {
    fc.assert(
      fc.property(unoc, (text) => {
        const escaped = escapeEdifact(text);
        expect(escaped.replace(/\?[?:+']/g, '')).not.toMatch(/[?:+']/);
        expect(escaped.replace(/\?([?:+'])/g, '$1')).toBe(text);
      }),
      runs,
    );
  });

  it('UNT counts its segments and UNZ counts the messages, for any number of both', () => {
    // Tags the parser has no definitions for: this property is about the envelope, not segment contents.
    const segment = fc.record({
      tag: fc.constantFrom('ZZA', 'ZZB', 'ZZC'),
      elements: fc.array(fc.array(unoa, { maxLength: 3 }), { maxLength: 4 }),
    });
    const message = fc.record({
      reference: fc.stringMatching(/^[A-Z0-9]{1,14}$/),
      identifier: fc.constant(['INVOIC', 'D', '96A', 'UN'] as string[]),
      segments: fc.array(segment, { maxLength: 12 }),
    });
    fc.assert(
      fc.property(fc.array(message, { minLength: 1, maxLength: 5 }), (messages) => {
        const parsed = parseEdifact(interchange(messages, 'UNOA'));
        const found = checkEnvelope(parsed);
        expect(found.map((m) => m.length)).toEqual(messages.map((m) => m.segments.length + 2));
      }),
      { numRuns: 100 },
    );
  });

  it('an envelope written around its body (as renders write it) is the interchange written whole', () => {
    const segment = fc.record({
      tag: fc.constantFrom('ZZA', 'BGM', 'FTX'),
      elements: fc.array(fc.array(unoc, { maxLength: 3 }), { maxLength: 4 }),
    });
    fc.assert(
      fc.property(
        fc.array(segment, { maxLength: 8 }),
        fc.boolean(),
        fc.constantFrom('', '\n', '\r\n'),
        fc.option(unoa, { nil: undefined }),
        fc.boolean(),
        (segments, una, newline, applicationReference, testIndicator) => {
          const header = {
            una,
            syntax: ['UNOC', '3'] as ['UNOC', string],
            sender: ['SENDER', '14'],
            recipient: ['RECIPIENT'],
            prepared: ['240202', '1015'] as [string, string],
            reference: '42',
            applicationReference,
            testIndicator,
          };
          const message = { reference: 'M1', identifier: ['INVOIC', 'D', '96A', 'UN'] };
          const { head, tail } = messageEnvelope(header, { ...message, segmentCount: segments.length }, newline);
          const written = [head, ...segments.map(writeSegment), tail].join(newline);
          expect(written).toBe(writeInterchange({ ...header, messages: [{ ...message, segments }] }, newline));
        },
      ),
      runs,
    );
  });

  it('a 600-line invoice (a body written in several pieces): UNT counts every segment, one segment per line', () => {
    const file = shipped.render(bigInvoice(600), { now: NOW, route: ROUTE });
    const text = file.bytes.toString('latin1');
    expect(text.length).toBeGreaterThan(50_000);
    const segments = parseEdifact(text);
    const messages = checkEnvelope(segments);
    checkInvoic(messages[0] as ParsedSegment[], 600);
    const lines = text.trimEnd().split('\n');
    expect(lines).toHaveLength(segments.length + 1);
    // Each line one whole segment (the values here hold no released terminator): no piece boundary lost a newline.
    expect(lines.filter((line) => !line.endsWith("'") || line.indexOf("'") !== line.length - 1)).toEqual([]);
  });

  it('the shipped mapping repeats the line-item group once per row, and UNT still counts right', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            code: unoc,
            qty: fc.integer({ min: 1, max: 999 }),
            cents: fc.integer({ min: -99_999, max: 99_999 }),
          }),
          { maxLength: 25 },
        ),
        (rows) => {
          const view = annotation(
            {
              document_id: 'INV-1',
              date_issue: { value: '2024-01-31', normalized: '2024-01-31' },
              currency: 'eur',
              sender_name: 'Seller',
              recipient_name: 'Buyer',
              amount_total: { value: '1.00', normalized: '1.00' },
            },
            rows.map((row) => ({
              item_code: row.code,
              item_quantity: String(row.qty),
              item_amount_total: (row.cents / 100).toFixed(2),
            })),
          );
          const file = shipped.render(view, { now: NOW, route: ROUTE });
          const messages = checkEnvelope(parseEdifact(file.bytes.toString('latin1')));
          checkInvoic(messages[0] as ParsedSegment[], rows.length);
        },
      ),
      { numRuns: 60 },
    );
  });
});

describe('edifact conditions', () => {
  it("an error inside a repeated segment's condition names the segment and the row", () => {
    const strict = variant((doc) =>
      doc.setIn(['edifact', 'segments', 7, 'segments', 1, 'when'], {
        value: { row: 'item_description', required: true },
        present: true,
      }),
    );
    const rows = [1, 2, 3].map((n) => ({
      item_code: `A-${n}`,
      item_description: n === 2 ? '' : `Article ${n}`,
      item_quantity: '1',
      item_amount_total: '1.00',
    }));
    const view = annotation(
      { document_id: 'INV-1', date_issue: { value: '2024-01-31', normalized: '2024-01-31' }, currency: 'eur' },
      rows,
    );
    expect(() => strict.render(view, { now: NOW, route: ROUTE })).toThrow(
      '"item_description" in line_items row 2 is required for segment IMD (line_items row 2), but it is empty.',
    );
  });
});
