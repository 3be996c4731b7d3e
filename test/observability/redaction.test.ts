import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { bridgeConfigSchema } from '../../src/config/index.ts';
import { createLogger, REDACTED_PATHS, silentLogger } from '../../src/observability/logger.ts';

// Each secret is distinctive, so finding any of them anywhere in the output is a leak.
const SECRETS = {
  hookSecret: 'leak-hook-secret-5c1e9a7d3b',
  sftpPassword: 'leak-sftp-password-8e2a4c6f',
  sftpPrivateKey:
    '-----BEGIN OPENSSH PRIVATE KEY-----\nleak-private-key-body-3f7b1d\n-----END OPENSSH PRIVATE KEY-----',
  sftpPassphrase: 'leak-passphrase-9b3d5f7a',
  rossumToken: 'leak-rossum-token-2d4f6a8c',
  rossumPassword: 'leak-rossum-password-7a9c1e3b',
  postgresPassword: 'leak-pg-password-4e6a8c0d',
  payloadToken: 'leak-payload-token-1b3d5f7e',
  hookSecretsValue: 'leak-hook-secrets-value-6c8e0a2d',
  signature: 'leak-signature-0f2b4d6a8c',
  authorization: 'leak-authorization-5e7a9c1b',
};

function capture(level: string | undefined = 'trace'): {
  write(objects: Array<Record<string, unknown>>): Promise<string>;
} {
  return {
    async write(objects) {
      const stream = new PassThrough();
      const chunks: Buffer[] = [];
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      const logger = createLogger({ destination: stream, ...(level === undefined ? {} : { level }) });
      for (const object of objects) logger.info(object, 'config and request details');
      logger.flush();
      await new Promise((resolve) => setImmediate(resolve));
      return Buffer.concat(chunks).toString('utf8');
    },
  };
}

/** Config sections as the parsed config holds them, with every secret field filled in. */
const serverSection = { host: '127.0.0.1', port: 8080, secret: SECRETS.hookSecret, allowLegacySha1: false };
const targetSection = {
  url: 'sftp://erp@sftp.example.com:22/inbound',
  hostKey: 'SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA',
  password: SECRETS.sftpPassword,
  privateKey: SECRETS.sftpPrivateKey,
  passphrase: SECRETS.sftpPassphrase,
};
const rossumSection = {
  baseUrl: 'https://example.rossum.app/api',
  token: SECRETS.rossumToken,
  username: 'api@example.com',
  password: SECRETS.rossumPassword,
};
const ledgerSection = { url: `postgres://bridge:${SECRETS.postgresPassword}@db.example.com:5432/bridge` };
const hookPayload = {
  rossum_authorization_token: SECRETS.payloadToken,
  secrets: { username: 'erp', password: SECRETS.hookSecretsValue },
};
const request = {
  req: {
    method: 'POST',
    headers: {
      authorization: `Bearer ${SECRETS.authorization}`,
      'x-rossum-signature-sha256': `sha256=${SECRETS.signature}`,
      'x-elis-signature': `sha1=${SECRETS.signature}`,
    },
  },
};

describe('log redaction', () => {
  it('no secret the config or a webhook call carries reaches the log, at the top level or one level down', async () => {
    const sections = [serverSection, targetSection, rossumSection, ledgerSection, hookPayload];
    const objects = [
      ...sections,
      ...sections.map((section) => ({ context: section })),
      request,
      {
        server: serverSection,
        target: targetSection,
        rossum: rossumSection,
        ledger: ledgerSection,
        payload: hookPayload,
      },
    ];
    const output = await capture().write(objects);
    // The capture really holds the log lines (so an empty output cannot pass).
    expect(output.split('\n').filter(Boolean).length).toBe(objects.length);
    expect(output).toContain('[redacted]');
    for (const [name, value] of Object.entries(SECRETS)) {
      const needle = name === 'sftpPrivateKey' ? 'leak-private-key-body-3f7b1d' : value;
      expect(output.includes(needle), `${name} leaked into the log`).toBe(false);
    }
  });

  it('no secret reaches the log however deep it sits (a whole config logged at once, arrays, headers)', async () => {
    const config = {
      server: serverSection,
      targets: { erp: targetSection, backup: { ...targetSection, url: `sftp://b:${SECRETS.sftpPassword}@h/in` } },
      rossum: rossumSection,
      ledger: ledgerSection,
    };
    const objects = [
      { startup: { config } },
      { calls: [{ payload: hookPayload }, { request }] },
      { level1: { level2: { level3: { level4: { level5: { secret: SECRETS.hookSecret } } } } } },
    ];
    const output = await capture().write(objects);
    expect(output.split('\n').filter(Boolean).length).toBe(objects.length);
    for (const [name, value] of Object.entries(SECRETS)) {
      const needle = name === 'sftpPrivateKey' ? 'leak-private-key-body-3f7b1d' : value;
      expect(output.includes(needle), `${name} leaked into the log`).toBe(false);
    }
    // Blanked where they were, the rest kept: the walk does not drop what is not secret.
    const [first] = output.split('\n').map((line) => (line ? (JSON.parse(line) as Record<string, unknown>) : {}));
    expect(first).toMatchObject({
      startup: {
        config: {
          targets: {
            erp: { password: '[redacted]', hostKey: targetSection.hostKey, url: targetSection.url },
            backup: { url: 'sftp://b:[redacted]@h/in' },
          },
          rossum: { token: '[redacted]', username: 'api@example.com' },
          ledger: { url: 'postgres://bridge:[redacted]@db.example.com:5432/bridge' },
        },
      },
    });
  });

  it("leaves the logged object itself untouched (the walk copies, never edits the caller's data)", async () => {
    const object = { outer: { inner: { password: SECRETS.sftpPassword, port: 22 } } };
    const output = await capture().write([object]);
    expect(object.outer.inner.password).toBe(SECRETS.sftpPassword);
    // Two levels down, where pino's own paths stop: blanked by the walk, the rest of the object kept.
    expect(JSON.parse(output)).toMatchObject({ outer: { inner: { password: '[redacted]', port: 22 } } });
  });

  it('walks nulls, arrays, cycles and deep nesting without losing what is not secret', async () => {
    const cyclic: Record<string, unknown> = { name: 'erp', password: SECRETS.sftpPassword };
    cyclic.self = cyclic;
    let deep: Record<string, unknown> = { secret: SECRETS.hookSecret, kept: 'bottom' };
    for (let level = 0; level < 30; level++) deep = { level, child: deep };
    const objects = [
      { a: { b: { c: null, d: 0, e: '', f: [null, 1, 'x'] } } },
      { list: [{ keep: 1 }, { inner: { token: SECRETS.rossumToken } }, 'plain', 7] },
      { wrapper: { cyclic } },
      { deep },
      // A bare headers object: the signature keys sit one level down, outside pino's own paths.
      { headers: request.req.headers },
    ];
    const output = await capture().write(objects);
    for (const [name, value] of Object.entries(SECRETS)) expect(output.includes(value), `${name} leaked`).toBe(false);
    const lines = output
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(lines).toHaveLength(objects.length);
    expect(lines[0]).toMatchObject({ a: { b: { c: null, d: 0, e: '', f: [null, 1, 'x'] } } });
    expect(lines[1]?.list).toEqual([{ keep: 1 }, { inner: { token: '[redacted]' } }, 'plain', 7]);
    expect(lines[2]).toMatchObject({
      wrapper: { cyclic: { name: 'erp', password: '[redacted]', self: '[Circular]' } },
    });
    expect(output).toContain('"kept":"bottom"');
  });

  it('keeps URLs readable and blanks only the password inside them', async () => {
    const output = await capture().write([
      ledgerSection,
      { url: 'sftp://erp@sftp.example.com/inbound' },
      { target: { url: ` postgres://u:${SECRETS.postgresPassword}@h/db` } },
      { url: { href: `postgres://u:${SECRETS.postgresPassword}@h/db` } },
      { url: `sftp://a:${SECRETS.sftpPassword}@h1/in sftp://b:${SECRETS.sftpPassphrase}@h2/in` },
    ]);
    expect(output).toContain('postgres://bridge:[redacted]@db.example.com:5432/bridge');
    expect(output).toContain('sftp://erp@sftp.example.com/inbound');
    expect(output).toContain(' postgres://u:[redacted]@h/db');
    // A url that is not a string (an object with the URL inside) is blanked as a whole.
    expect(JSON.parse(output.trim().split('\n')[3] as string).url).toBe('[redacted]');
    expect(output).not.toContain(SECRETS.postgresPassword);
    // Every URL in the string, not only the first.
    expect(output).toContain('sftp://a:[redacted]@h1/in sftp://b:[redacted]@h2/in');
  });

  it('writes JSON lines tagged with the service, at the configured level (LOG_LEVEL, else info)', async () => {
    const lines = async (level: string | undefined) => {
      const stream = new PassThrough();
      const chunks: Buffer[] = [];
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      const logger = createLogger({ destination: stream, ...(level === undefined ? {} : { level }) });
      logger.trace('t');
      logger.debug('d');
      logger.info('i');
      logger.flush();
      await new Promise((resolve) => setImmediate(resolve));
      return Buffer.concat(chunks)
        .toString('utf8')
        .split('\n')
        .filter(Boolean)
        .map((line) => JSON.parse(line) as { msg: string; service: string });
    };
    const saved = process.env.LOG_LEVEL;
    try {
      delete process.env.LOG_LEVEL;
      expect((await lines('trace')).map((line) => line.msg)).toEqual(['t', 'd', 'i']);
      expect((await lines(undefined)).map((line) => line.msg)).toEqual(['i']);
      expect((await lines(undefined))[0]?.service).toBe('rossum-sftp-bridge');
      process.env.LOG_LEVEL = 'debug';
      expect((await lines(undefined)).map((line) => line.msg)).toEqual(['d', 'i']);
      expect((await lines('trace')).map((line) => line.msg)).toEqual(['t', 'd', 'i']);
    } finally {
      if (saved === undefined) delete process.env.LOG_LEVEL;
      else process.env.LOG_LEVEL = saved;
    }
    expect(silentLogger().level).toBe('silent');
  });
});

interface JsonSchemaNode {
  type?: string | string[];
  enum?: unknown[];
  description?: string;
  properties?: Record<string, JsonSchemaNode>;
  additionalProperties?: JsonSchemaNode | boolean;
  items?: JsonSchemaNode;
  anyOf?: JsonSchemaNode[];
  oneOf?: JsonSchemaNode[];
  allOf?: JsonSchemaNode[];
}

interface Field {
  path: string;
  key: string;
  description: string;
  isString: boolean;
}

function fieldsOf(node: JsonSchemaNode, path: string[] = []): Field[] {
  const fields: Field[] = [];
  for (const branch of [...(node.anyOf ?? []), ...(node.oneOf ?? []), ...(node.allOf ?? [])])
    fields.push(...fieldsOf(branch, path));
  for (const [key, child] of Object.entries(node.properties ?? {})) {
    const types = [child.type, ...(child.anyOf ?? []).map((branch) => branch.type)].flat();
    fields.push({
      path: [...path, key].join('.'),
      key,
      description: child.description ?? '',
      isString: types.includes('string') && child.enum === undefined,
    });
    fields.push(...fieldsOf(child, [...path, key]));
  }
  if (typeof node.additionalProperties === 'object')
    fields.push(...fieldsOf(node.additionalProperties, [...path, '*']));
  if (node.items) fields.push(...fieldsOf(node.items, [...path, '[]']));
  return fields;
}

// A field is secret when its name says so, or its description tells the operator to keep it out of the file.
const SECRET_NAME = /(secret|password|passphrase|token|privatekey|apikey)$/i;
const SECRET_DESCRIPTION = /never commit|\$\{ENV\}|private key \(|shared secret/i;
const URL_WITH_PASSWORD = /:\/\/[^\s/@]*:[^\s/@]*@/;
/** Fields whose name or description looks secret but whose value is not (say why). */
const NOT_SECRET: Record<string, string> = {
  'targets.*.privateKeyPath': 'a file path; the key itself is read from the file and never logged',
};

describe('the redaction list covers the config schema', () => {
  const fields = fieldsOf(
    z.toJSONSchema(bridgeConfigSchema, { io: 'input', unrepresentable: 'any' }) as JsonSchemaNode,
  ).filter((field) => field.isString);

  it('every secret-looking config field is redacted at the top level and one level down', () => {
    const secretFields = fields.filter(
      (field) =>
        !(field.path in NOT_SECRET) && (SECRET_NAME.test(field.key) || SECRET_DESCRIPTION.test(field.description)),
    );
    // The config knows at least these; a schema walk that found nothing would prove nothing.
    expect(secretFields.map((field) => field.path)).toEqual(
      expect.arrayContaining([
        'server.secret',
        'targets.*.password',
        'targets.*.privateKey',
        'targets.*.passphrase',
        'rossum.token',
        'rossum.password',
      ]),
    );
    const missing = secretFields
      .filter((field) => !REDACTED_PATHS.includes(field.key) || !REDACTED_PATHS.includes(`*.${field.key}`))
      .map((field) => field.path);
    expect(missing, 'secret config fields missing from REDACTED_PATHS').toEqual([]);
  });

  it('every config field documented as a URL with user:password has its password blanked when logged', async () => {
    const urlFields = fields.filter((field) => URL_WITH_PASSWORD.test(field.description));
    expect(urlFields.map((field) => field.path)).toContain('ledger.url');
    for (const field of urlFields) {
      const output = await capture().write([{ [field.key]: `postgres://user:${SECRETS.postgresPassword}@host/db` }]);
      expect(output.includes(SECRETS.postgresPassword), `${field.path}: password inside the URL leaked`).toBe(false);
    }
  });
});
