import { expect, it } from 'vitest';
import { parseJsonBody } from '../../src/webhook/body.ts';

it('placeholder', () => {
  expect(parseJsonBody(Buffer.from('{}'), 4)).toEqual({ ok: true, value: {} });
});
