import type { BridgeConfig } from '../config/index.ts';
import { describeError } from '../errors.ts';
import { RossumAdminApi, RossumApiError, type RossumHook } from '../rossum/index.ts';
import { findHook, HOOK_EVENTS, routeQueues, secretState, webhookUrlOf } from './hook.ts';
import type { CheckResult } from './report.ts';

/** Rossum's documented maximum for any API token (162 h). */
const MAX_TOKEN_LIFETIME_H = 162;

/** The admin API of the config's `rossum` section, or why there is none. */
export function adminApiOf(config: BridgeConfig): { api: RossumAdminApi } | { missing: string; fix: string } {
  if (config.rossum === undefined) {
    return {
      missing: 'the config has no rossum section',
      fix: 'add rossum.baseUrl (https://<org>.rossum.app/api) and rossum.token or username/password; the acks process needs them too',
    };
  }
  if (config.rossum.baseUrl === undefined) {
    return {
      missing: 'rossum.baseUrl is not set (the API root is otherwise taken from each export payload)',
      fix: 'set rossum.baseUrl to https://<org>.rossum.app/api',
    };
  }
  const extraSecrets = config.server.secret === undefined ? [] : [config.server.secret];
  return { api: new RossumAdminApi({ config: config.rossum, apiRoot: config.rossum.baseUrl, extraSecrets }) };
}

/** Credentials (and how long they live), read access to each routed queue, and the hook that calls this bridge. */
export async function checkRossum(config: BridgeConfig): Promise<CheckResult[]> {
  const found = adminApiOf(config);
  if ('missing' in found) {
    return [
      {
        area: 'rossum',
        subject: 'API',
        check: 'credentials',
        status: 'skip',
        detail: `not checked: ${found.missing}`,
        fix: found.fix,
      },
      {
        area: 'hook',
        subject: webhookUrlOf(config) ?? '(no server.publicUrl)',
        check: 'registered',
        status: 'skip',
        detail: `not checked: ${found.missing}`,
        fix: found.fix,
      },
    ];
  }
  const { api } = found;
  const results: CheckResult[] = [];
  const subject = api.apiRoot;
  try {
    const user = await api.currentUser();
    const who = user.username ?? user.email ?? `user ${user.id}`;
    const lifetime =
      api.authentication === 'login'
        ? `logged in with username/password; such a key lives up to ${MAX_TOKEN_LIFETIME_H} h and is renewed by logging in again`
        : `Rossum does not say when a token expires: at most ${MAX_TOKEN_LIFETIME_H} h after it was issued, so renew it before then (POST /v1/auth/token) or use username/password`;
    results.push({
      area: 'rossum',
      subject,
      check: 'credentials',
      status: 'ok',
      detail: `accepted for ${who}; ${lifetime}`,
    });
  } catch (error) {
    results.push({
      area: 'rossum',
      subject,
      check: 'credentials',
      status: 'fail',
      detail: describeError(error),
      fix: credentialsFix(error),
    });
    results.push({
      area: 'hook',
      subject: webhookUrlOf(config) ?? '(no server.publicUrl)',
      check: 'registered',
      status: 'skip',
      detail: 'not checked: the Rossum API refused or did not answer',
    });
    return results;
  }

  const queues = routeQueues(config);
  if (queues.length === 0)
    results.push({
      area: 'rossum',
      subject,
      check: 'queues',
      status: 'skip',
      detail: 'the routes name no queue (a fallback route takes every export)',
    });
  for (const id of queues) {
    try {
      const queue = await api.queue(id);
      results.push({
        area: 'rossum',
        subject: `queue ${id}`,
        check: 'readable',
        status: 'ok',
        detail: `${queue.name ?? 'unnamed'} (routes send its exports here)`,
      });
    } catch (error) {
      results.push({
        area: 'rossum',
        subject: `queue ${id}`,
        check: 'readable',
        status: 'fail',
        detail: describeError(error),
        fix: `give the API user access to queue ${id} in Rossum, or correct the routes' queues in the config`,
      });
    }
  }
  results.push(...(await checkHook(config, api, queues)));
  return results;
}

function credentialsFix(error: unknown): string {
  if (error instanceof RossumApiError) {
    if (error.code === 'ROSSUM_UNAUTHORIZED')
      return 'the token is invalid or expired: issue a new one (or set rossum.username/password so the bridge logs in itself)';
    if (error.code === 'ROSSUM_LOGIN_FAILED')
      return 'Rossum refused rossum.username/password: check them (a dedicated API user is recommended)';
    if (error.code === 'ROSSUM_UNREACHABLE' || error.code === 'ROSSUM_TIMEOUT')
      return 'check rossum.baseUrl and that this machine reaches it (proxy, firewall)';
    if (error.code === 'ROSSUM_REQUEST_REJECTED') return 'check that rossum.baseUrl is the API root ending in /api';
  }
  return 'check the rossum section of the config';
}

async function checkHook(config: BridgeConfig, api: RossumAdminApi, queues: number[]): Promise<CheckResult[]> {
  const url = webhookUrlOf(config);
  if (url === undefined) {
    return [
      {
        area: 'hook',
        subject: '(no server.publicUrl)',
        check: 'registered',
        status: 'fail',
        detail: 'server.publicUrl is not set, so the hook that should call this bridge cannot be recognised',
        fix: 'set server.publicUrl to the base URL Rossum reaches this server at',
      },
    ];
  }
  const result = (check: string, status: CheckResult['status'], detail: string, fix?: string): CheckResult => ({
    area: 'hook',
    subject: url,
    check,
    status,
    detail,
    ...(fix ? { fix } : {}),
  });
  const install = `rossum-sftp-bridge hook install${queues.length ? ` --queue ${queues.join(' ')}` : ' --queue ID'}`;
  let hooks: RossumHook[];
  try {
    hooks = await api.listHooks();
  } catch (error) {
    return [
      result(
        'registered',
        'fail',
        `cannot list Rossum's hooks: ${describeError(error)}`,
        'the API user needs permission to read hooks (an admin or organisation-group user)',
      ),
    ];
  }
  const hook = findHook(hooks, { url });
  if (!hook) {
    return [
      result(
        'registered',
        'fail',
        `no Rossum hook calls ${url} (${hooks.length} hook(s) in the organisation)`,
        `run \`${install}\``,
      ),
    ];
  }
  const results = [
    hook.active
      ? result('registered', 'ok', `hook ${hook.id} "${hook.name}"`)
      : result(
          'registered',
          'fail',
          `hook ${hook.id} "${hook.name}" is inactive: Rossum does not call it`,
          `activate it: \`${install}\``,
        ),
  ];
  const events = HOOK_EVENTS.filter((event) => !hook.events.includes(event));
  results.push(
    events.length === 0
      ? result('events', 'ok', hook.events.join(', '))
      : result(
          'events',
          'fail',
          `${events.join(', ')} missing (it has ${hook.events.join(', ') || 'none'}): Rossum never calls the bridge on export`,
          `run \`${install}\``,
        ),
  );
  const secret = config.server.secret;
  if (secret === undefined) {
    results.push(
      result(
        'secret',
        'fail',
        'server.secret is not set: the bridge cannot check that calls come from Rossum',
        'set server.secret (use ${ENV}), then run hook install',
      ),
    );
  } else {
    const state = secretState(hook, secret);
    if (state === 'matches') results.push(result('secret', 'ok', 'config.secret matches server.secret'));
    else if (state === 'unreadable')
      results.push(
        result(
          'secret',
          'skip',
          'Rossum did not return config.secret, so it cannot be compared',
          `if exports fail with 401, run \`${install}\` after changing a hook setting, or set the secret in Rossum's hook settings`,
        ),
      );
    else {
      results.push(
        result(
          'secret',
          'fail',
          state === 'missing'
            ? 'the hook has no secret: calls are unsigned and the bridge refuses them (401)'
            : "the hook's config.secret differs from server.secret: the bridge refuses every export call (401)",
          `run \`${install}\` to set the hook's secret from server.secret (or put the hook's secret into server.secret)`,
        ),
      );
    }
  }
  const attached = new Set(hook.queues.map((queueUrl) => /\/queues\/(\d+)\/?$/.exec(queueUrl)?.[1]));
  const missing = queues.filter((id) => !attached.has(String(id)));
  if (queues.length > 0) {
    results.push(
      missing.length === 0
        ? result('queues', 'ok', `attached to every routed queue (${queues.join(', ')})`)
        : result(
            'queues',
            'fail',
            `not attached to queue(s) ${missing.join(', ')} that the routes name: their exports never reach the bridge`,
            `run \`${install}\``,
          ),
    );
  }
  return results;
}

/**
 * Fencing of outcome delivery holds only if a write to Rossum lands within the lease renewed before
 * it: a lease shorter than the request timeout lets another replica take over an outcome whose write
 * is still on its way, and both write the annotation.
 */
export function checkOutcomeLease(config: BridgeConfig): CheckResult {
  const leaseMs = config.acks.delivery.leaseMs;
  const base = { area: 'rossum' as const, subject: 'acks.delivery.leaseMs', check: 'outcome lease' };
  if (config.rossum === undefined) {
    return { ...base, status: 'skip', detail: 'not checked: the config has no rossum section (no API writes)' };
  }
  const { timeoutMs } = config.rossum;
  if (leaseMs > timeoutMs) {
    return { ...base, status: 'ok', detail: `${leaseMs} ms, above rossum.timeoutMs (${timeoutMs} ms)` };
  }
  return {
    ...base,
    status: 'fail',
    detail: `${leaseMs} ms is not above rossum.timeoutMs (${timeoutMs} ms): a write to Rossum can outlive the lease, and a replica that took the outcome over writes it again`,
    fix: `raise acks.delivery.leaseMs above ${timeoutMs} (e.g. ${2 * timeoutMs}) or lower rossum.timeoutMs`,
  };
}
