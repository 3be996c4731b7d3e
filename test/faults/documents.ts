import { join } from 'node:path';
import { parseExportPayload, viewAnnotation } from '../../src/annotation/index.ts';
import { loadMappings } from '../../src/mapping/index.ts';
import { fixture, repoRoot } from '../support/bridge.ts';
import type { RossumSimulator } from '../support/rossum-simulator.ts';
import { random, type PlannedScan } from './schedule.ts';

/**
 * Hidden temporary upload names (`.NAME.<8 hex>.part`) and the final names the generic-xml mapping gives
 * (`~<8 hex>` when sanitizing changed a value, so two documents never share a name; `_vN` for versions).
 */
export const TEMP_NAME = /^\..*\.[0-9a-f]{8}\.part$/;
export const FINAL_NAME = /^INV_.*_(\d+)(?:~[0-9a-f]{8})?(?:_v\d+)?\.xml$/;
/** The original document beside a data file: the data file's stem, `.pdf`. */
export const SCAN_NAME = /^INV_.*_(\d+)(?:~[0-9a-f]{8})?\.pdf$/;
/** Annotations in this queue are routed to the mapping that uploads the original document first. */
export const SCAN_QUEUE = 4242;

export interface Documents {
  /** Annotation id → the export payload Rossum sends for it. */
  payloads: Map<number, Record<string, unknown>>;
  /** Annotation id → the exact bytes its file must have on the server. */
  expected: Map<number, Buffer>;
  /** Annotation id → the original PDF that must be beside its data file (scan annotations only). */
  scans: Map<number, Buffer>;
}

/**
 * The fixture payloads in turn, each under its own annotation id, rendered the way the bridge must render them.
 * Scan annotations go to SCAN_QUEUE and name a PDF the simulated Rossum serves (its first download failing as planned).
 */
export function prepareDocuments(
  annotationIds: number[],
  plannedScans: ReadonlyMap<number, PlannedScan> = new Map(),
  simulator?: RossumSimulator,
  seed = 0,
): Documents {
  const mapping = loadMappings(join(repoRoot, 'mappings')).get('generic-xml')!;
  const fixtures = ['export-invoice.json', 'export-tricky-characters.json', 'export-no-line-items.json'];
  const payloads = new Map<number, Record<string, unknown>>();
  const expected = new Map<number, Buffer>();
  const scans = new Map<number, Buffer>();
  annotationIds.forEach((id, i) => {
    const payload = fixture(fixtures[i % fixtures.length]!);
    (payload.annotation as { id: number }).id = id;
    payloads.set(id, payload);
    const planned = plannedScans.get(id);
    // Rendered from the payload as sent: a scan's payload names its own document.
    if (!planned || !simulator) {
      expected.set(id, mapping.render(viewAnnotation(parseExportPayload(payload))).bytes);
      return;
    }
    const documentId = id + 500_000;
    const pdf = pseudoRandomBytes(planned.bytes, random(seed ^ id));
    const annotation = payload.annotation as Record<string, unknown>;
    annotation.queue = `https://example.rossum.app/api/v1/queues/${SCAN_QUEUE}`;
    const document = simulator.addDocument(documentId, pdf);
    annotation.document = document.url;
    payload.document = { ...(payload.document as Record<string, unknown>), ...document };
    scans.set(id, pdf);
    expected.set(id, mapping.render(viewAnnotation(parseExportPayload(payload))).bytes);
    if (planned.fault === 'status503') simulator.failDocument(documentId, { kind: 'status503', status: 503, times: 1 });
    if (planned.fault === 'hang') simulator.failDocument(documentId, { kind: 'hang', hang: true, times: 1 });
    if (planned.fault === 'cut')
      simulator.failDocument(documentId, { kind: 'cut', cutAfter: Math.floor(pdf.length / 2), times: 1 });
    // Slow but steady: about 1.5 s for the whole PDF, within the webhook deadline.
    if (planned.fault === 'slow')
      simulator.failDocument(documentId, { kind: 'slow', bytesPerSecond: pdf.length / 1.5, times: 1 });
  });
  return { payloads, expected, scans };
}

function pseudoRandomBytes(size: number, rand: () => number): Buffer {
  const bytes = Buffer.alloc(size);
  for (let at = 0; at + 4 <= size; at += 4) bytes.writeUInt32LE(Math.floor(rand() * 2 ** 32), at);
  return bytes;
}
