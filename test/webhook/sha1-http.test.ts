import { createHmac } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fixture, TEST_SECRET } from '../support/bridge.ts';
import { startFileBridge, type FileBridge } from '../support/file-bridge.ts';

const hmac = (algorithm: 'sha256' | 'sha1', data: Buffer | string, secret = TEST_SECRET): string =>
  createHmac(algorithm, secret).update(data).digest('hex');

describe('legacy sha1 signatures through real HTTP', () => {
  let enabled: FileBridge;
  let disabled: FileBridge;
  beforeAll(async () => {
    [enabled, disabled] = await Promise.all([
      startFileBridge({ allowLegacySha1: true }),
      startFileBridge({ allowLegacySha1: false }),
    ]);
  });
  afterAll(async () => {
    await Promise.all([enabled?.close(), disabled?.close()]);
  });

  function payload(id: number): string {
    const object = fixture('export-invoice.json');
    (object.annotation as { id: number }).id = id;
    return JSON.stringify(object);
  }

  async function post(
    url: string,
    text: string,
    headers: Record<string, string>,
  ): Promise<{ status: number; json: { messages?: Array<{ type: string; content: string }> } }> {
    const response = await fetch(url, {
      method: 'POST',
      body: text,
      headers: { 'content-type': 'application/json', ...headers },
    });
    return {
      status: response.status,
      json: (await response.json()) as { messages?: Array<{ type: string; content: string }> },
    };
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
    const reply = await post(enabled.url, text, {
      'x-elis-signature': `sha1=${hmac('sha1', text, 'another-secret-of-16-chars')}`,
    });
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
