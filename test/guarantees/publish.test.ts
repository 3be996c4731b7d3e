import { describe, expect, it } from 'vitest';
import { MAX_VERSIONS, publishUnderPolicy, type PublishSteps } from '../../src/transport/publish.ts';

/**
 * The `onExisting` policy shared by every target, driven with a folder in memory: what is asked of the
 * target, in which order, and what is refused. The transports' own tests show the same against sshd and disk.
 */
function folder(taken: Iterable<string>): PublishSteps & { calls: string[]; files: Set<string> } {
  const files = new Set(taken);
  const calls: string[] = [];
  return {
    files,
    calls,
    async overwrite() {
      calls.push('overwrite');
      files.add('final');
    },
    async placeIfFree(candidate) {
      calls.push(`placeIfFree ${candidate}`);
      if (files.has(candidate)) return 'taken';
      files.add(candidate);
      return 'placed';
    },
  };
}

const where = { host: 'erp.example:22', place: 'on erp.example:22' };

describe('publishUnderPolicy', () => {
  it('overwrite replaces, whatever is there, and never asks for a free name', async () => {
    const target = folder(['out/INV-1.xml']);
    expect(await publishUnderPolicy('out/INV-1.xml', 'overwrite', where, target)).toBe('out/INV-1.xml');
    expect(target.calls).toEqual(['overwrite']);
  });

  it('fail places under the name when it is free', async () => {
    const target = folder([]);
    expect(await publishUnderPolicy('out/INV-1.xml', 'fail', where, target)).toBe('out/INV-1.xml');
    expect(target.calls).toEqual(['placeIfFree out/INV-1.xml']);
  });

  it('fail refuses a taken name after one try: permanent TARGET_EXISTS naming the place and that nothing changed', async () => {
    const target = folder(['out/INV-1.xml']);
    const error = await publishUnderPolicy('out/INV-1.xml', 'fail', where, target).catch((e: unknown) => e);
    expect(error).toMatchObject({
      code: 'TARGET_EXISTS',
      permanent: true,
      message: 'out/INV-1.xml already exists on erp.example:22 and the policy is onExisting: fail; nothing was changed',
      path: 'out/INV-1.xml',
      location: { host: 'erp.example:22' },
    });
    expect(target.calls).toEqual(['placeIfFree out/INV-1.xml']);
  });

  it('version takes the first free name in order: name, name_v2, name_v3', async () => {
    const target = folder(['out/INV-1.xml', 'out/INV-1_v2.xml']);
    expect(await publishUnderPolicy('out/INV-1.xml', 'version', where, target)).toBe('out/INV-1_v3.xml');
    expect(target.calls).toEqual([
      'placeIfFree out/INV-1.xml',
      'placeIfFree out/INV-1_v2.xml',
      'placeIfFree out/INV-1_v3.xml',
    ]);
  });

  it(`version gives up after name_v${MAX_VERSIONS}, naming how many versions exist`, async () => {
    const names = ['a.xml', ...Array.from({ length: MAX_VERSIONS - 1 }, (_, i) => `a_v${i + 2}.xml`)];
    const target = folder(names);
    const error = await publishUnderPolicy('a.xml', 'version', where, target).catch((e: unknown) => e);
    expect(error).toMatchObject({
      code: 'TARGET_EXISTS',
      permanent: true,
      message: `a.xml and ${MAX_VERSIONS - 1} versions of it already exist on erp.example:22`,
    });
    expect(target.calls).toHaveLength(MAX_VERSIONS);
    expect(target.calls.at(-1)).toBe(`placeIfFree a_v${MAX_VERSIONS}.xml`);
    // The last version is still tried: one free slot at the very end is used.
    target.files.delete(`a_v${MAX_VERSIONS}.xml`);
    expect(await publishUnderPolicy('a.xml', 'version', where, target)).toBe(`a_v${MAX_VERSIONS}.xml`);
  });

  it('MAX_VERSIONS is 9,999', () => {
    expect(MAX_VERSIONS).toBe(9_999);
  });
});
