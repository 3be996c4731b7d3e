import { createHash, randomBytes, scrypt as scryptCallback, timingSafeEqual, type ScryptOptions } from 'node:crypto';
import PQueue from 'p-queue';

/** OWASP's scrypt minimum (N=2^17, r=8, p=1): about 128 MiB and 0.1–0.3 s per check. */
const COST = { N: 2 ** 17, r: 8, p: 1 };
const KEY_BYTES = 32;

/** Each check takes ~128 MiB for a moment: a burst of sign-in attempts queues instead of exhausting memory. */
const checks = new PQueue({ concurrency: 2 });

function scrypt(password: string, salt: Buffer, options: ScryptOptions): Promise<Buffer> {
  return checks.add(
    () =>
      new Promise<Buffer>((resolve, reject) => {
        scryptCallback(password, salt, KEY_BYTES, { ...options, maxmem: 256 * 1024 * 1024 }, (error, key) =>
          error ? reject(error) : resolve(key),
        );
      }),
  );
}

export async function hashPassword(password: string): Promise<string> {
  if (password.length < 12) throw new Error('use a password of at least 12 characters');
  const salt = randomBytes(16);
  const key = await scrypt(password, salt, COST);
  return ['scrypt', COST.N, COST.r, COST.p, salt.toString('base64url'), key.toString('base64url')].join('$');
}

/** Constant-time; a malformed hash never matches. */
export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const [scheme, n, r, p, salt, key] = stored.split('$');
  if (scheme !== 'scrypt' || !n || !r || !p || !salt || !key) return false;
  const expected = Buffer.from(key, 'base64url');
  const actual = await scrypt(password, Buffer.from(salt, 'base64url'), { N: Number(n), r: Number(r), p: Number(p) });
  return actual.length === expected.length && timingSafeEqual(actual, expected);
}

/** For the token: compares digests so the length of the secret does not leak either. */
export function sameSecret(given: string, expected: string): boolean {
  const digest = (text: string): Buffer => createHash('sha256').update(text, 'utf8').digest();
  return timingSafeEqual(digest(given), digest(expected));
}
