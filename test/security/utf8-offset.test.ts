import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { firstInvalidUtf8 } from '../../src/webhook/index.ts';

const fatal = new TextDecoder('utf-8', { fatal: true });
const isValid = (bytes: Uint8Array): boolean => {
  try {
    fatal.decode(bytes);
    return true;
  } catch {
    return false;
  }
};

/** Mostly real UTF-8 (every plane), with bytes flipped, cut or inserted where the run says. */
const utf8ish = fc
  .tuple(
    fc.string({ unit: 'binary', maxLength: 40 }),
    fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 3 }),
    fc.nat({ max: 3 }),
  )
  .map(([text, edits, cut]) => {
    const bytes = Buffer.from(text, 'utf8');
    for (const [at, value] of edits) if (bytes.length > 0) bytes[at % bytes.length] = value;
    return bytes.subarray(0, Math.max(0, bytes.length - cut));
  });

describe('locating the first invalid UTF-8 byte (linear)', () => {
  it('agrees with the fatal TextDecoder: the length for valid input, else an offset whose prefix is valid and from which decoding fails', () => {
    fc.assert(
      fc.property(utf8ish, (bytes) => {
        const offset = firstInvalidUtf8(bytes);
        if (isValid(bytes)) return offset === bytes.length;
        return (
          offset < bytes.length &&
          isValid(bytes.subarray(0, offset)) &&
          !isValid(bytes.subarray(offset, Math.min(bytes.length, offset + 4)))
        );
      }),
      { numRuns: 5_000 },
    );
  });

  it('overlong forms, encoded surrogates and code points past U+10FFFF are invalid where they start', () => {
    for (const bad of [
      [0xc0, 0xaf],
      [0xe0, 0x80, 0xaf],
      [0xed, 0xa0, 0x80],
      [0xf4, 0x90, 0x80, 0x80],
      [0xf5, 0x80, 0x80, 0x80],
      [0x80],
    ]) {
      expect(firstInvalidUtf8(Buffer.from([0x41, 0x42, ...bad, 0x43]))).toBe(2);
    }
  });
});
