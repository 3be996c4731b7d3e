import { describe, expect, it } from 'vitest';
import { annotation, mappingFrom } from './helpers.ts';

const doc = () =>
  annotation({ document_id: 'INV-1', order_id: 'PO-9', currency: 'eur', sender_name: 'Dvořák s.r.o.' }, [
    { item_code: 'A', item_amount_total: '10.00' },
    { item_code: 'B', item_amount_total: '5.00' },
    { item_code: 'C', item_amount_total: '1.00' },
  ]);

const ids = (from: string[]) => from.map((entry) => entry.replace(/ \(datapoint \d+\)$/, ''));

describe('render --explain', () => {
  it("credits each value with exactly the datapoints it was read from: not a neighbour's when, not the file name, none twice", () => {
    const mapping = mappingFrom(`format: xml
file: { name: "INV_{document_id}_{currency}.xml" }
xml:
  root:
    element: Invoice
    children:
      - { element: Id, value: "{document_id}/{document_id}" }
      - element: Order
        when: { field: order_id, present: true }
        value: { const: yes }
      - element: Kind
        value: { const: standard, when: { field: currency, equals: eur } }
      - { element: Seller, value: { field: sender_name } }
`);
    const { file, trace } = mapping.explain?.(doc()) ?? { file: undefined, trace: [] };
    expect(file?.fileName).toBe('INV_INV-1_eur.xml');
    const byOutput = new Map(trace.map((entry) => [entry.output, entry]));
    expect(ids(byOutput.get('Invoice/Id')?.from ?? [])).toEqual(['document_id']);
    expect(byOutput.get('Invoice/Order')?.from).toEqual([]);
    expect(byOutput.get('Invoice/Kind')?.from).toEqual([]);
    expect(ids(byOutput.get('Invoice/Kind')?.checked ?? [])).toEqual(['currency']);
    expect(ids(byOutput.get('Invoice/Seller')?.from ?? [])).toEqual(['sender_name']);
    expect(ids(byOutput.get('file name')?.from ?? [])).toEqual(['document_id', 'currency']);
  });
});

describe('warnings', () => {
  it('one warning per datapoint and problem, however many rows repeat the header value', () => {
    const mapping = mappingFrom(`format: csv
encoding: iso-8859-15
unencodable: transliterate
file: { name: x.csv }
csv:
  rows: line_items
  columns:
    - { name: seller, value: { field: sender_name } }
    - { name: code, value: { row: item_code } }
`);
    const file = mapping.render(doc());
    expect(file.bytes.toString('latin1')).toBe('seller,code\nDvorák s.r.o.,A\nDvorák s.r.o.,B\nDvorák s.r.o.,C\n');
    expect(file.warnings).toHaveLength(1);
    expect(file.warnings?.[0]).toMatch(
      /^column "seller" of record 1 \(line_items row 1\) \(from sender_name, datapoint \d+\): replaced characters iso-8859-15 cannot hold: "ř" \(U\+0159\) → "r" \(and 2 more places with the same value\)$/,
    );
  });

  it('different datapoints with the same problem stay separate warnings', () => {
    const mapping = mappingFrom(`format: csv
encoding: iso-8859-15
unencodable: replace
file: { name: x.csv }
csv:
  columns:
    - { name: a, value: { field: a } }
    - { name: b, value: { field: b } }
`);
    expect(mapping.render(annotation({ a: 'ř', b: 'ř' })).warnings).toHaveLength(2);
  });

  it('transliterates before trimming: a dropped emoji leaves no trailing space', () => {
    const mapping = mappingFrom(`format: csv
encoding: windows-1252
unencodable: transliterate
replacement: ""
file: { name: x.csv }
csv:
  header: false
  columns:
    - { name: name, value: { field: name, trim: true } }
    - { name: note, value: { field: note, collapse_whitespace: true } }
`);
    const file = mapping.render(annotation({ name: ' ACME 🚀', note: 'fast 🚀 delivery 🚀' }));
    expect(file.bytes.toString('latin1')).toBe('ACME,fast delivery\n');
    expect(file.warnings?.join('\n')).toContain('"🚀" (U+1F680) → ""');
  });
});
