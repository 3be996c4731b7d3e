import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { documentPath, type PreparedDocument } from '../../src/export/index.ts';
import { checkMappingFile } from '../../src/mapping/index.ts';
import { repoRoot } from '../support/bridge.ts';

function document(overrides: Partial<PreparedDocument['settings']> = {}, originalFileName: string | null = 'scan.PDF') {
  return {
    settings: {
      name: '{stem}{ext}',
      folder: undefined,
      extension: undefined,
      required: true,
      maxBytes: 1,
      bufferBytes: 1,
      ...overrides,
    },
    url: null,
    label: 'document 1',
    originalFileName,
    webhookToken: null,
  } satisfies PreparedDocument;
}

describe('where the original document goes', () => {
  it("shares the data file's stem and folder, with the original's extension (lower case) or the configured one", () => {
    expect(documentPath('INV_1.xml', document())).toBe('INV_1.pdf');
    expect(documentPath('out/INV_1.xml', document({}, 'scan.tiff'))).toBe('out/INV_1.tiff');
    expect(documentPath('INV_1.xml', document({}, null))).toBe('INV_1.pdf');
    expect(documentPath('INV_1.xml', document({ extension: '.tif' }))).toBe('INV_1.tif');
  });

  it('uses the name template and another folder of the same target', () => {
    expect(documentPath('out/INV_1.xml', document({ folder: 'scans', name: '{stem}_scan{ext}' }))).toBe(
      'scans/INV_1_scan.pdf',
    );
  });

  it('never takes the data file name itself', () => {
    expect(documentPath('INV_1.pdf', document())).toBe('INV_1.document.pdf');
    expect(documentPath('INV_1', document({ extension: '.pdf' }))).toBe('INV_1.pdf');
  });

  it('check refuses a document name without {stem}, with other placeholders, or with folders', () => {
    const dir = mkdtempSync(join(tmpdir(), 'rsb-docname-'));
    const shipped = readFileSync(join(repoRoot, 'mappings/sap-idoc-xml-scan.yaml'), 'utf8');
    const base = shipped.slice(0, shipped.indexOf('\ntests:'));
    const problems = (name: string): string[] => {
      const path = join(dir, 'm.yaml');
      writeFileSync(path, base.replace('  required: true', `  required: true\n  name: "${name}"`));
      return checkMappingFile(path).map((d) => `${d.key}: ${d.message}`);
    };
    expect(problems('{stem}_scan{ext}')).toEqual([]);
    expect(problems('scan{ext}')).toEqual([
      'document.name: the name must contain {stem}, or every export would overwrite one document',
    ]);
    expect(problems('{stem}{document_id}{ext}')).toEqual([
      'document.name: {document_id} is not available here: use {stem} and {ext}',
    ]);
    expect(problems('a/{stem}{ext}')).toEqual(['document.name: the name has no folders (use folder:)']);
  });
});
