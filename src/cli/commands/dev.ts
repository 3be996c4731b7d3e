import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { startBridge } from '../../process/index.ts';
import { loadConfig } from '../../config/index.ts';
import { startSshd } from '../../dev/index.ts';
import { createLogger } from '../../observability/index.ts';
import { callHook } from '../../rossum/index.ts';
import { stopOnSignals } from './serve.ts';

const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));

interface DevOptions {
  dir: string;
  port: number;
  mapping: string;
  demo?: boolean;
  exit?: boolean;
}

export function register(program: Command): void {
  program
    .command('dev')
    .description(
      'Run the whole loop locally: a private OpenSSH sshd on loopback, the bridge with a SQLite ledger, and (with --demo) the sample exports',
    )
    .option('--dir <path>', 'working folder for keys, config, ledger and the SFTP root', '.dev')
    .option('-p, --port <port>', 'webhook port (0 = any free port)', (value) => Number.parseInt(value, 10), 8080)
    .option('-m, --mapping <name>', 'mapping the fallback route uses', 'generic-xml')
    .option('--demo', 'send the sample Rossum exports through it and show what Rossum would do')
    .option('--exit', 'with --demo: stop after the demo instead of serving')
    .action(async (options: DevOptions) => runDev(options));
}

async function runDev(options: DevOptions): Promise<void> {
  // Before anything starts: a missing sample folder is an installation problem, said at once.
  const payloads = options.demo ? demoPayloads() : [];
  const dir = resolve(options.dir);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const sshd = await startSshd({ baseDir: join(dir, 'sftp') });

  const secretFile = join(dir, 'hook-secret');
  if (!existsSync(secretFile)) writeFileSync(secretFile, randomBytes(24).toString('hex'), { mode: 0o600 });
  const secret = readFileSync(secretFile, 'utf8').trim();

  const configFile = join(dir, 'bridge.yaml');
  writeFileSync(
    configFile,
    [
      '# Written by `rossum-sftp-bridge dev`; regenerated on every start.',
      'server:',
      '  host: 127.0.0.1',
      `  port: ${options.port}`,
      '  secret: ${DEV_HOOK_SECRET}',
      'ledger:',
      '  url: sqlite:./ledger.db',
      `mappingsDir: ${JSON.stringify(join(repoRoot, 'mappings'))}`,
      'targets:',
      '  dev-sftp:',
      `    url: ${JSON.stringify(sshd.url('inbound'))}`,
      `    hostKey: ${JSON.stringify(sshd.hostKeyFingerprint)}`,
      `    privateKeyPath: ${JSON.stringify(sshd.privateKeyPath)}`,
      'routes:',
      `  - mapping: ${options.mapping}`,
      '    target: dev-sftp',
      '',
    ].join('\n'),
    { mode: 0o600 },
  );
  const { config } = loadConfig(configFile, { ...process.env, DEV_HOOK_SECRET: secret });
  const logger = createLogger({ level: process.env.LOG_LEVEL ?? 'warn' });
  const bridge = await startBridge(config, { logger });

  const out = (line = ''): void => void process.stdout.write(`${line}\n`);
  out('rossum-sftp-bridge dev is running');
  out(`  webhook URL   ${bridge.url}`);
  out(`  hook secret   ${secret}   (also in ${relative(process.cwd(), secretFile)})`);
  out(`  SFTP server   ${sshd.url('inbound')}  host key ${sshd.hostKeyFingerprint}`);
  out(`  files land in ${sshd.inboundDir}`);
  out(`  acks folder   ${sshd.acksDir}`);
  out(`  config        ${configFile}`);
  out(`  metrics       ${bridge.url.replace(/\/webhooks\/rossum$/, '/metrics')}`);
  out(
    `  try           node bin/rossum-sftp-bridge send ${join(DEMO_FOLDER, 'export-invoice.json')} --url ${bridge.url} --secret ${secret}`,
  );

  if (options.demo) {
    out();
    const duplicateAnswers = async (): Promise<number> =>
      (await bridge.metrics.exports.get()).values
        .filter((entry) => entry.labels.outcome === 'duplicate')
        .reduce((sum, entry) => sum + entry.value, 0);
    const filesBefore = new Set(readdirSync(sshd.inboundDir));
    let replays = 0;
    for (const file of payloads) {
      const before = await duplicateAnswers();
      const outcome = await callHook({
        url: bridge.url,
        body: readFileSync(file),
        secret,
        retryDelayS: 1,
        retryCount: 4,
      });
      const replay = (await duplicateAnswers()) > before;
      if (replay) replays++;
      out(
        `  ${relative(repoRoot, file)} → annotation ${outcome.annotationStatus}${replay ? '  (replay: exported in an earlier run, nothing uploaded now)' : ''}`,
      );
      for (const message of outcome.messages)
        out(`      [${message.type}] ${replay ? '(first answer) ' : ''}${message.content}`);
    }
    out();
    if (replays > 0) {
      out(
        `${replays} answer(s) above are replays: the ledger in ${relative(process.cwd(), dir) || '.'} already had these annotations, so the bridge repeated`,
      );
      out(
        'its first answer (which may name an earlier port or file) instead of uploading again. Delete that folder for a fresh demo.',
      );
      out(`This run's server: webhook ${bridge.url}, SFTP ${sshd.url('inbound')}`);
      out();
    }
    out(`Files in ${sshd.inboundDir}:`);
    for (const name of readdirSync(sshd.inboundDir).sort())
      out(`  ${name}${filesBefore.has(name) ? '  (from an earlier run)' : ''}`);
  }

  const stopSshd = async (): Promise<void> => sshd.stop();
  if (options.demo && options.exit) {
    await bridge.close();
    await stopSshd();
    return;
  }
  out();
  out(
    options.demo
      ? 'The demo is done; the bridge keeps serving for your own exports. Ctrl+C stops it (--exit stops right after the demo).'
      : 'Ctrl+C stops it.',
  );
  stopOnSignals(bridge, logger, stopSshd);
}

/** The sample exports ship with the package (`examples/rossum/`), so `--demo` works from an installed copy too. */
const DEMO_FOLDER = join(repoRoot, 'examples', 'rossum');

function demoPayloads(): string[] {
  const files = existsSync(DEMO_FOLDER) ? readdirSync(DEMO_FOLDER).filter((name) => name.endsWith('.json')) : [];
  if (files.length === 0)
    throw new Error(`dev --demo: no sample exports (*.json) in ${DEMO_FOLDER}; the installation is incomplete`);
  return files.sort().map((name) => join(DEMO_FOLDER, name));
}
