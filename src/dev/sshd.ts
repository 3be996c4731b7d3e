import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, openSync, closeSync, readFileSync, readdirSync } from 'node:fs';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { createConnection, createServer } from 'node:net';
import { userInfo } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/**
 * A private OpenSSH sshd on loopback, for tests and the `dev` command: real protocol, real
 * atomic rename semantics, real failure modes (kill it, restart it on the same port).
 */
export interface StartSshdOptions {
  /** Everything lives here: keys, config, log, pid file and the `inbound/` and `acks/` folders. Reused (keys kept) when it exists. */
  baseDir: string;
  /** Fixed port; a free loopback port is chosen when omitted. */
  port?: number;
  /** Extra sshd_config lines, appended last (so they may end with `Match` blocks). */
  extraConfig?: string[];
  sshdPath?: string;
  /** How long to wait for the port to accept connections. */
  startTimeoutMs?: number;
}

export interface SshdInstance {
  readonly host: string;
  readonly port: number;
  /** The user the key pair logs in as (the current user). */
  readonly username: string;
  readonly privateKey: string;
  readonly privateKeyPath: string;
  readonly publicKey: string;
  /** The same kind of key, encrypted with `passphrase`. */
  readonly encryptedPrivateKey: string;
  readonly encryptedPrivateKeyPath: string;
  readonly passphrase: string;
  /** `SHA256:...` exactly as `ssh-keygen -l` prints it. */
  readonly hostKeyFingerprint: string;
  /** `ssh-ed25519 AAAA...` */
  readonly hostPublicKey: string;
  /** `[127.0.0.1]:PORT ssh-ed25519 AAAA...` */
  readonly knownHostsLine: string;
  /** SFTP sessions start here, so relative paths land in this folder. */
  readonly root: string;
  readonly inboundDir: string;
  readonly acksDir: string;
  readonly configPath: string;
  readonly logPath: string;
  /** `sftp://user@127.0.0.1:PORT/~/inbound` style URL for a folder under root. */
  url(relativeDir?: string): string;
  readonly pid: number | undefined;
  readonly running: boolean;
  /** The sshd log so far (LogLevel VERBOSE). */
  log(): string;
  /** Successful logins so far (counted from its log), e.g. to prove a pool reuses connections. */
  loginCount(): number;
  stop(): Promise<void>;
  /** Sends `signal` to sshd and every session process it forked, as a crash would (SIGSTOP/SIGCONT: hang/resume). */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Starts again on the same port with the same keys. */
  restart(): Promise<void>;
}

const TEST_PASSPHRASE = 'correct horse battery staple';

export async function startSshd(options: StartSshdOptions): Promise<SshdInstance> {
  const sshdPath = options.sshdPath ?? '/usr/sbin/sshd';
  if (!existsSync(sshdPath)) {
    throw new Error(`OpenSSH server not found at ${sshdPath}: install it (Debian: apt-get install openssh-server)`);
  }
  const root = resolve(options.baseDir);
  // internal-sftp takes `-d` verbatim (no quoting), and sshd_config paths split on blanks.
  if (/[\s"'%]/.test(root)) throw new Error(`sshd baseDir must not contain blanks, quotes or %: ${root}`);
  await mkdir(root, { recursive: true });
  // mkdtemp makes 0700 folders; other local users (password tests) must be able to enter.
  await chmod(root, 0o755);
  const inboundDir = join(root, 'inbound');
  const acksDir = join(root, 'acks');
  await mkdir(inboundDir, { recursive: true });
  await mkdir(acksDir, { recursive: true });
  if (isRoot()) await mkdir('/run/sshd', { recursive: true, mode: 0o755 });

  const hostKeyPath = join(root, 'ssh_host_ed25519_key');
  const privateKeyPath = join(root, 'client_ed25519');
  const encryptedPrivateKeyPath = join(root, 'client_ed25519_encrypted');
  await ensureKey(hostKeyPath, '', 'rossum-sftp-bridge dev host');
  await ensureKey(privateKeyPath, '', 'rossum-sftp-bridge dev client');
  await ensureKey(encryptedPrivateKeyPath, TEST_PASSPHRASE, 'rossum-sftp-bridge dev client (encrypted)');

  const publicKey = (await readFile(`${privateKeyPath}.pub`, 'utf8')).trim();
  const encryptedPublicKey = (await readFile(`${encryptedPrivateKeyPath}.pub`, 'utf8')).trim();
  const authorizedKeysPath = join(root, 'authorized_keys');
  await writeFile(authorizedKeysPath, `${publicKey}\n${encryptedPublicKey}\n`, { mode: 0o600 });

  const hostPublicKey = (await readFile(`${hostKeyPath}.pub`, 'utf8')).trim().split(/\s+/).slice(0, 2).join(' ');
  const hostKeyFingerprint = await sshKeygenFingerprint(`${hostKeyPath}.pub`);

  const username = userInfo().username;

  const host = '127.0.0.1';
  const port = options.port ?? (await freePort(host));
  const configPath = join(root, 'sshd_config');
  const logPath = join(root, 'sshd.log');
  const pidPath = join(root, 'sshd.pid');
  const config = [
    `ListenAddress ${host}:${port}`,
    `HostKey ${hostKeyPath}`,
    `PidFile ${pidPath}`,
    `AuthorizedKeysFile ${authorizedKeysPath}`,
    'LogLevel VERBOSE',
    'StrictModes no',
    'UsePAM no',
    'UseDNS no',
    'PubkeyAuthentication yes',
    'PasswordAuthentication no',
    'KbdInteractiveAuthentication no',
    'PermitRootLogin prohibit-password',
    `AllowUsers ${username}`,
    'AllowTcpForwarding no',
    'X11Forwarding no',
    'PrintMotd no',
    // Our own tests open many connections at once; the default 10:30:60 would drop some.
    'MaxStartups 100:30:200',
    'MaxSessions 50',
    'Subsystem sftp internal-sftp',
    `ForceCommand internal-sftp -d ${root}`,
    ...(options.extraConfig ?? []),
    '',
  ].join('\n');
  await writeFile(configPath, config, { mode: 0o600 });

  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  const startTimeoutMs = options.startTimeoutMs ?? 10_000;

  const launch = async (): Promise<void> => {
    const logFd = openSync(logPath, 'a');
    let proc: ChildProcess;
    try {
      proc = spawn(sshdPath, ['-D', '-e', '-f', configPath], { stdio: ['ignore', logFd, logFd] });
    } finally {
      closeSync(logFd);
    }
    child = proc;
    let exitInfo: string | undefined;
    exited = new Promise<void>((resolveExit) => {
      proc.once('exit', (code, signal) => {
        exitInfo = signal ? `signal ${signal}` : `code ${code}`;
        resolveExit();
      });
      proc.once('error', (error) => {
        exitInfo = error.message;
        resolveExit();
      });
    });
    const deadline = Date.now() + startTimeoutMs;
    for (;;) {
      if (exitInfo !== undefined) {
        throw new Error(`sshd exited during start-up (${exitInfo}); log ${logPath}:\n${tail(logPath)}`);
      }
      if (await bannerReady(host, port)) return;
      if (Date.now() > deadline) {
        proc.kill('SIGKILL');
        throw new Error(
          `sshd did not accept connections on ${host}:${port} within ${startTimeoutMs} ms; log ${logPath}:\n${tail(logPath)}`,
        );
      }
      await delay(25);
    }
  };

  const signalAll = (signal: NodeJS.Signals): void => {
    const pid = child?.pid;
    if (pid === undefined || child?.exitCode !== null || child?.signalCode !== null) {
      if (pid !== undefined) for (const descendant of descendantsOf(pid)) safeKill(descendant, signal);
      return;
    }
    // Session processes are separate process groups (sshd calls setsid), so walk the tree.
    const descendants = descendantsOf(pid);
    safeKill(pid, signal);
    for (const descendant of descendants) safeKill(descendant, signal);
  };

  const isRunning = (): boolean => child !== undefined && child.exitCode === null && child.signalCode === null;

  const stopWith = async (signal: NodeJS.Signals): Promise<void> => {
    const pid = child?.pid;
    if (pid === undefined) return;
    const descendants = descendantsOf(pid);
    signalAll(signal);
    await exited;
    // Wait until session processes are gone too, so a restart does not race with them.
    const deadline = Date.now() + 3_000;
    for (;;) {
      const alive = descendants.filter(isAlive);
      if (alive.length === 0) break;
      if (Date.now() > deadline) {
        for (const leftover of alive) safeKill(leftover, 'SIGKILL');
        break;
      }
      await delay(20);
    }
  };

  const onProcessExit = (): void => {
    if (isRunning()) signalAll('SIGKILL');
  };
  process.once('exit', onProcessExit);

  await launch();

  const instance: SshdInstance = {
    host,
    port,
    username,
    privateKey: readFileSync(privateKeyPath, 'utf8'),
    privateKeyPath,
    publicKey,
    encryptedPrivateKey: readFileSync(encryptedPrivateKeyPath, 'utf8'),
    encryptedPrivateKeyPath,
    passphrase: TEST_PASSPHRASE,
    hostKeyFingerprint,
    hostPublicKey,
    knownHostsLine: `[${host}]:${port} ${hostPublicKey}`,
    root,
    inboundDir,
    acksDir,
    configPath,
    logPath,
    url(relativeDir = 'inbound') {
      const dir = relativeDir.replace(/^\/+/, '');
      return `sftp://${encodeURIComponent(username)}@${host}:${port}/~/${dir}`;
    },
    get pid() {
      return isRunning() ? child?.pid : undefined;
    },
    get running() {
      return isRunning();
    },
    log() {
      return existsSync(logPath) ? readFileSync(logPath, 'utf8') : '';
    },
    loginCount() {
      return (instance.log().match(/^Accepted (publickey|password) for /gm) ?? []).length;
    },
    async stop() {
      process.removeListener('exit', onProcessExit);
      await stopWith('SIGTERM');
    },
    async kill(signal: NodeJS.Signals = 'SIGKILL') {
      // SIGSTOP/SIGCONT freeze and thaw the server (a hung peer); nothing exits, so do not wait.
      if (signal === 'SIGSTOP' || signal === 'SIGCONT') signalAll(signal);
      else await stopWith(signal);
    },
    async restart() {
      if (isRunning()) await stopWith('SIGTERM');
      process.removeListener('exit', onProcessExit);
      process.once('exit', onProcessExit);
      await launch();
    },
  };
  return instance;
}

function isRoot(): boolean {
  return process.getuid?.() === 0;
}

async function ensureKey(path: string, passphrase: string, comment: string): Promise<void> {
  if (existsSync(path) && existsSync(`${path}.pub`)) return;
  await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', passphrase, '-C', comment, '-f', path]);
  await chmod(path, 0o600);
}

async function sshKeygenFingerprint(publicKeyPath: string): Promise<string> {
  const { stdout } = await run('ssh-keygen', ['-l', '-E', 'sha256', '-f', publicKeyPath]);
  const match = /SHA256:[A-Za-z0-9+/]+/.exec(stdout);
  if (!match) throw new Error(`unexpected ssh-keygen -l output: ${stdout}`);
  return match[0];
}

export async function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, host, () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolvePort(port));
    });
  });
}

/** True once something on host:port speaks SSH (not merely accepts TCP). */
function bannerReady(host: string, port: number): Promise<boolean> {
  return new Promise((resolveReady) => {
    const socket = createConnection({ host, port, noDelay: true });
    let data = '';
    const done = (ok: boolean): void => {
      socket.destroy();
      resolveReady(ok);
    };
    socket.setTimeout(1_000, () => done(false));
    socket.once('error', () => done(false));
    socket.on('data', (chunk: Buffer) => {
      data += chunk.toString('latin1');
      if (data.includes('\n')) done(data.startsWith('SSH-'));
    });
    socket.once('end', () => done(false));
  });
}

function descendantsOf(rootPid: number): number[] {
  const children = new Map<number, number[]>();
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return [];
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // The command name may contain spaces and parentheses: fields start after the last ')'.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const ppid = Number(fields[1]);
      const list = children.get(ppid) ?? [];
      list.push(Number(entry));
      children.set(ppid, list);
    } catch {
      // The process ended while we looked.
    }
  }
  const result: number[] = [];
  const stack = [rootPid];
  while (stack.length > 0) {
    const pid = stack.pop() as number;
    for (const child of children.get(pid) ?? []) {
      result.push(child);
      stack.push(child);
    }
  }
  return result;
}

function isAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

function safeKill(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // Already gone.
  }
}

function tail(path: string, lines = 20): string {
  try {
    return readFileSync(path, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((resolveDelay) => setTimeout(resolveDelay, ms));
}
