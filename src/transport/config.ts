import { z } from 'zod';

const FINGERPRINT = /^SHA256:[A-Za-z0-9+/]{43}=?$/;

/** A whole number of things (connections, attempts) between `min` and `max`. */
function count(min: number, max: number, defaultCount: number, description: string) {
  return z.number().int().min(min).max(max).default(defaultCount).describe(description);
}

/** A duration setting in whole milliseconds. */
function milliseconds(min: number, defaultMs: number, description: string) {
  return z.number().int().min(min).default(defaultMs).describe(description);
}

const fingerprint = z
  .string()
  .regex(FINGERPRINT, 'expected an OpenSSH fingerprint like SHA256:AbC... (ssh-keygen -l -f key.pub)')
  .describe('OpenSSH SHA256 fingerprint of the server host key, as `ssh-keygen -l` prints it');

const algorithmList = z
  .union([
    z.array(z.string()).describe('Exact list, in order of preference'),
    z
      .strictObject({
        append: z
          .union([z.string(), z.array(z.string())])
          .optional()
          .describe('Add after the defaults'),
        prepend: z
          .union([z.string(), z.array(z.string())])
          .optional()
          .describe('Add before the defaults'),
        remove: z
          .union([z.string(), z.array(z.string())])
          .optional()
          .describe('Remove from the defaults'),
      })
      .describe('Changes to ssh2 defaults'),
  ])
  .describe('ssh2 algorithm list, or append/prepend/remove changes to its defaults');

export const poolConfigSchema = z
  .strictObject({
    size: count(1, 64, 4, 'Maximum SFTP connections to this target'),
    inflightPerConnection: count(
      1,
      64,
      16,
      'Operations (uploads, reads) outstanding at once on each connection; SFTP request ids let them overlap on the wire. 1 = one at a time, for servers that mishandle concurrent requests',
    ),
    idleCloseMs: milliseconds(0, 60_000, 'Close a connection unused for this long (0 = never)'),
    keepaliveMs: milliseconds(0, 15_000, 'SSH keepalive interval (0 = off)'),
    checkIdleAfterMs: milliseconds(
      0,
      2_000,
      'Before reusing a connection idle this long, check it with a cheap SFTP call (realpath)',
    ),
    maxConcurrentHandshakes: z
      .number()
      .int()
      .min(1)
      .default(2)
      .describe("Connections being set up at once; OpenSSH's MaxStartups drops excess unauthenticated connections"),
    connectTimeoutMs: milliseconds(
      100,
      8_000,
      'Give up on one connection attempt (TCP + SSH handshake + auth) after this long',
    ),
    operationTimeoutMs: milliseconds(
      100,
      15_000,
      'Give up on one running operation after this long and discard its connection',
    ),
  })
  .describe('Connection pool');

export const uploadConfigSchema = z
  .strictObject({
    tempPrefix: z
      .string()
      .default('.')
      .describe('Prefix of the temporary name the file is written under before the rename'),
    tempSuffix: z.string().default('.part').describe('Suffix of the temporary name'),
    tempDir: z
      .string()
      .nullable()
      .default(null)
      .describe(
        'Write temporary files in this folder (relative to the target folder, same file system) instead of next to the final name',
      ),
    mode: z
      .string()
      .regex(/^0?[0-7]{3,4}$/, 'expected an octal mode like 0640')
      .optional()
      .describe('chmod the file to this octal mode before it becomes visible, e.g. 0640'),
    verifySize: z
      .boolean()
      .default(true)
      .describe('Check that the remote size equals the bytes sent before the rename'),
    createDirs: z.boolean().default(true).describe('Create missing folders (mkdir -p)'),
    writesInFlight: z
      .union([z.literal('auto'), z.number().int().min(1).max(64)])
      .default('auto')
      .describe(
        "Write requests of one file kept outstanding at once (a file over one request, ~32 kB): more saves a round trip per request on a WAN link. auto = 16 on OpenSSH servers (they answer a handle's requests in order), 1 elsewhere (some servers mishandle parallel writes)",
      ),
    rename: z
      .enum(['auto', 'posix', 'plain'])
      .default('auto')
      .describe(
        'How `overwrite` replaces a file: auto = posix-rename@openssh.com when the server offers it, else remove + rename; posix = require posix-rename; plain = remove + rename',
      ),
  })
  .describe('Atomic upload: temporary name, optional chmod, size check, rename');

export const retryConfigSchema = z
  .strictObject({
    attempts: count(1, 20, 3, 'Connection attempts per operation before reporting the target unreachable'),
    minDelayMs: milliseconds(0, 200, 'First backoff delay between connection attempts'),
    maxDelayMs: milliseconds(0, 3_000, 'Largest backoff delay between connection attempts'),
  })
  .describe('Reconnect with exponential backoff (ssh2-sftp-client 12 no longer retries by itself)');

export const targetConfigSchema = z
  .strictObject({
    url: z
      .string()
      .refine((value) => parseTargetUrl(value).ok, {
        message: 'expected sftp://user@host:port/dir or file:///absolute/dir',
      })
      .describe(
        'sftp://user@host[:port]/absolute/dir, sftp://user@host/~/dir (relative to the login folder) or file:///absolute/dir',
      ),
    hostKey: z
      .union([fingerprint, z.array(fingerprint).min(1)])
      .optional()
      .describe('Pinned host key fingerprint(s); any one matching is accepted'),
    knownHosts: z.string().optional().describe('Path of an OpenSSH known_hosts file (plain or hashed entries)'),
    insecureAcceptAnyHostKey: z
      .boolean()
      .default(false)
      .describe('Accept any host key (only for throwaway test servers; logged loudly)'),
    password: z.string().optional().describe('Password (use ${ENV} interpolation, never commit it)'),
    privateKey: z.string().optional().describe('Inline private key (PEM / OpenSSH format)'),
    privateKeyPath: z.string().optional().describe('Path of a private key file'),
    passphrase: z.string().optional().describe('Passphrase of an encrypted private key'),
    credentials: z
      .enum(['config', 'hookSecrets'])
      .default('config')
      .describe(
        "config = credentials above; hookSecrets = the hook payload's `secrets` (username, password, privateKey, passphrase)",
      ),
    pool: poolConfigSchema.prefault({}),
    upload: uploadConfigSchema.prefault({}),
    algorithms: z
      .strictObject({
        kex: algorithmList.optional(),
        cipher: algorithmList.optional(),
        serverHostKey: algorithmList.optional(),
        hmac: algorithmList.optional(),
        compress: algorithmList.optional(),
      })
      .optional()
      .describe(
        'ssh2 `algorithms` passthrough for old servers, e.g. { kex: { append: [diffie-hellman-group14-sha1] } }',
      ),
    retry: retryConfigSchema.prefault({}),
  })
  .superRefine((config, context) => {
    const parsed = parseTargetUrl(config.url);
    if (!parsed.ok || parsed.value.scheme !== 'sftp') return;
    if (!config.hostKey && !config.knownHosts && !config.insecureAcceptAnyHostKey) {
      context.addIssue({
        code: 'custom',
        path: ['hostKey'],
        message:
          'an sftp target needs hostKey (SHA256:... fingerprint) or knownHosts; set insecureAcceptAnyHostKey: true only for test servers',
      });
    }
    if (config.privateKey && config.privateKeyPath) {
      context.addIssue({
        code: 'custom',
        path: ['privateKeyPath'],
        message: 'give privateKey or privateKeyPath, not both',
      });
    }
    if (config.credentials === 'config' && !config.password && !config.privateKey && !config.privateKeyPath) {
      context.addIssue({
        code: 'custom',
        path: ['password'],
        message: 'an sftp target needs password, privateKey or privateKeyPath (or credentials: hookSecrets)',
      });
    }
    if (config.upload.tempDir !== null && /(^|[\\/])\.\.([\\/]|$)|^[\\/]/.test(config.upload.tempDir)) {
      context.addIssue({
        code: 'custom',
        path: ['upload', 'tempDir'],
        message: 'tempDir must be a folder inside the target folder (relative, no "..")',
      });
    }
  })
  .describe('Where exported files go');

export type TargetConfigInput = z.input<typeof targetConfigSchema>;
export type TargetConfig = z.output<typeof targetConfigSchema>;
export type PoolConfig = z.output<typeof poolConfigSchema>;
export type UploadConfig = z.output<typeof uploadConfigSchema>;
export type RetryConfig = z.output<typeof retryConfigSchema>;

export type TargetUrl =
  | { scheme: 'sftp'; host: string; port: number; username: string | undefined; dir: string }
  | { scheme: 'file'; dir: string };

/**
 * `sftp://user@host:port/abs/dir` → dir `/abs/dir`; `sftp://host/~/dir` → dir `dir` (relative to
 * the login folder, as curl reads it); `file:///abs/dir` → `/abs/dir`.
 */
export function parseTargetUrl(value: string): { ok: true; value: TargetUrl } | { ok: false; reason: string } {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return { ok: false, reason: 'not a URL' };
  }
  if (url.search || url.hash) return { ok: false, reason: 'query and fragment are not allowed' };
  let path: string;
  try {
    path = decodeURIComponent(url.pathname);
  } catch {
    return { ok: false, reason: 'bad percent-encoding in the path' };
  }
  if (path.includes('\0')) return { ok: false, reason: 'NUL in the path' };
  if (url.protocol === 'file:') {
    if (url.host) return { ok: false, reason: 'file URLs must not name a host (file:///abs/dir)' };
    return { ok: true, value: { scheme: 'file', dir: path.replace(/\/+$/, '') || '/' } };
  }
  if (url.protocol === 'sftp:') {
    if (!url.hostname) return { ok: false, reason: 'missing host' };
    if (url.password) return { ok: false, reason: 'put the password in `password`, not in the URL' };
    let dir: string;
    if (path === '/~' || path.startsWith('/~/')) dir = path.slice(3).replace(/^\/+|\/+$/g, '') || '.';
    else dir = path.replace(/\/+$/, '') || '/';
    const hostname = url.hostname.replace(/^\[|\]$/g, '');
    return {
      ok: true,
      value: {
        scheme: 'sftp',
        host: hostname,
        port: url.port ? Number(url.port) : 22,
        username: url.username ? decodeURIComponent(url.username) : undefined,
        dir,
      },
    };
  }
  return { ok: false, reason: `unsupported scheme ${url.protocol}` };
}
