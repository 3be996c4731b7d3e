import { readFile } from 'node:fs/promises';
import { InvalidArgumentError, type Command } from 'commander';
import { BridgeError, describeError } from '../../errors.ts';
import {
  callHook,
  HOOK_CALL_DEFAULTS,
  type AttemptRecord,
  type HookCallOptions,
  type HookCallOutcome,
  type PollRecord,
} from '../../rossum/index.ts';

export interface SendOptions {
  url: string;
  secret?: string;
  timeoutS: number;
  retryCount: number;
  retryDelayS: number;
  pollIntervalS: number;
  maxPollingTimeS: number;
  retryOnAnyNon2xx: boolean;
  retryAfterPollingFailure: boolean;
  sha1: boolean;
  json: boolean;
}

export interface SendIo {
  out: (line: string) => void;
  env: NodeJS.ProcessEnv;
  /** Injectable for tests; defaults to real waits. */
  sleep?: HookCallOptions['sleep'];
}

export function register(program: Command): void {
  program
    .command('send')
    .description(
      'Call the webhook with a payload exactly as Rossum would (signed, timeouts, retries, async polling) and print what Rossum would do with the annotation',
    )
    .argument('<payload>', 'JSON payload file, sent byte for byte (`-` reads stdin)')
    .requiredOption('--url <url>', 'webhook URL, e.g. http://127.0.0.1:8080/webhooks/rossum')
    .option(
      '--secret <secret>',
      'hook secret for X-Rossum-Signature-SHA256 (prefer $ROSSUM_HOOK_SECRET: arguments show up in process lists)',
    )
    .option(
      '--timeout-s <seconds>',
      'timeout_s of each request (0–60)',
      (v) => seconds(v, 60),
      HOOK_CALL_DEFAULTS.timeoutS,
    )
    .option(
      '--retry-count <n>',
      'retry_count (0–4): attempts = n + 1',
      (v) => integer(v, 4),
      HOOK_CALL_DEFAULTS.retryCount,
    )
    .option('--retry-delay-s <seconds>', 'wait before each retry', (v) => seconds(v), HOOK_CALL_DEFAULTS.retryDelayS)
    .option(
      '--poll-interval-s <seconds>',
      'interval between polls of a 202 + Location reply',
      (v) => seconds(v),
      HOOK_CALL_DEFAULTS.pollIntervalS,
    )
    .option(
      '--max-polling-time-s <seconds>',
      'max_polling_time_s (300 for export events)',
      (v) => seconds(v),
      HOOK_CALL_DEFAULTS.maxPollingTimeS,
    )
    .option(
      '--retry-on-any-non-2xx',
      'retry_on_any_non_2xx: retry every non-2xx reply, not only 408/429/500/502/503/504',
      false,
    )
    .option('--no-retry-after-polling-failure', 'retry_after_polling_failure off: a polling failure is final')
    .option('--sha1', 'also send the legacy X-Elis-Signature: sha1=<hex> header', false)
    .option('--json', 'print the outcome as JSON', false)
    .addHelpText(
      'after',
      '\nExit status: 0 when the annotation would be exported, 1 when it would end in failed_export, 2 on bad input.',
    )
    .action(async (payload: string, options: SendOptions) => {
      const outcome = await runSend(payload, options, {
        out: (line) => process.stdout.write(`${line}\n`),
        env: process.env,
      });
      process.exitCode = outcome.annotationStatus === 'exported' ? 0 : 1;
    });
}

export async function runSend(payloadPath: string, options: SendOptions, io: SendIo): Promise<HookCallOutcome> {
  const secret = options.secret ?? io.env.ROSSUM_HOOK_SECRET;
  if (secret === undefined || secret === '') usage('no hook secret: pass --secret or set ROSSUM_HOOK_SECRET');
  const body = await readPayload(payloadPath);
  const human = !options.json;
  const attempts = options.retryCount + 1;

  if (human) {
    if (!isJson(body)) io.out(`warning: ${payloadPath} is not valid JSON; sending it anyway, byte for byte`);
    io.out(
      `→ POST ${options.url} (${body.length} bytes, signed sha256${options.sha1 ? ' + sha1' : ''}, timeout ${options.timeoutS} s, up to ${attempts} attempt${attempts === 1 ? '' : 's'})`,
    );
  }
  const hookCallOptions: HookCallOptions = {
    url: options.url,
    body,
    secret,
    legacySha1Signature: options.sha1,
    timeoutS: options.timeoutS,
    retryCount: options.retryCount,
    retryDelayS: options.retryDelayS,
    pollIntervalS: options.pollIntervalS,
    maxPollingTimeS: options.maxPollingTimeS,
    retryOnAnyNon2xx: options.retryOnAnyNon2xx,
    retryAfterPollingFailure: options.retryAfterPollingFailure,
  };
  if (io.sleep) hookCallOptions.sleep = io.sleep;
  if (human) {
    hookCallOptions.onAttempt = (record) => io.out(attemptLine(record, attempts));
    hookCallOptions.onPoll = (_attempt, record) => io.out(pollLine(record));
  }

  let outcome: HookCallOutcome;
  try {
    outcome = await callHook(hookCallOptions);
  } catch (error) {
    if (error instanceof BridgeError && error.code === 'HOOK_CALL_OPTIONS_INVALID') usage(error.message);
    throw error;
  }

  if (options.json) {
    io.out(JSON.stringify(outcome, null, 2));
  } else {
    io.out(
      `annotation → ${outcome.annotationStatus}${outcome.annotationStatus === 'exported' ? '' : ' (operators see it in the failed export list)'}`,
    );
    if (outcome.messages.length === 0) io.out('  (no messages)');
    for (const m of outcome.messages) {
      const where = m.id === undefined || m.id === null ? '' : ` #${m.id}`;
      io.out(`  [${m.type}${where}] ${m.content}${m.origin === 'rossum' ? '  (shown by Rossum)' : ''}`);
    }
  }
  return outcome;
}

function attemptLine(record: AttemptRecord, total: number): string {
  const head = `attempt ${record.attempt}/${total}: `;
  const result =
    record.statusCode === null
      ? (record.error ?? 'failed')
      : `HTTP ${record.statusCode}${record.polls.length > 0 ? ` → ${record.resultStatusCode ?? record.error ?? '?'} after ${record.polls.length} poll${record.polls.length === 1 ? '' : 's'}` : ''}`;
  const body = record.bodyExcerpt.trim() === '' ? '' : `  ${oneLine(record.bodyExcerpt, 160)}`;
  const next = record.verdict === 'retry' ? `  — retrying in ${formatSeconds(record.retryInMs ?? 0)}` : '';
  const error = record.statusCode !== null && record.error ? `  (${record.error})` : '';
  return `${head}${result} in ${record.durationMs} ms${error}${body}${next}`;
}

function pollLine(record: PollRecord): string {
  const status = record.statusCode === null ? (record.error ?? 'failed') : `HTTP ${record.statusCode}`;
  const verdict =
    record.verdict === 'done' ? 'final answer' : record.verdict === 'failed' ? 'polling failed' : 'still waiting';
  return `  poll ${record.poll}: ${status} in ${record.durationMs} ms — ${verdict}`;
}

function formatSeconds(ms: number): string {
  return `${Number((ms / 1000).toFixed(3))} s`;
}

function oneLine(text: string, limit: number): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > limit ? `${flat.slice(0, limit - 1)}…` : flat;
}

async function readPayload(path: string): Promise<Buffer> {
  try {
    if (path === '-') {
      const chunks: Buffer[] = [];
      for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
      return Buffer.concat(chunks);
    }
    return await readFile(path);
  } catch (error) {
    usage(`cannot read payload ${path}: ${describeError(error)}`);
  }
}

function isJson(body: Buffer): boolean {
  try {
    JSON.parse(body.toString('utf8'));
    return true;
  } catch {
    return false;
  }
}

function usage(message: string): never {
  process.exitCode = 2;
  throw new BridgeError('SEND_USAGE', message, { permanent: true });
}

function seconds(value: string, max = Number.POSITIVE_INFINITY): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n < 0 || n > max) {
    throw new InvalidArgumentError(
      max === Number.POSITIVE_INFINITY ? 'expected a number of seconds ≥ 0' : `expected seconds between 0 and ${max}`,
    );
  }
  return n;
}

function integer(value: string, max: number): number {
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || n > max)
    throw new InvalidArgumentError(`expected a whole number between 0 and ${max}`);
  return n;
}
