import type { Command } from 'commander';
import { configPath, loadConfig, type BridgeConfig } from '../../config/index.ts';
import {
  adminApiOf,
  DEFAULT_HOOK_NAME,
  describeHook,
  findHook,
  hookSpec,
  installHook,
  routeQueues,
  webhookUrlOf,
} from '../../doctor/index.ts';
import { BridgeError } from '../../errors.ts';
import type { RossumAdminApi } from '../../rossum/index.ts';

interface HookOptions {
  config?: string;
  url?: string;
  name?: string;
  json?: boolean;
}

interface InstallOptions extends HookOptions {
  queue?: string[];
  tokenOwner?: string;
}

export function register(program: Command): void {
  const hook = program
    .command('hook')
    .description('The Rossum webhook that calls this bridge: set it up (install) or see what Rossum has (show)');
  hook
    .command('install')
    .description(
      "Create or update the Rossum hook: event annotation_content.export, URL, secret (server.secret), timeout and retries; idempotent (nothing is sent when Rossum already has it). The hook's queues become exactly the ones given",
    )
    .option('-q, --queue <ids...>', 'queue ids the hook runs on (default: the queues named in the routes)')
    .option('--url <url>', 'webhook URL (default: server.publicUrl + /webhooks/rossum)')
    .option('--name <name>', `hook name (default: ${DEFAULT_HOOK_NAME})`)
    .option(
      '--token-owner <userUrl>',
      'user URL whose API token Rossum adds to each call (only needed for document downloads during the export)',
    )
    .option('-c, --config <path>', 'config file (default: $BRIDGE_CONFIG or ./bridge.yaml)')
    .option('--json', 'print the result as JSON')
    .action(async (options: InstallOptions) => {
      const { config } = loadConfig(configPath(options.config));
      const api = apiOf(config);
      const queues = options.queue === undefined ? routeQueues(config) : options.queue.map(parseQueueId);
      const spec = hookSpec(config, api, {
        queues,
        ...(options.url !== undefined ? { url: options.url } : {}),
        ...(options.name !== undefined ? { name: options.name } : {}),
        ...(options.tokenOwner !== undefined ? { tokenOwner: options.tokenOwner } : {}),
      });
      const result = await installHook(api, spec);
      if (options.json) {
        process.stdout.write(
          `${JSON.stringify({ action: result.action, changes: result.changes, notes: result.notes, hook: describeHook(result.hook, config.server.secret) }, null, 2)}\n`,
        );
        return;
      }
      const what = `hook ${result.hook.id} "${result.hook.name}" → ${spec.url} on queue(s) ${queues.join(', ')}`;
      const line =
        result.action === 'create'
          ? `created ${what}`
          : result.action === 'update'
            ? `updated ${what}: ${result.changes.join(', ')}`
            : `unchanged: ${what}`;
      process.stdout.write(`${line}\n${result.notes.map((note) => `note: ${note}\n`).join('')}`);
    });
  hook
    .command('show')
    .description(
      'Print the hook Rossum has for this bridge (found by URL, else by name); the secret is never printed, only whether it matches server.secret',
    )
    .option('--url <url>', 'webhook URL (default: server.publicUrl + /webhooks/rossum)')
    .option('--name <name>', `hook name (default: ${DEFAULT_HOOK_NAME})`)
    .option('-c, --config <path>', 'config file (default: $BRIDGE_CONFIG or ./bridge.yaml)')
    .option('--json', 'print JSON')
    .action(async (options: HookOptions) => {
      const { config } = loadConfig(configPath(options.config));
      const api = apiOf(config);
      const url = options.url ?? webhookUrlOf(config);
      const name = options.name ?? DEFAULT_HOOK_NAME;
      const hooks = await api.listHooks();
      const found = findHook(hooks, { url: url ?? '', name });
      const shown = found ? describeHook(found, config.server.secret) : null;
      if (options.json) {
        process.stdout.write(`${JSON.stringify({ hook: shown, hooksInOrganisation: hooks.length }, null, 2)}\n`);
      } else if (!shown) {
        process.stdout.write(
          `no hook calls ${url ?? '(no server.publicUrl)'} or is named "${name}" (${hooks.length} hook(s) in the organisation)\n`,
        );
      } else {
        process.stdout.write(
          `${Object.entries(shown)
            .map(([key, value]) => `${key}: ${typeof value === 'string' ? value : JSON.stringify(value)}`)
            .join('\n')}\n`,
        );
      }
      if (!shown) process.exitCode = 1;
    });
}

function apiOf(config: BridgeConfig): RossumAdminApi {
  const found = adminApiOf(config);
  if ('missing' in found)
    throw new BridgeError('ROSSUM_CONFIG_INVALID', `${found.missing}: ${found.fix}`, { permanent: true });
  return found.api;
}

function parseQueueId(value: string): number {
  const id = Number(value);
  if (!Number.isSafeInteger(id) || id <= 0)
    throw new BridgeError('BAD_ARGUMENT', `--queue "${value}" is not a queue id`, { permanent: true });
  return id;
}
