import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { PiecewiseEncoder } from '../../src/mapping/encoding.ts';
import { loadMappingFile, type RenderedFile } from '../../src/mapping/index.ts';
import { bigInvoice } from '../support/big-invoice.ts';
import { annotation, mappingFrom } from './helpers.ts';

/**
 * A large XML or EDIFACT document is encoded while it is written (after each repeated element or segment). The bytes must be
 * exactly those of the whole text encoded at once: same content, the BOM once, nothing taken back twice.
 * Each render is done twice, settling after every row and never, and the two must be equal.
 */

const ROOT = join(import.meta.dirname, '..', '..');
const original = PiecewiseEncoder.pieceCharacters;
afterEach(() => {
  PiecewiseEncoder.pieceCharacters = original;
});

/**
 * The render done both ways, settling after every row and never: the bytes and warnings must be equal, and the
 * piecewise render must really have encoded in pieces (a render that never settles cannot pass). Returns the bytes.
 */
function bothWays(render: () => RenderedFile, minimumPieces = 10): Buffer {
  PiecewiseEncoder.pieceCharacters = 1;
  const push = vi.spyOn(PiecewiseEncoder.prototype as unknown as { push(text: string): void }, 'push');
  let piecewise: RenderedFile;
  try {
    piecewise = render();
    expect(push.mock.calls.length).toBeGreaterThan(minimumPieces);
  } finally {
    push.mockRestore();
  }
  PiecewiseEncoder.pieceCharacters = Number.POSITIVE_INFINITY;
  const whole = render();
  expect(piecewise.bytes.equals(whole.bytes)).toBe(true);
  expect(piecewise.warnings).toEqual(whole.warnings);
  return whole.bytes;
}

const rows = Array.from({ length: 40 }, (_, i) => ({
  item_code: i % 3 === 0 ? '' : `ART-${i}`,
  item_description: `Schraube – Ø ${i} & <Mutter> "verzinkt" 🚀 ť`,
  item_quantity: String(i + 1),
  item_amount_base: i % 4 === 0 ? '' : `${i}.5`,
  item_amount_total: `${(i + 1) * 1.25}`,
  item_rate: i % 2 ? '19' : '0',
  item_uom: i % 5 ? 'pcs' : '',
}));
const view = annotation(
  { document_id: 'INV-1', date_issue: '2024-01-31', currency: 'eur', amount_total: '10', order_id: '' },
  rows,
);

describe('XML encoded while it is written', () => {
  it.each(['ubl-invoice', 'sap-idoc-xml', 'generic-xml'])(
    '%s: the same bytes as the whole text encoded at once',
    (name) => {
      const mapping = loadMappingFile(join(ROOT, 'mappings', `${name}.yaml`));
      const invoice = bigInvoice(60);
      const bytes = bothWays(() => mapping.render(invoice, { now: new Date('2024-02-02T10:15:30Z') }), 60);
      expect(bytes.length).toBeGreaterThan(5_000);
    },
  );

  it('with a BOM, nested repeats, conditions and elements left out after the rows (the BOM written once)', () => {
    const mapping = mappingFrom(`
format: xml
encoding: utf-8
bom: true
file: { name: out.xml }
xml:
  pretty: true
  empty_elements: omit
  root:
    element: Doc
    children:
      - element: Lines
        children:
          - element: Line
            repeat: line_items
            when: { row: item_quantity, present: true }
            children:
              - element: Code
                value: { row: item_code }
              - element: Base
                value: { row: item_amount_base }
              - element: Again
                repeat: line_items
                children: [{ element: Q, value: { row: item_quantity } }]
          - element: Empty
            value: { field: order_id }
      - element: AlsoEmpty
        children: [{ element: X, value: { field: order_id } }]
      - element: Total
        value: { field: amount_total }
`);
    const whole = bothWays(() => mapping.render(view), rows.length);
    expect(whole.subarray(0, 3).toString('hex')).toBe('efbbbf');
    expect(whole.indexOf(Buffer.from('efbbbf', 'hex'), 3)).toBe(-1);
    const text = whole.toString('utf8');
    expect(text.match(/<Line>/g)?.length).toBe(rows.length);
    expect(text.match(/<Q>/g)?.length).toBe(rows.length * rows.length);
    expect(text).not.toContain('Empty');
  });

  it('in a single-byte encoding with transliteration, warnings included', () => {
    const mapping = mappingFrom(`
format: xml
encoding: iso-8859-15
unencodable: transliterate
file: { name: out.xml }
xml:
  root:
    element: Doc
    children:
      - element: Line
        repeat: line_items
        children: [{ element: D, value: { row: item_description } }]
`);
    const bytes = bothWays(() => mapping.render(view), rows.length);
    expect(bytes.toString('latin1')).toContain('Schraube - Ø 0 &amp; &lt;Mutter&gt;');
  });
});

describe('EDIFACT encoded while it is written', () => {
  const ROUTE = { edi_sender_gln: '4012345000009', edi_recipient_gln: '8712345000004' };
  const now = new Date('2024-02-02T10:15:30Z');

  it('edifact-invoic-d96a: the same bytes and warnings as the whole text encoded at once', () => {
    const mapping = loadMappingFile(join(ROOT, 'mappings', 'edifact-invoic-d96a.yaml'));
    const invoice = bigInvoice(60);
    const bytes = bothWays(() => mapping.render(invoice, { now, route: ROUTE }), 60);
    expect(bytes.length).toBeGreaterThan(5_000);
  });

  it('at UNOC in ISO 8859-1 with transliteration, without segment newlines and UNA', () => {
    const mapping = mappingFrom(`
format: edifact
encoding: iso-8859-1
unencodable: transliterate
file: { name: out.edi }
edifact:
  syntax: UNOC
  una: false
  segment_newline: false
  sender: { id: S }
  recipient: { id: R }
  interchange_reference: "7"
  message: { type: INVOIC, version: D, release: 96A }
  segments:
    - segment: BGM
      elements: ["380", { field: document_id }]
    - group: SG25
      repeat: line_items
      segments:
        - segment: IMD
          elements: ["F", "", ["", "", "", { row: item_description }]]
`);
    const text = bothWays(() => mapping.render(view, { now }), rows.length).toString('latin1');
    expect(text.startsWith('UNB+UNOC:3+S+R+')).toBe(true);
    expect(text.match(/IMD\+/g)?.length).toBe(rows.length);
    // The rocket has no transliteration: the replacement "?", released as "??".
    expect(text).toContain('Schraube - Ø 0 & <Mutter> "verzinkt" ?? t\'');
    expect(text).toMatch(new RegExp(`UNT\\+${rows.length + 3}\\+`));
  });
});
