import { z } from 'zod';

/** How the bridge reaches Rossum's API: where, with which credentials, how fast and how patiently. */
export const rossumApiConfigSchema = z
  .strictObject({
    baseUrl: z
      .url({ protocol: /^https?$/ })
      .optional()
      .describe(
        'API root including `/api`, e.g. `https://example.rossum.app/api`. When absent, taken from the export payload’s `base_url` (+ `/api`), but only when its host is in `allowedHosts`.',
      ),
    allowedHosts: z
      .array(
        z
          .string()
          .min(1)
          .regex(/^(\*\.)?[A-Za-z0-9.:[\]-]+$/, 'a host name, or `*.` followed by a domain'),
      )
      .optional()
      .describe(
        'Hosts a payload’s `base_url` may name when `baseUrl` is not set: exact names, or `*.domain` for its subdomains. Default `*.rossum.app`, `*.rossum.ai`. Our token and username/password are sent only to `baseUrl` or these hosts; a payload naming another host is refused (the outcome fails with ROSSUM_HOST_NOT_ALLOWED, shown by `status`).',
      ),
    token: z
      .string()
      .min(1)
      .optional()
      .describe(
        'An API token. With username/password too, used until Rossum refuses it, then the client logs in. Alone, it is checked at start-up and renewed through `POST /v1/auth/token` before it expires (see `tokenLifetimeS`); a token Rossum refuses keeps every outcome pending until a new one is configured (restart or `SIGHUP`).',
      ),
    username: z
      .string()
      .min(1)
      .optional()
      .describe('Rossum user for `POST /v1/auth/login` (a dedicated API user is recommended).'),
    password: z
      .string()
      .min(1)
      .optional()
      .describe('Password of `username`. Use `${ENV}` interpolation; never commit it.'),
    authScheme: z
      .enum(['Bearer', 'Token'])
      .default('Bearer')
      .describe('Authorization scheme sent with the key: `Bearer` (current), or `Token` for older deployments.'),
    renewToken: z
      .boolean()
      .default(true)
      .describe(
        'Token only (no username/password): renew the token through `POST /v1/auth/token` at start-up and before it expires. Off only for a Rossum that does not offer the endpoint.',
      ),
    tokenLifetimeS: z
      .number()
      .int()
      .min(1)
      .max(583_200)
      .default(583_200)
      .describe(
        'Lifetime asked for each renewed token (`max_token_lifetime_s`); Rossum allows at most 583,200 s (162 h).',
      ),
    tokenRenewBeforeS: z
      .number()
      .int()
      .min(0)
      .default(3_600)
      .describe('Renew a token this long before it expires (must be shorter than `tokenLifetimeS`).'),
    requestsPerSecond: z
      .number()
      .int()
      .min(1)
      .max(1_000)
      .default(10)
      .describe('Client-side rate limit of API requests (Rossum throttles at 10/s and answers 429 beyond).'),
    timeoutMs: z
      .number()
      .int()
      .positive()
      .max(600_000)
      .default(30_000)
      .describe('Timeout of each API request, in milliseconds.'),
    retry: z
      .strictObject({
        attempts: z
          .number()
          .int()
          .min(1)
          .max(20)
          .default(5)
          .describe('Attempts per API call for 429, 408, 5xx and connection errors (1 = no retry).'),
        minDelayMs: z
          .number()
          .int()
          .min(0)
          .default(500)
          .describe('First backoff delay; doubles per attempt, with jitter.'),
        maxDelayMs: z.number().int().min(0).default(30_000).describe('Upper bound of one backoff delay.'),
      })
      .prefault({})
      .describe('Retry policy for transient failures. A 429 waits as long as its `Retry-After` says.'),
  })
  .refine((c) => c.token !== undefined || (c.username !== undefined && c.password !== undefined), {
    message: 'set `token`, or both `username` and `password`',
  })
  .refine((c) => (c.username === undefined) === (c.password === undefined), {
    message: '`username` and `password` go together',
  })
  .refine((c) => c.tokenRenewBeforeS < c.tokenLifetimeS, {
    message: '`tokenRenewBeforeS` must be shorter than `tokenLifetimeS`',
    path: ['tokenRenewBeforeS'],
  })
  .refine((c) => c.retry.minDelayMs <= c.retry.maxDelayMs, {
    message: '`retry.minDelayMs` must not exceed `retry.maxDelayMs`',
    path: ['retry'],
  });

export type RossumApiConfigInput = z.input<typeof rossumApiConfigSchema>;
export type RossumApiConfig = z.output<typeof rossumApiConfigSchema>;
