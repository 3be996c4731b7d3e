import fc from 'fast-check';
import { posix, resolve, sep } from 'node:path';
import { describe, expect, it } from 'vitest';
import { sanitizeRelativePath, sanitizeSegment } from '../../src/mapping/filename.ts';
import { containedPath } from '../../src/transport/paths.ts';
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

const HASH = '~[0-9a-f]{8}';
const literally = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
/** A name sanitizing had to change: the readable part, the "~" + hash marker, then the extension. */
const hashed = (stem: string, extension = '') => new RegExp(`^${literally(stem)}${HASH}${literally(extension)}$`);

describe('file names built from document data never leave the target folder', () => {
  it.each([
    ['../../etc/passwd', 'INV_.._.._etc_passwd'],
    ['/etc/passwd', 'INV__etc_passwd'],
    ['..\\..\\windows\\system32', 'INV_.._.._windows_system32'],
    ['a\u0000b', 'INV_a_b'],
    ['line\nbreak\ttab', 'INV_line_break_tab'],
    ['R&D/2024<01>', 'INV_R&D_2024_01_'],
    ['C:\\temp', 'INV_C__temp'],
  ])('document id %j becomes %j plus a hash of the original', (documentId, stem) => {
    const name = rendersName(documentId);
    expect(name).toMatch(hashed(stem, '.xml'));
    assertSafe(name);
  });

  it('a value that is the whole name cannot be "..", a dot file, or a reserved Windows device', () => {
    expect(rendersName('..', '{document_id}')).toMatch(hashed('__'));
    expect(rendersName('.hidden', '{document_id}')).toMatch(hashed('_hidden'));
    expect(rendersName('CON', '{document_id}')).toMatch(hashed('_CON'));
    expect(rendersName('nul.txt', '{document_id}')).toMatch(hashed('_nul', '.txt'));
    expect(rendersName('COM1', '{document_id}')).toMatch(hashed('_COM1'));
    expect(rendersName('', '{document_id}')).toMatch(hashed('_'));
    expect(rendersName('trailing. ', '{document_id}')).toMatch(hashed('trailing__'));
  });

  it('reserved device names with spaces or extensions are neutralised too', () => {
    expect(rendersName('CON .txt', '{document_id}')).toMatch(hashed('_CON ', '.txt'));
    expect(rendersName('aux.xml', '{document_id}')).toMatch(hashed('_aux', '.xml'));
    expect(rendersName('LPT1', '{document_id}')).toMatch(hashed('_LPT1'));
    expect(rendersName('con', '{document_id}.xml')).toMatch(hashed('_con', '.xml'));
    for (const name of ['CON .txt', 'aux.xml', 'LPT1'].map((id) => rendersName(id, '{document_id}'))) assertSafe(name);
  });

  it('a leading space, bidi overrides and zero-width characters do not survive', () => {
    expect(rendersName(' 4711', '{document_id}.xml')).toMatch(hashed('_4711', '.xml'));
    expect(rendersName('invoice\u202Egnp.exe')).toMatch(hashed('INV_invoice_gnp.exe', '.xml'));
    expect(rendersName('A\u200bB\u200d\u2066C\u00ad')).toMatch(hashed('INV_A_B__C_', '.xml'));
    expect(rendersName('\ufeffX')).toMatch(hashed('INV__X', '.xml'));
  });

  it.each([
    ['\u2215', 'division slash'],
    ['\u2044', 'fraction slash'],
    ['\uff0f', 'full-width solidus'],
    ['\u29f8', 'big solidus'],
    ['\uff3c', 'full-width reverse solidus'],
    ['\ufe68', 'small reverse solidus'],
    ['\uff1a', 'full-width colon'],
  ])('the look-alike %j (%s) becomes "_"', (lookAlike) => {
    expect(rendersName(`..${lookAlike}..${lookAlike}etc`)).toMatch(hashed('INV_.._.._etc', '.xml'));
  });

  it('"~root" becomes a name the transport accepts instead of a permanent PATH_ESCAPE failure', () => {
    const name = rendersName('~root', '{document_id}');
    expect(name).toMatch(hashed('_root'));
    expect(containedPath(name, 'erp.example')).toBe(name);
    expect(rendersName('INVOIC~1', '{document_id}.XML')).toMatch(hashed('INVOIC_1', '.XML'));
  });

  it('values that are already safe keep their name exactly, without a hash', () => {
    expect(rendersName('INV-2024-00417')).toBe('INV_INV-2024-00417.xml');
    expect(rendersName('Müller & Söhne 漢字 ½ 🚀')).toBe('INV_Müller & Söhne 漢字 ½ 🚀.xml');
    expect(rendersName('a.b', '{document_id}')).toBe('a.b');
  });

  it("two different values never share a name, so overwrite cannot replace another document's file", () => {
    const values = [
      'a/b',
      'a_b',
      'a\\b',
      'a:b',
      'a\u2215b',
      'a\u0000b',
      'a~b',
      'a b ',
      'a b',
      'CON',
      '_CON',
      '.x',
      '_x',
    ];
    const names = values.map((value) => rendersName(value));
    expect(new Set(names).size).toBe(values.length);
    expect(rendersName('a/b')).toBe(names[0]);
  });

  it('the same value always gives the same name (a retried export finds its own file)', () => {
    expect(rendersName('../x')).toBe(rendersName('../x'));
    expect(rendersName('x'.repeat(400))).toBe(rendersName('x'.repeat(400)));
  });

  it('property: distinct document ids give distinct names, all safe and inside the target folder', () => {
    const mapping = mappingFrom(xmlMapping('in/{document_id}.xml'));
    const nameOf = (documentId: string) => mapping.render(annotation({ document_id: documentId })).fileName;
    const unit = fc.constantFrom(
      '.',
      '/',
      '\\',
      '_',
      '~',
      ':',
      ' ',
      'a',
      'C',
      'O',
      'N',
      '\u0000',
      '\u202e',
      '\u200b',
      '\u2215',
      '\uff0f',
      'ü',
      '\ud800',
      '\udc00',
      '🚀',
    );
    // A long shared prefix makes truncation part of the game: values may only differ after byte 200.
    const documentId = fc
      .tuple(fc.constantFrom('', 'x'.repeat(250), 'ü'.repeat(150)), fc.string({ unit, maxLength: 6 }))
      .map(([prefix, tail]) => prefix + tail);
    fc.assert(
      fc.property(fc.uniqueArray(documentId, { minLength: 2, maxLength: 8 }), (ids) => {
        const names = ids.map(nameOf);
        expect(new Set(names).size).toBe(ids.length);
        for (const name of names) assertSafe(name, 1);
      }),
      { numRuns: 300 },
    );
  });

  it('overlong names are cut to 200 bytes and keep their extension', () => {
    const name = rendersName('ü'.repeat(300));
    expect(Buffer.byteLength(name)).toBeLessThanOrEqual(200);
    expect(name.endsWith('.xml')).toBe(true);
    assertSafe(name);
  });

  it('folders come only from the template text, never from values', () => {
    const name = rendersName('../x/y', 'out/{document_id}/INV.xml');
    expect(name).toMatch(new RegExp(`^out/___x_y/INV${HASH}\\.xml$`));
    assertSafe(name, 2);
  });

  it('property: any document id yields a safe name inside the target folder', () => {
    const mapping = mappingFrom(xmlMapping('in/{document_id}.{document_id}'));
    fc.assert(
      fc.property(
        fc.string({
          unit: fc.constantFrom(
            '.',
            '/',
            '\\',
            '\u0000',
            '\n',
            'a',
            'C',
            'O',
            'N',
            ' ',
            ':',
            'ü',
            '\u202e',
            '\ud800',
            '\udc00',
            '🚀',
          ),
          maxLength: 300,
        }),
        (documentId) => {
          const name = mapping.render(annotation({ document_id: documentId })).fileName;
          assertSafe(name, 1);
          expect(name).toBe(Buffer.from(name, 'utf8').toString('utf8'));
        },
      ),
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

  it('a template whose own text has "~", an empty folder or characters file systems refuse is refused when the mapping loads', () => {
    expect(() => mappingFrom(xmlMapping('~/{document_id}'))).toThrow(/"~" is reserved/);
    expect(() => mappingFrom(xmlMapping('a//{document_id}'))).toThrow(/empty folder/);
    expect(() => mappingFrom(xmlMapping('INV:{document_id}'))).toThrow(/contains ":" \(U\+003A\)/);
    expect(() => mappingFrom(xmlMapping('INV\u202e{document_id}'))).toThrow(/U\+202E/);
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
