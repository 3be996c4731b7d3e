import { join } from 'node:path';
import { parseExportPayload, viewAnnotation } from '../../src/annotation/index.ts';
import { loadMappings } from '../../src/mapping/index.ts';
import { fixture, repoRoot } from '../support/bridge.ts';

/** Hidden temporary upload names (`.NAME.<8 hex>.part`) and the final names the generic-xml mapping gives. */
export const TEMP_NAME = /^\..*\.[0-9a-f]{8}\.part$/;
// A name whose characters had to be replaced carries `~` and a hash of the original (src/mapping/filename.ts).
export const FINAL_NAME = /^INV_.*_(\d+)(?:~[0-9a-f]{8})?(?:_v\d+)?\.xml$/;

export interface Documents {
  /** Annotation id → the export payload Rossum sends for it. */
  payloads: Map<number, Record<string, unknown>>;
  /** Annotation id → the exact bytes its file must have on the server. */
  expected: Map<number, Buffer>;
}

/** The fixture payloads in turn, each under its own annotation id, rendered the way the bridge must render them. */
export function prepareDocuments(annotationIds: number[]): Documents {
  const mapping = loadMappings(join(repoRoot, 'mappings')).get('generic-xml')!;
  const fixtures = ['export-invoice.json', 'export-tricky-characters.json', 'export-no-line-items.json'];
  const payloads = new Map<number, Record<string, unknown>>();
  const expected = new Map<number, Buffer>();
  annotationIds.forEach((id, i) => {
    const payload = fixture(fixtures[i % fixtures.length]!);
    (payload.annotation as { id: number }).id = id;
    payloads.set(id, payload);
    expected.set(id, mapping.render(viewAnnotation(parseExportPayload(payload))).bytes);
  });
  return { payloads, expected };
}
