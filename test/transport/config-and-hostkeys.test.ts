import { createHmac, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { hostFieldMatches, parseKnownHosts, verifyHostKey } from '../../src/transport/hostkey.ts';
import { containedPath, versionedName } from '../../src/transport/paths.ts';
import { fingerprintOfKey, parseTargetUrl, targetConfigSchema } from '../../src/transport/index.ts';

interface JsonSchema {
  description?: string;
  properties?: Record<string, JsonSchema>;
}

const KEY = 'AAAAC3NzaC1lZDI1NTE5AAAAIDNWS0yTGj3Ol3lJVmE3dfsY6AwD1vbo9k5wUMIiCq1N';
const FP = fingerprintOfKey(KEY);

describe('target config', () => {
  it('fills defaults for pool, upload and retry', () => {
    const config = targetConfigSchema.parse({ url: 'sftp://erp@10.0.0.5:2222/inbound', hostKey: FP, password: 'x' });
    expect(config.pool).toMatchObject({ size: 4, maxConcurrentHandshakes: 2 });
    expect(config.upload).toMatchObject({
      tempPrefix: '.',
      tempSuffix: '.part',
      tempDir: null,
      verifySize: true,
      createDirs: true,
      rename: 'auto',
    });
    expect(config.retry.attempts).toBeGreaterThan(0);
    expect(config.credentials).toBe('config');
  });

  it('requires a host key (or known_hosts) for sftp unless insecureAcceptAnyHostKey is set', () => {
    const missing = targetConfigSchema.safeParse({ url: 'sftp://erp@h/in', password: 'x' });
    expect(missing.success).toBe(false);
    expect(missing.error?.issues[0]?.path).toEqual(['hostKey']);
    expect(
      targetConfigSchema.safeParse({ url: 'sftp://erp@h/in', password: 'x', insecureAcceptAnyHostKey: true }).success,
    ).toBe(true);
    expect(targetConfigSchema.safeParse({ url: 'file:///mnt/share' }).success).toBe(true);
  });

  it('rejects unknown keys, malformed fingerprints and passwords in the URL', () => {
    expect(targetConfigSchema.safeParse({ url: 'file:///x', pool: { sise: 3 } }).success).toBe(false);
    expect(targetConfigSchema.safeParse({ url: 'sftp://e@h/in', hostKey: 'MD5:aa', password: 'x' }).success).toBe(
      false,
    );
    expect(targetConfigSchema.safeParse({ url: 'sftp://e:secret@h/in', hostKey: FP }).success).toBe(false);
    expect(targetConfigSchema.safeParse({ url: 'ftp://h/in' }).success).toBe(false);
  });

  it('every field carries a description (one declaration feeds docs and the JSON schema)', () => {
    const schema = z.toJSONSchema(targetConfigSchema, { io: 'input', unrepresentable: 'any' }) as JsonSchema;
    const undocumented: string[] = [];
    const walk = (node: JsonSchema, path: string): void => {
      for (const [key, child] of Object.entries(node.properties ?? {})) {
        if (!child.description) undocumented.push(`${path}${key}`);
        walk(child, `${path}${key}.`);
      }
    };
    walk(schema, '');
    expect(undocumented).toEqual([]);
  });

  it('parses sftp URLs: absolute folders, home-relative folders and default port', () => {
    expect(parseTargetUrl('sftp://erp@10.0.0.5:2222/data/inbound/')).toEqual({
      ok: true,
      value: { scheme: 'sftp', host: '10.0.0.5', port: 2222, username: 'erp', dir: '/data/inbound' },
    });
    expect(parseTargetUrl('sftp://erp@host/~/inbound')).toMatchObject({
      ok: true,
      value: { port: 22, dir: 'inbound' },
    });
    expect(parseTargetUrl('sftp://erp@host/~')).toMatchObject({ ok: true, value: { dir: '.' } });
    expect(parseTargetUrl('file:///mnt/erp%20share/in')).toEqual({
      ok: true,
      value: { scheme: 'file', dir: '/mnt/erp share/in' },
    });
  });
});

describe('known_hosts', () => {
  it('matches plain names, [host]:port, comma lists, wildcards and negations', () => {
    expect(hostFieldMatches('erp.example,10.0.0.5', '10.0.0.5', 22)).toBe(true);
    expect(hostFieldMatches('[10.0.0.5]:2222', '10.0.0.5', 2222)).toBe(true);
    expect(hostFieldMatches('10.0.0.5', '10.0.0.5', 2222)).toBe(false);
    expect(hostFieldMatches('*.example', 'erp.example', 22)).toBe(true);
    expect(hostFieldMatches('*.example,!bad.example', 'bad.example', 22)).toBe(false);
  });

  it('matches hashed |1|salt|hash entries', () => {
    const salt = randomBytes(20);
    const hash = createHmac('sha1', salt).update('[10.0.0.5]:2222').digest('base64');
    const field = `|1|${salt.toString('base64')}|${hash}`;
    expect(hostFieldMatches(field, '10.0.0.5', 2222)).toBe(true);
    expect(hostFieldMatches(field, '10.0.0.6', 2222)).toBe(false);
  });

  it('skips comments, blank lines, unknown markers and malformed lines; keeps @revoked and @cert-authority apart', () => {
    const entries = parseKnownHosts(
      `# c\n\n@weird h ssh-ed25519 ${KEY}\nbroken-line\nh ssh-rsa ${KEY}\nh ssh-ed25519 ${KEY}\n@revoked x ssh-ed25519 ${KEY}\n@cert-authority *.e ssh-ed25519 ${KEY}\n`,
    );
    expect(entries.map((e) => [e.marker, e.hosts, e.line])).toEqual([
      [undefined, 'h', 6],
      ['revoked', 'x', 7],
      ['cert-authority', '*.e', 8],
    ]);
  });

  it('a cert-authority line never counts as the host key itself', () => {
    const entries = parseKnownHosts(`@cert-authority * ssh-ed25519 ${KEY}\n`);
    const verdict = verifyHostKey({ knownHosts: { entries, source: 'kh' } }, 'h', 22, Buffer.from(KEY, 'base64'));
    expect(verdict).toMatchObject({ ok: false, reason: 'unknown', presented: FP });
  });
});

describe('paths', () => {
  it('normalizes harmless forms and versions names before the last extension', () => {
    expect(containedPath('./a//b/./c.xml', 'h')).toBe('a/b/c.xml');
    expect(versionedName('d/inv.xml', 2)).toBe('d/inv_v2.xml');
    expect(versionedName('README', 3)).toBe('README_v3');
    expect(versionedName('.hidden', 2)).toBe('.hidden_v2');
  });
});
