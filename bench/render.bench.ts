/**
 * npm run bench:render — renders a generated 2,000-line invoice with each shipped mapping format and
 * compares XML against a hand-written baseline that builds the same XML with fast-xml-parser's builder.
 * Targets (issue 3): within 2× of the baseline, < 50 ms and < 64 MB per 2,000-line document. Figures only.
 */
import { join } from 'node:path';
import { XMLBuilder } from 'fast-xml-parser';
import type { AnnotationView } from '../src/annotation/index.ts';
import { loadMappingFile } from '../src/mapping/index.ts';
import { bigInvoice } from '../test/support/big-invoice.ts';
import { describeMachine, writeBenchResults } from './support/results.ts';

const LINES = Number(process.env.LINES ?? 2000);
const ITERATIONS = Number(process.env.ITERATIONS ?? 30);
const root = join(import.meta.dirname, '..');
const machine = describeMachine();

/** The same XML as mappings/generic-xml.yaml, built directly with the builder (values pre-formatted by hand). */
function baseline(view: AnnotationView): Buffer {
  const f = (id: string) => view.field(id)?.normalizedValue ?? view.field(id)?.value ?? '';
  const money = (s: string) => (s === '' ? undefined : Number(s).toFixed(2));
  const rows = view.rows('line_items');
  const doc = {
    '?xml': { '@_version': '1.0', '@_encoding': 'UTF-8' },
    Invoice: {
      '@_annotationId': String(view.meta.annotationId),
      Header: {
        Number: f('document_id'),
        OrderNumber: f('order_id'),
        IssueDate: f('date_issue'),
        DueDate: f('date_due'),
        DocumentType: f('document_type'),
        Currency: f('currency').toUpperCase(),
        SourceFile: view.meta.documentFileName,
      },
      Supplier: {
        Name: f('sender_name'),
        VatId: f('sender_vat_id'),
        Address: f('sender_address'),
        Iban: f('iban').replace(/\s/g, ''),
      },
      Customer: { Name: f('recipient_name'), VatId: f('recipient_vat_id') },
      Totals: {
        NetAmount: money(f('amount_total_base')),
        TaxAmount: money(f('amount_total_tax')),
        GrossAmount: money(f('amount_total')),
      },
      TaxDetails: {
        TaxDetail: view.rows('tax_details').map((r) => ({
          Rate: money(r.field('tax_detail_rate')?.normalizedValue ?? ''),
          Base: money(r.field('tax_detail_base')?.normalizedValue ?? ''),
          Tax: money(r.field('tax_detail_tax')?.normalizedValue ?? ''),
        })),
      },
      Lines: {
        '@_count': String(rows.length),
        Line: rows.map((r, i) => {
          const v = (id: string) => r.field(id)?.normalizedValue ?? r.field(id)?.value ?? '';
          return {
            '@_number': String(i + 1),
            Code: v('item_code').trim(),
            Description: v('item_description'),
            Quantity: v('item_quantity'),
            Unit: v('item_uom') || undefined,
            UnitPrice: money(v('item_amount_base')),
            VatRate: v('item_rate'),
            Amount: money(v('item_amount_total')),
          };
        }),
      },
    },
  };
  return Buffer.from(
    new XMLBuilder({ ignoreAttributes: false, format: true, suppressEmptyNode: true }).build(doc),
    'utf8',
  );
}

function measure(
  name: string,
  run: () => Buffer,
): { name: string; ms: number; p95: number; mb: number; bytes: number } {
  for (let i = 0; i < 5; i++) run();
  globalThis.gc?.();
  const before = process.memoryUsage().heapUsed;
  let peak = before;
  const times: number[] = [];
  let bytes = 0;
  for (let i = 0; i < ITERATIONS; i++) {
    const start = process.hrtime.bigint();
    bytes = run().length;
    times.push(Number(process.hrtime.bigint() - start) / 1e6);
    peak = Math.max(peak, process.memoryUsage().heapUsed);
    if (i % 5 === 4) globalThis.gc?.();
  }
  times.sort((a, b) => a - b);
  return {
    name,
    ms: times[Math.floor(times.length / 2)] as number,
    p95: times[Math.floor(times.length * 0.95)] as number,
    mb: (peak - before) / 1024 / 1024,
    bytes,
  };
}

const view = bigInvoice(LINES);
/** The EDIFACT mapping reads its interchange partners from the route. */
const EDI_PARTNERS = { edi_sender_gln: '4012345000009', edi_recipient_gln: '8712345000004' };
const mapping = (name: string) => loadMappingFile(join(root, 'mappings', `${name}.yaml`));
const results = [
  measure('baseline: XMLBuilder by hand', () => baseline(view)),
  ...[
    'generic-xml',
    'sap-idoc-xml',
    'ubl-invoice',
    'generic-csv',
    'datev-csv',
    'as400-fixed',
    'edifact-invoic-d96a',
  ].map((name) => {
    const m = mapping(name);
    return measure(
      `${name} (${m.format})`,
      () => m.render(view, { now: new Date('2024-02-02T10:15:30Z'), route: EDI_PARTNERS }).bytes,
    );
  }),
];
const base = results[0]?.ms ?? 1;
process.stdout.write(
  `render ${LINES}-line invoice, median of ${ITERATIONS} runs, node ${process.version}${globalThis.gc ? '' : ' (run with --expose-gc for steadier memory figures)'}\n`,
);
process.stdout.write(
  `${'case'.padEnd(36)} ${'ms/doc'.padStart(8)} ${'p95 ms'.padStart(8)} ${'× base'.padStart(7)} ${'heap MB'.padStart(8)} ${'bytes'.padStart(9)}\n`,
);
for (const r of results) {
  process.stdout.write(
    `${r.name.padEnd(36)} ${r.ms.toFixed(2).padStart(8)} ${r.p95.toFixed(2).padStart(8)} ${(r.ms / base).toFixed(2).padStart(7)} ${r.mb.toFixed(1).padStart(8)} ${String(r.bytes).padStart(9)}\n`,
  );
}
process.stdout.write(
  `peak RSS ${(process.memoryUsage().rss / 1024 / 1024).toFixed(0)} MB; targets: ≤ 2× baseline, < 50 ms, < 64 MB per document\n`,
);
const peakRssMb = Math.round(process.memoryUsage().rss / 1024 / 1024);
const targetsMet = results.every((r) => r.ms / base <= 2 && r.ms < 50 && r.mb < 64);
writeBenchResults({
  bench: 'render',
  command: 'npm run bench:render',
  setup: `A ${LINES}-line invoice rendered by each mapping, median (and p95) of ${ITERATIONS} runs after 5 warm-up runs${globalThis.gc ? '' : ' (without --expose-gc: heap figures less steady)'}.`,
  machine,
  tables: [
    {
      columns: ['case', '>ms/doc', '>p95 ms', '>× hand-built XML', '>heap MB', '>bytes'],
      rows: results.map((r) => [
        r.name,
        r.ms.toFixed(1),
        r.p95.toFixed(1),
        (r.ms / base).toFixed(2),
        r.mb.toFixed(1),
        r.bytes,
      ]),
    },
  ],
  notes: [
    `Targets: within 2× of the hand-built baseline, < 50 ms and < 64 MB per document (medians): ${targetsMet ? 'met' : 'NOT met'}; peak RSS ${peakRssMb} MB.`,
  ],
});
