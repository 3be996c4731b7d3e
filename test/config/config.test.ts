import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkConfigFile, ConfigFileError, formatDiagnostic, loadConfig } from '../../src/config/index.ts';

const FINGERPRINT = 'SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s';

function writeConfig(text: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'rsb-config-'));
  mkdirSync(join(dir, 'mappings'));
  writeFileSync(join(dir, 'mappings', 'generic-xml.yaml'), 'format: xml\n');
  const file = join(dir, 'bridge.yaml');
  writeFileSync(file, text);
  return file;
}

const valid = `server:
  secret: \${HOOK_SECRET}
  port: 9000
ledger:
  url: sqlite:./data/ledger.db
targets:
  erp:
    url: sftp://erp@10.0.0.5:22/inbound
    hostKey: ${FINGERPRINT}
    password: \${SFTP_PASSWORD}
    privateKeyPath: keys/id_ed25519
routes:
  - queues: [8236]
    mapping: generic-xml
    target: erp
`;

function problems(file: string, env: NodeJS.ProcessEnv = {}): string[] {
  return checkConfigFile(file, env).map(formatDiagnostic);
}

describe('config file', () => {
  it('interpolates ${ENV}, applies defaults and resolves paths against the config folder', () => {
    const file = writeConfig(valid);
    const { config } = loadConfig(file, { HOOK_SECRET: 'a-very-long-hook-secret', SFTP_PASSWORD: 'pw' });
    expect(config.server).toMatchObject({
      secret: 'a-very-long-hook-secret',
      port: 9000,
      deadlineMs: 25_000,
      host: '0.0.0.0',
    });
    expect(config.targets.erp?.password).toBe('pw');
    expect(config.targets.erp?.pool.size).toBe(4);
    expect(config.ledger.url).toBe(`sqlite:${join(file, '..', 'data/ledger.db')}`);
    expect(config.targets.erp?.privateKeyPath).toBe(join(file, '..', 'keys/id_ed25519'));
    expect(config.mappingsDir).toBe(join(file, '..', 'mappings'));
  });

  it('an unset environment variable is an error at its line, naming the variable', () => {
    const file = writeConfig(valid);
    const found = problems(file, { HOOK_SECRET: 'a-very-long-hook-secret' });
    expect(found).toEqual([
      `${file}:10:15: targets.erp.password: environment variable SFTP_PASSWORD is not set (hint: export SFTP_PASSWORD=... or write \${SFTP_PASSWORD:-default})`,
    ]);
  });

  it('a typo in a key is an error with file:line:column and a "did you mean"', () => {
    const file = writeConfig(valid.replace('    hostKey:', '    hostkey:'));
    const found = problems(file, { HOOK_SECRET: 'a-very-long-hook-secret', SFTP_PASSWORD: 'x' });
    expect(found).toContain(`${file}:9:5: targets.erp.hostkey: unknown key "hostkey" (hint: did you mean "hostKey"?)`);
  });

  it('a wrong type names what was expected and what was found', () => {
    const file = writeConfig(valid.replace('port: 9000', 'port: "ninety"'));
    const found = problems(file, { HOOK_SECRET: 'a-very-long-hook-secret', SFTP_PASSWORD: 'x' });
    expect(found).toEqual([`${file}:3:9: server.port: expected number, got string "ninety"`]);
  });

  it('routes to unknown targets or mappings are errors pointing at the route', () => {
    const file = writeConfig(
      valid.replace('    target: erp', '    target: erp2').replace('mapping: generic-xml', 'mapping: datev'),
    );
    const found = problems(file, { HOOK_SECRET: 'a-very-long-hook-secret', SFTP_PASSWORD: 'x' });
    expect(found).toEqual([
      `${file}:14:14: routes[0].mapping: no mapping file "datev.yaml" in ${join(file, '..', 'mappings')} (hint: available: generic-xml)`,
      `${file}:15:13: routes[0].target: unknown target "erp2" (hint: defined targets: erp)`,
    ]);
  });

  it('an sftp target without a pinned host key is refused', () => {
    const file = writeConfig(valid.replace(`    hostKey: ${FINGERPRINT}\n`, ''));
    const found = problems(file, { HOOK_SECRET: 'a-very-long-hook-secret', SFTP_PASSWORD: 'x' });
    expect(found.join('\n')).toMatch(/hostKey.*needs hostKey \(SHA256:\.\.\. fingerprint\) or knownHosts/);
  });

  it('broken YAML is a file:line:column error, not a stack trace', () => {
    const file = writeConfig('server:\n  port: [1, 2\n');
    const error = (() => {
      try {
        loadConfig(file, {});
      } catch (caught) {
        return caught;
      }
      return undefined;
    })();
    expect(error).toBeInstanceOf(ConfigFileError);
    expect((error as Error).message).toMatch(new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:\\d+:\\d+: `));
  });

  it('a duplicate key is an error', () => {
    const file = writeConfig(valid.replace('  port: 9000', '  port: 9000\n  port: 9001'));
    expect(problems(file, { HOOK_SECRET: 'a-very-long-hook-secret', SFTP_PASSWORD: 'x' }).join('\n')).toMatch(
      /:4:3: .*(unique|duplicate)/i,
    );
  });
});
