import { existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, startSshd, type SshdInstance } from '../support/sshd.ts';
import { ServeProcess, writeServeConfig } from '../support/fault-serve.ts';
import { buildCorpus, HOSTILE_BODY_LIMIT, HOSTILE_MAX_DEPTH, HOSTILE_SECRET, type HostileCase } from './corpus.ts';

const corpus = buildCorpus();
let sshd: SshdInstance;
let serve: ServeProcess;
let dir: string;
let ledgerPath: string;
let outputPath: string;

function ledgerRows(): number {
  const db = new Database(ledgerPath, { readonly: true, fileMustExist: true });
  try {
    return (db.prepare('SELECT count(*) AS n FROM exports').get() as { n: number }).n;
  } finally {
    db.close();
  }
}

/** Every name under a folder, recursively (hidden and temporary names included). */
function tree(root: string): string[] {
  if (!existsSync(root)) return [];
  return (readdirSync(root, { recursive: true }) as string[]).map(String).sort();
}

async function send(c: HostileCase): Promise<{ status: number; json: Record<string, unknown> }> {
  const headers = new Headers(c.headers);
  if (c.repeatedHeader) for (const value of c.repeatedHeader[1]) headers.append(c.repeatedHeader[0], value);
  const response = await fetch(serve.url, {
    method: 'POST',
    body: c.body,
    headers,
    signal: AbortSignal.timeout(20_000),
  });
  const text = await response.text();
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(text) as Record<string, unknown>;
  } catch {
    throw new Error(`reply is not JSON (${response.status}): ${text.slice(0, 200)}`);
  }
  return { status: response.status, json };
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'rsb-hostile-'));
  sshd = await startSshd({ baseDir: join(dir, 'sshd') });
  ledgerPath = join(dir, 'data', 'ledger.db');
  outputPath = join(dir, 'serve.out');
  const port = await freePort();
  const configPath = writeServeConfig(dir, {
    port,
    secret: HOSTILE_SECRET,
    ledgerPath,
    server: { bodyLimitBytes: HOSTILE_BODY_LIMIT, maxJsonDepth: HOSTILE_MAX_DEPTH, deadlineMs: 10_000 },
    target: {
      url: sshd.url('inbound'),
      hostKey: sshd.hostKeyFingerprint,
      privateKeyPath: sshd.privateKeyPath,
      pool: { size: 2 },
    },
  });
  serve = await ServeProcess.start({ configPath, port, outputPath });
});

afterAll(async () => {
  await serve?.stop();
  await sshd?.stop();
});

describe('hostile corpus: every bad request gets its exact answer and changes nothing', () => {
  it('has at least 60 rejected cases, in every group the issue names', () => {
    const rejected = corpus.filter((c) => c.kind === 'rejected');
    expect(rejected.length).toBeGreaterThanOrEqual(60);
    expect(new Set(corpus.map((c) => c.group))).toEqual(
      new Set([
        'signature',
        'body',
        'json',
        'depth',
        'size',
        'content-type',
        'utf8',
        'types',
        'duplicate-ids',
        'huge',
        'path-escape',
      ]),
    );
    expect(new Set(corpus.map((c) => c.name)).size).toBe(corpus.length);
  });

  it.each(corpus.map((c) => [`${c.group}: ${c.name}`, c] as const))('%s', async (_label, c) => {
    const rowsBefore = ledgerRows();
    const inboundBefore = tree(sshd.inboundDir);
    const rootBefore = readdirSync(sshd.root).sort();

    const reply = await send(c);

    expect(reply.status).toBe(c.expected.status);
    const messages = reply.json.messages as Array<{ type: string; content: string }> | undefined;
    if (c.expected.status >= 400) {
      expect(String(reply.json.error)).toMatch(c.expected.error);
      // Rossum shows `messages`; the same reason must be there too.
      expect(messages?.[0]).toEqual({ type: 'error', content: reply.json.error });
    } else {
      expect(messages?.[0]?.type).toBe(c.expected.messageType);
      expect(messages?.[0]?.content).toMatch(c.expected.error);
      if (c.expected.datapointId !== undefined)
        expect((messages?.[0] as { id?: number } | undefined)?.id).toBe(c.expected.datapointId);
      if (c.expected.warning)
        expect(
          messages
            ?.filter((m) => m.type === 'warning')
            .map((m) => m.content)
            .join('\n'),
        ).toMatch(c.expected.warning);
      else expect(messages?.some((m) => m.type === 'warning')).toBe(false);
    }
    // Rossum cuts message content at 4096 characters; so do we, whatever the input echoed.
    for (const message of messages ?? []) expect(Array.from(message.content).length).toBeLessThanOrEqual(4096);
    expect(serve.running, 'the process must survive every input').toBe(true);

    if (c.kind === 'rejected') {
      expect(ledgerRows()).toBe(rowsBefore);
      expect(tree(sshd.inboundDir)).toEqual(inboundBefore);
    } else {
      // Exported, but only as one new plain file directly inside the target folder.
      const added = tree(sshd.inboundDir).filter((name) => !inboundBefore.includes(name));
      expect(added).toHaveLength(1);
      expect(added[0]).toMatch(/^INV_[^/\\]+\.xml$/);
      expect(Buffer.byteLength(added[0]!)).toBeLessThanOrEqual(200);
      expect(messages?.[0]?.content).toContain(added[0]!);
    }
    expect(readdirSync(sshd.root).sort()).toEqual(rootBefore);
  });

  it('nothing escaped anywhere, the process is healthy and never answered 5xx', async () => {
    for (const path of [
      '/tmp/hostile-escape.xml',
      '/tmp/hostile-escape',
      '/etc/cron.d/hostile',
      '/etc/cron.d/hostile.xml',
      join(sshd.root, 'b.xml'),
    ]) {
      expect(existsSync(path), path).toBe(false);
    }
    expect(serve.running).toBe(true);
    expect((await fetch(`${serve.baseUrl}/healthz`)).status).toBe(200);
    const metrics = await (await fetch(`${serve.baseUrl}/metrics`)).text();
    expect(metrics).toMatch(/bridge_webhook_requests_total\{status="401"\} \d+/);
    expect(metrics).not.toMatch(/bridge_webhook_requests_total\{status="5\d\d"\}/);
    const output = readFileSync(outputPath, 'utf8');
    expect(output).not.toMatch(/^\s+at .+:\d+:\d+\)?$/m);
    expect(output).not.toContain(HOSTILE_SECRET);
  });
});
