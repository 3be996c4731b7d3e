import { createHmac, timingSafeEqual } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compareDigests, verifySignature, type DigestCompare } from '../../src/webhook/signature.ts';
import { fixture, TEST_SECRET } from '../support/bridge.ts';
import { startFileBridge, type FileBridge } from '../support/file-bridge.ts';

const settings = { secret: TEST_SECRET, allowLegacySha1: true };
const body = Buffer.from('{"annotation":{"id":1}}');
const hmac = (algorithm: 'sha256' | 'sha1', data: Buffer | string, secret = TEST_SECRET): string => createHmac(algorithm, secret).update(data).digest('hex');

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
  ] as const)('%s: the verdict comes from the compare, called once with two digests of the full length', (algorithm, header, length) => {
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
  });

  it('a digest of the wrong length is refused without reaching the compare (timingSafeEqual would throw)', () => {
    const never = recordingCompare(true);
    const check = verifySignature(body, { 'x-rossum-signature-sha256': `sha256=${hmac('sha256', body).slice(0, 62)}` }, settings, never.compare);
    expect(check).toEqual({ ok: false, reason: 'X-Rossum-Signature-SHA256 has the wrong length for sha256' });
    expect(never.calls).toHaveLength(0);
  });
});

describe('legacy sha1 signatures through real HTTP', () => {
  let enabled: FileBridge;
  let disabled: FileBridge;
  beforeAll(async () => {
    [enabled, disabled] = await Promise.all([startFileBridge({ allowLegacySha1: true }), startFileBridge({ allowLegacySha1: false })]);
  });
  afterAll(async () => {
    await Promise.all([enabled?.close(), disabled?.close()]);
  });

  function payload(id: number): string {
    const object = fixture('export-invoice.json');
    (object.annotation as { id: number }).id = id;
    return JSON.stringify(object);
  }

  async function post(url: string, text: string, headers: Record<string, string>): Promise<{ status: number; json: { messages?: Array<{ type: string; content: string }> } }> {
    const response = await fetch(url, { method: 'POST', body: text, headers: { 'content-type': 'application/json', ...headers } });
    return { status: response.status, json: (await response.json()) as { messages?: Array<{ type: string; content: string }> } };
  }

  it('accepted with allowLegacySha1: true — the export runs and a file is written', async () => {
    const text = payload(8101);
    const reply = await post(enabled.url, text, { 'x-elis-signature': `sha1=${hmac('sha1', text)}` });
    expect(reply.status).toBe(200);
    expect(reply.json.messages?.[0]?.type).toBe('info');
    expect(enabled.files()).toHaveLength(1);
  });

  it('a wrong sha1 digest is refused with 401 even when sha1 is enabled', async () => {
    const text = payload(8102);
    const reply = await post(enabled.url, text, { 'x-elis-signature': `sha1=${hmac('sha1', text, 'another-secret-of-16-chars')}` });
    expect(reply.status).toBe(401);
    expect(enabled.files()).toHaveLength(1);
  });

  it('refused with 401 and nothing written when allowLegacySha1 is false', async () => {
    const text = payload(8103);
    const reply = await post(disabled.url, text, { 'x-elis-signature': `sha1=${hmac('sha1', text)}` });
    expect(reply.status).toBe(401);
    expect(JSON.stringify(reply.json)).toContain('sha1 signatures are disabled');
    expect(disabled.files()).toEqual([]);
  });
});
