import { createHmac, timingSafeEqual } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { compareDigests, verifySignature, type DigestCompare } from '../../src/webhook/signature.ts';
import { TEST_SECRET } from '../support/bridge.ts';

const settings = { secret: TEST_SECRET, allowLegacySha1: true };
const body = Buffer.from('{"annotation":{"id":1}}');
const hmac = (algorithm: 'sha256' | 'sha1', data: Buffer | string, secret = TEST_SECRET): string =>
  createHmac(algorithm, secret).update(data).digest('hex');

/** A compare that records what it was given and answers what the test says. */
function recordingCompare(answer: boolean): { compare: DigestCompare; calls: Array<[Buffer, Buffer]> } {
  const calls: Array<[Buffer, Buffer]> = [];
  return {
    calls,
    compare: (presented, expected) => {
      calls.push([Buffer.from(presented), Buffer.from(expected)]);
      return answer;
    },
  };
}

describe('the signature compare is constant-time by construction', () => {
  it('the compare the verifier uses by default is crypto.timingSafeEqual itself', () => {
    expect(compareDigests).toBe(timingSafeEqual);
  });

  it.each([
    ['sha256', 'x-rossum-signature-sha256', 32],
    ['sha1', 'x-elis-signature', 20],
  ] as const)(
    '%s: the verdict comes from the compare, called once with two digests of the full length',
    (algorithm, header, length) => {
      const right = `${algorithm}=${hmac(algorithm, body)}`;
      const accepting = recordingCompare(true);
      const wrongButSameLength = `${algorithm}=${'0'.repeat(length * 2)}`;
      expect(verifySignature(body, { [header]: wrongButSameLength }, settings, accepting.compare).ok).toBe(true);
      expect(accepting.calls).toHaveLength(1);
      const [presented, expected] = accepting.calls[0] as [Buffer, Buffer];
      expect(presented.length).toBe(length);
      expect(expected.length).toBe(length);
      expect(expected.toString('hex')).toBe(hmac(algorithm, body));

      const refusing = recordingCompare(false);
      expect(verifySignature(body, { [header]: right }, settings, refusing.compare).ok).toBe(false);
      expect(refusing.calls).toHaveLength(1);
    },
  );

  it('a digest of the wrong length is refused without reaching the compare (timingSafeEqual would throw)', () => {
    const never = recordingCompare(true);
    const check = verifySignature(
      body,
      { 'x-rossum-signature-sha256': `sha256=${hmac('sha256', body).slice(0, 62)}` },
      settings,
      never.compare,
    );
    expect(check).toEqual({ ok: false, reason: 'X-Rossum-Signature-SHA256 has the wrong length for sha256' });
    expect(never.calls).toHaveLength(0);
  });
});

describe('what the verifier refuses, and why', () => {
  const sign = (algorithm: 'sha256' | 'sha1') => `${algorithm}=${hmac(algorithm, body)}`;
  const reason = (headers: Record<string, string | string[] | undefined>, options = settings) => {
    const check = verifySignature(body, headers, options);
    return check.ok ? `ok:${check.scheme}` : check.reason;
  };

  it('accepts both schemes, upper-case hex too, and the first of repeated headers', () => {
    expect(reason({ 'x-rossum-signature-sha256': sign('sha256') })).toBe('ok:sha256');
    expect(reason({ 'x-rossum-signature-sha256': `sha256=${hmac('sha256', body).toUpperCase()}` })).toBe('ok:sha256');
    expect(reason({ 'x-elis-signature': sign('sha1') })).toBe('ok:sha1');
    expect(reason({ 'x-rossum-signature-sha256': [sign('sha256'), 'sha256=00'] })).toBe('ok:sha256');
    expect(reason({ 'x-rossum-signature-sha256': ['sha256=00', sign('sha256')] })).toBe(
      'X-Rossum-Signature-SHA256 has the wrong length for sha256',
    );
  });

  it('sha256 wins when both headers are sent (a wrong sha256 is not rescued by a right sha1)', () => {
    expect(reason({ 'x-rossum-signature-sha256': `sha256=${'0'.repeat(64)}`, 'x-elis-signature': sign('sha1') })).toBe(
      'X-Rossum-Signature-SHA256 does not match the body: wrong secret, or the body was changed in transit',
    );
  });

  it('no secret configured (explicit insecure mode) accepts anything, with scheme none', () => {
    expect(verifySignature(body, {}, { secret: null, allowLegacySha1: false })).toEqual({ ok: true, scheme: 'none' });
  });

  it.each([
    [{}, 'Missing X-Rossum-Signature-SHA256 header: set hook.config.secret in Rossum to the bridge secret'],
    [
      { 'x-rossum-signature-sha256': hmac('sha256', body) },
      'X-Rossum-Signature-SHA256 must look like sha256=<hex digest>',
    ],
    [
      { 'x-rossum-signature-sha256': `sha1=${hmac('sha256', body)}` },
      'X-Rossum-Signature-SHA256 must look like sha256=<hex digest>',
    ],
    [
      { 'x-rossum-signature-sha256': `=${hmac('sha256', body)}` },
      'X-Rossum-Signature-SHA256 must look like sha256=<hex digest>',
    ],
    // No '=' at all: the whole header is not a prefix, even when it starts with the algorithm's name.
    [{ 'x-rossum-signature-sha256': 'sha256f' }, 'X-Rossum-Signature-SHA256 must look like sha256=<hex digest>'],
    [{ 'x-rossum-signature-sha256': 'sha256' }, 'X-Rossum-Signature-SHA256 must look like sha256=<hex digest>'],
    [{ 'x-elis-signature': `sha256=${hmac('sha1', body)}` }, 'X-Elis-Signature must look like sha1=<hex digest>'],
    [
      { 'x-rossum-signature-sha256': `sha256=${hmac('sha256', body)}0` },
      'X-Rossum-Signature-SHA256 has the wrong length for sha256',
    ],
    [
      { 'x-rossum-signature-sha256': `sha256=${hmac('sha256', body).slice(0, 63)}z` },
      'X-Rossum-Signature-SHA256 has the wrong length for sha256',
    ],
    [
      { 'x-rossum-signature-sha256': `sha256=x${hmac('sha256', body)}` },
      'X-Rossum-Signature-SHA256 has the wrong length for sha256',
    ],
    [
      { 'x-rossum-signature-sha256': `sha256=${hmac('sha256', body)}x` },
      'X-Rossum-Signature-SHA256 has the wrong length for sha256',
    ],
    [{ 'x-rossum-signature-sha256': 'sha256=' }, 'X-Rossum-Signature-SHA256 has the wrong length for sha256'],
    [
      { 'x-rossum-signature-sha256': `sha256=${hmac('sha256', body, 'another-secret-of-16-chars')}` },
      'X-Rossum-Signature-SHA256 does not match the body: wrong secret, or the body was changed in transit',
    ],
    [
      { 'x-elis-signature': `sha1=${hmac('sha1', body, 'another-secret-of-16-chars')}` },
      'X-Elis-Signature does not match the body: wrong secret, or the body was changed in transit',
    ],
    [{ 'x-elis-signature': `sha1=${hmac('sha1', body).slice(2)}` }, 'X-Elis-Signature has the wrong length for sha1'],
  ])('refuses %j: %s', (headers, expected) => {
    expect(reason(headers as Record<string, string>)).toBe(expected);
  });

  it('sha1 alone is refused when sha1 is off, whatever its digest', () => {
    expect(reason({ 'x-elis-signature': sign('sha1') }, { secret: TEST_SECRET, allowLegacySha1: false })).toBe(
      'Only the legacy X-Elis-Signature (sha1) header was sent and sha1 signatures are disabled; send X-Rossum-Signature-SHA256',
    );
  });

  it('the digest is keyed with the secret and taken over the raw bytes', () => {
    const other = Buffer.from('{"annotation":{"id":2}}');
    expect(verifySignature(other, { 'x-rossum-signature-sha256': sign('sha256') }, settings).ok).toBe(false);
    expect(
      verifySignature(body, { 'x-rossum-signature-sha256': sign('sha256') }, { ...settings, secret: `${TEST_SECRET}x` })
        .ok,
    ).toBe(false);
  });
});
