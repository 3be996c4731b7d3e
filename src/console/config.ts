import { z } from 'zod';

/** `scrypt$N$r$p$salt$hash` (base64url salt and hash), as `rossum-sftp-bridge console hash-password` prints it. */
export const PASSWORD_HASH_PATTERN = /^scrypt\$\d+\$\d+\$\d+\$[A-Za-z0-9_-]{16,}\$[A-Za-z0-9_-]{32,}$/;

const role = z
  .enum(['viewer', 'operator'])
  .describe(
    '`viewer` reads everything; `operator` may also run the recorded actions (re-deliver to Rossum, mark an ack file handled)',
  );

export const consoleUserSchema = z
  .strictObject({
    name: z
      .string()
      .regex(/^[A-Za-z0-9_.@-]{1,64}$/, 'letters, digits, _ . @ - only (at most 64)')
      .describe('Login name; it is what the ledger records as who ran an action'),
    passwordHash: z
      .string()
      .regex(PASSWORD_HASH_PATTERN, 'not a scrypt hash: create one with `rossum-sftp-bridge console hash-password`')
      .describe(
        'scrypt hash of the password from `rossum-sftp-bridge console hash-password` (never the password itself)',
      ),
    role: role.default('viewer'),
  })
  .describe('One console user');

export const consoleConfigSchema = z
  .strictObject({
    enabled: z.boolean().default(false).describe('Serve the operator console on the webhook port (off unless set)'),
    pathPrefix: z
      .string()
      .regex(/^\/[a-z0-9-]+(\/[a-z0-9-]+)*$/, 'a path such as /console')
      .default('/console')
      .describe('Path under which the console is served, next to the webhook'),
    users: z.array(consoleUserSchema).default([]).describe('Who may sign in with a name and password'),
    tokenEnv: z
      .string()
      .regex(/^[A-Z_][A-Z0-9_]*$/, 'an environment variable name')
      .optional()
      .describe(
        'Name of an environment variable holding an access token (at least 32 characters) that signs in without a user name; the token itself never goes in this file',
      ),
    tokenRole: role.default('viewer').describe('Role of whoever signs in with the access token'),
    sessionSecret: z
      .string()
      .min(32, 'use at least 32 characters')
      .optional()
      .describe(
        'Key that signs session cookies (use ${ENV} interpolation). Unset: a random key per process, so sessions end on restart and do not carry across `server.workers` > 1',
      ),
    secureCookies: z
      .enum(['auto', 'always'])
      .default('auto')
      .describe(
        '`auto`: cookies are marked Secure when the request came over HTTPS; `always`: also behind a proxy that terminates TLS and forwards plain HTTP',
      ),
    sessionHours: z
      .number()
      .min(0.25)
      .max(24 * 7)
      .default(8)
      .describe('A session ends this long after sign-in'),
    rossumAppUrl: z
      .string()
      .url()
      .optional()
      .describe(
        "Rossum app address for the link to an annotation (e.g. https://acme.rossum.app); unset: the export payload's base_url",
      ),
    pageSize: z.number().int().min(10).max(500).default(50).describe('Exports per page of the list'),
  })
  .superRefine((config, context) => {
    if (config.enabled && config.users.length === 0 && config.tokenEnv === undefined) {
      context.addIssue({
        code: 'custom',
        path: ['users'],
        message: 'the console is enabled but nobody can sign in: add users or tokenEnv',
      });
    }
    const seen = new Set<string>();
    config.users.forEach((user, index) => {
      if (seen.has(user.name))
        context.addIssue({
          code: 'custom',
          path: ['users', index, 'name'],
          message: `user "${user.name}" is listed twice`,
        });
      seen.add(user.name);
    });
  })
  .describe('The operator web console: exports, their timeline and files, acks, and a few recorded actions');

export type ConsoleConfig = z.infer<typeof consoleConfigSchema>;
export type ConsoleRole = z.infer<typeof role>;
