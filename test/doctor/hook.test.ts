import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/index.ts';
import { adminApiOf, hookSpec, installHook, planHook } from '../../src/doctor/index.ts';
import type { RossumAdminApi } from '../../src/rossum/index.ts';
import { RossumHooksApi } from '../support/rossum-hooks-api.ts';
import { cli, HOOK_SECRET, WEBHOOK_URL, writeHookConfig } from './helpers.ts';

let rossum: RossumHooksApi;

beforeAll(async () => {
  rossum = await RossumHooksApi.start();
});
afterAll(async () => {
  await rossum?.close();
});
beforeEach(() => {
  rossum.hooks.clear();
  rossum.calls.length = 0;
});

function apiFor(path: string): { api: RossumAdminApi; config: ReturnType<typeof loadConfig>['config'] } {
  const { config } = loadConfig(path);
  const found = adminApiOf(config);
  if ('missing' in found) throw new Error(found.missing);
  return { api: found.api, config };
}

describe('hook install', () => {
  it('creates the hook once, and a second run leaves it unchanged without any PATCH', async () => {
    const path = writeHookConfig(rossum, { token: rossum.issueToken() });
    const first = await cli(['hook', 'install', '--config', path, '--queue', '12', '11']);
    expect(first.stderr).toBe('');
    expect(first.code).toBe(0);
    expect(first.stdout).toMatch(
      /^created hook \d+ "rossum-sftp-bridge" → https:\/\/bridge\.example\.com\/webhooks\/rossum on queue\(s\) 12, 11$/m,
    );
    expect(rossum.callsTo('POST', '/v1/hooks')).toHaveLength(1);
    expect(rossum.callsTo('POST', '/v1/hooks')[0]!.body).toEqual({
      name: 'rossum-sftp-bridge',
      type: 'webhook',
      active: true,
      events: ['annotation_content.export'],
      queues: [rossum.queueUrl(11), rossum.queueUrl(12)],
      config: { url: WEBHOOK_URL, secret: HOOK_SECRET, timeout_s: 30, retry_count: 4, retry_on_any_non_2xx: false },
    });
    expect(first.stdout).not.toContain(HOOK_SECRET);

    const second = await cli(['hook', 'install', '--config', path, '--queue', '11', '12']);
    expect(second.code).toBe(0);
    expect(second.stdout).toMatch(/^unchanged: hook \d+ "rossum-sftp-bridge"/m);
    expect(rossum.writes()).toHaveLength(1);
    expect(rossum.callsTo('PATCH', '/v1/hooks')).toEqual([]);
    expect(rossum.hooks.size).toBe(1);
  }, 120_000);

  it('finds its hook on a later page of a long list instead of creating a second one', async () => {
    for (let i = 0; i < 130; i++)
      rossum.addHook({ name: `other-${i}`, config: { url: `https://elsewhere.example.com/${i}` } });
    const path = writeHookConfig(rossum, { token: rossum.issueToken() });
    const { api, config } = apiFor(path);
    const spec = hookSpec(config, api, { queues: [11, 12] });
    const created = await installHook(api, spec);
    expect(created.action).toBe('create');
    rossum.calls.length = 0;

    const again = await installHook(api, spec);
    expect(again).toMatchObject({ action: 'unchanged', hook: { id: created.hook.id } });
    // 131 hooks at 100 per page: the second page holds ours, reached through pagination.next.
    expect(rossum.callsTo('GET', '/v1/hooks').map((call) => call.path)).toEqual([
      '/v1/hooks?page_size=100',
      '/v1/hooks?page=2&page_size=100',
    ]);
    expect(rossum.writes()).toEqual([]);
    expect(rossum.hooks.size).toBe(131);
  });

  it('patches only what differs, keeping the rest of the hook config, with the secret always sent along', async () => {
    const existing = rossum.addHook({
      name: 'rossum-sftp-bridge',
      queues: [rossum.queueUrl(11), rossum.queueUrl(12)],
      config: {
        url: WEBHOOK_URL,
        secret: HOOK_SECRET,
        timeout_s: 10,
        retry_count: 4,
        retry_on_any_non_2xx: false,
        insecure_ssl: false,
      },
    });
    const path = writeHookConfig(rossum, { username: 'admin@example.com', password: 'admin password 123' });
    const { api, config } = apiFor(path);
    const result = await installHook(api, hookSpec(config, api, { queues: [11, 12] }));
    expect(result).toMatchObject({ action: 'update', changes: ['config.timeout_s'] });
    const patches = rossum.callsTo('PATCH', `/v1/hooks/${existing.id}`);
    expect(patches).toHaveLength(1);
    expect(patches[0]!.body).toEqual({
      config: {
        url: WEBHOOK_URL,
        secret: HOOK_SECRET,
        timeout_s: 30,
        retry_count: 4,
        retry_on_any_non_2xx: false,
        insecure_ssl: false,
      },
    });
    expect(rossum.hooks.get(existing.id)!.config.timeout_s).toBe(30);
  });

  it('a hook whose secret Rossum does not return is not patched for it, and says so', async () => {
    const hidden = await RossumHooksApi.start({ revealSecrets: false });
    try {
      hidden.addHook({
        name: 'rossum-sftp-bridge',
        queues: [hidden.queueUrl(11), hidden.queueUrl(12)],
        config: { url: WEBHOOK_URL, secret: HOOK_SECRET, timeout_s: 30, retry_count: 4, retry_on_any_non_2xx: false },
      });
      const { api, config } = apiFor(writeHookConfig(hidden, { token: hidden.issueToken() }));
      const plan = planHook(hookSpec(config, api, { queues: [11, 12] }), (await api.listHooks())[0]);
      expect(plan).toMatchObject({
        action: 'unchanged',
        notes: [expect.stringContaining('did not return config.secret')],
      });
    } finally {
      await hidden.close();
    }
  });

  it('refuses to install without a secret or a URL, naming the setting', async () => {
    const path = writeHookConfig(rossum, { token: rossum.issueToken() });
    const { api, config } = apiFor(path);
    expect(() =>
      hookSpec({ ...config, server: { ...config.server, secret: undefined } }, api, { queues: [11] }),
    ).toThrow(/server\.secret is not set/);
    expect(() =>
      hookSpec({ ...config, server: { ...config.server, publicUrl: undefined } }, api, { queues: [11] }),
    ).toThrow(/set server\.publicUrl .* or pass --url/);
    expect(() => hookSpec(config, api, { queues: [] })).toThrow(/no queue/);
  });
});

describe('hook show', () => {
  it('prints what Rossum has with the secret masked, and whether it matches server.secret', async () => {
    rossum.addHook({
      name: 'rossum-sftp-bridge',
      queues: [rossum.queueUrl(11)],
      config: { url: WEBHOOK_URL, secret: HOOK_SECRET, timeout_s: 30 },
    });
    const path = writeHookConfig(rossum, { username: 'admin@example.com', password: 'admin password 123' });
    const run = await cli(['hook', 'show', '--config', path]);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain(`"url":"${WEBHOOK_URL}"`);
    expect(run.stdout).toContain(`set (${HOOK_SECRET.length} characters), matches server.secret`);
    expect(run.stdout).toMatch(/^events: \["annotation_content\.export"\]$/m);
    expect(run.stdout).not.toContain(HOOK_SECRET);
    expect(run.stdout).not.toContain('admin password 123');
    expect(rossum.writes().filter((call) => call.path !== '/v1/auth/login')).toEqual([]);
  }, 120_000);
});
