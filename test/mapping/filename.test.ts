import fc from 'fast-check';
import { posix, resolve, sep } from 'node:path';
import { describe, expect, it } from 'vitest';
import { sanitizeRelativePath, sanitizeSegment } from '../../src/mapping/filename.ts';
import { annotation, mappingFrom } from './helpers.ts';

const xmlMapping = (name: string, extra = '') => `
format: xml
file: { name: "${name}"${extra} }
xml: { root: { element: A, value: "{document_id}" } }
`;

function rendersName(documentId: string, template = 'INV_{document_id}.xml'): string {
  return mappingFrom(xmlMapping(template)).render(annotation({ document_id: documentId })).fileName;
}

/** What every name must satisfy: stays inside the target folder, no separators from data, portable. */
function assertSafe(name: string, folders = 0): void {
  const segments = name.split('/');
  expect(segments).toHaveLength(folders + 1);
  for (const segment of segments) {
    expect(segment).not.toBe('');
    expect(segment).not.toMatch(/^\./);
    expect(segment).not.toMatch(/[\u0000-\u001f\\:*?"<>|]/);
    expect(segment).not.toMatch(/^(con|prn|aux|nul|com\d|lpt\d)(\..*)?$/i);
    expect(Buffer.byteLength(segment)).toBeLessThanOrEqual(200);
  }
  const target = resolve('/srv/erp/inbound');
  expect(resolve(target, name).startsWith(target + sep)).toBe(true);
  expect(posix.normalize(name)).toBe(name);
}

describe('file names built from document data never leave the target folder', () => {
  it.each([
    ['../../etc/passwd', 'INV_.._.._etc_passwd.xml'],
    ['/etc/passwd', 'INV__etc_passwd.xml'],
    ['..\\..\\windows\\system32', 'INV_.._.._windows_system32.xml'],
    ['a\u0000b', 'INV_a_b.xml'],
    ['line\nbreak\ttab', 'INV_line_break_tab.xml'],
    ['R&D/2024<01>', 'INV_R&D_2024_01_.xml'],
    ['C:\\temp', 'INV_C__temp.xml'],
  ])('document id %j becomes %j', (documentId, expected) => {
    const name = rendersName(documentId);
    expect(name).toBe(expected);
    assertSafe(name);
  });

  it('a value that is the whole name cannot be "..", a dot file, or a reserved Windows device', () => {
    expect(rendersName('..', '{document_id}')).toBe('__');
    expect(rendersName('.hidden', '{document_id}')).toBe('_hidden');
    expect(rendersName('CON', '{document_id}')).toBe('_CON');
    expect(rendersName('nul.txt', '{document_id}')).toBe('_nul.txt');
    expect(rendersName('COM1', '{document_id}')).toBe('_COM1');
    expect(rendersName('', '{document_id}')).toBe('_');
    expect(rendersName('trailing. ', '{document_id}')).toBe('trailing__');
  });

  it('overlong names are cut to 200 bytes and keep their extension', () => {
    const name = rendersName('ü'.repeat(300));
    expect(Buffer.byteLength(name)).toBeLessThanOrEqual(200);
    expect(name.endsWith('.xml')).toBe(true);
    assertSafe(name);
  });

  it('folders come only from the template text, never from values', () => {
    const name = rendersName('../x/y', 'out/{document_id}/INV.xml');
    expect(name).toBe('out/___x_y/INV.xml');
    assertSafe(name, 2);
  });

  it('property: any document id yields a safe name inside the target folder', () => {
    const mapping = mappingFrom(xmlMapping('in/{document_id}.{document_id}'));
    fc.assert(
      fc.property(fc.string({ unit: fc.constantFrom('.', '/', '\\', '\u0000', '\n', 'a', 'C', 'O', 'N', ' ', ':', 'ü', '\u202e', '\ud800', '\udc00', '🚀'), maxLength: 300 }), (documentId) => {
        const name = mapping.render(annotation({ document_id: documentId })).fileName;
        assertSafe(name, 1);
        expect(name).toBe(Buffer.from(name, 'utf8').toString('utf8'));
      }),
      { numRuns: 300 },
    );
  });

  it('segments are sanitized on their own too', () => {
    expect(sanitizeSegment('...')).toBe('___');
    expect(sanitizeRelativePath('a//b')).toBe('a/b');
  });

  it('a template that is absolute or climbs is refused when the mapping loads', () => {
    expect(() => mappingFrom(xmlMapping('/abs/{document_id}'))).toThrow(/relative to the target folder/);
    expect(() => mappingFrom(xmlMapping('../{document_id}'))).toThrow(/"\." and "\.\." are not allowed/);
  });
});

describe('on_existing', () => {
  it.each(['fail', 'overwrite', 'version'] as const)('is taken from the mapping: %s', (policy) => {
    expect(mappingFrom(xmlMapping('x.xml', `, on_existing: ${policy}`)).onExisting).toBe(policy);
  });
  it('defaults to fail', () => {
    expect(mappingFrom(xmlMapping('x.xml')).onExisting).toBe('fail');
  });
});
