import { createHmac } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fixture } from './bridge.ts';

/** Writes a config file (JSON is YAML) the way an operator would, with several targets and routes. */
export function writeConfigFile(dir: string, document: Record<string, unknown>, name = 'bridge.yaml'): string {
  const path = join(dir, name);
  writeFileSync(path, JSON.stringify(document, null, 2), { mode: 0o600 });
  return path;
}

/** The shared invoice fixture for `annotationId`, in Rossum queue `queueId`. */
export function invoicePayload(annotationId: number, queueId = 8236): Record<string, unknown> {
  const payload = fixture('export-invoice.json');
  const annotation = payload.annotation as { id: number; queue: string; url?: string };
  annotation.id = annotationId;
  annotation.queue = annotation.queue.replace(/\/queues\/\d+$/, `/queues/${queueId}`);
  return payload;
}

export function signedHeaders(body: string, secret: string): Record<string, string> {
  return {
    'content-type': 'application/json',
    'x-rossum-signature-sha256': `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`,
  };
}

/** Final names in a folder (temporary dot-files left out). */
export function visibleFiles(folder: string): string[] {
  return existsSync(folder)
    ? readdirSync(folder)
        .filter((name) => !name.startsWith('.'))
        .sort()
    : [];
}

/** Resolves once `text` appears in the file (a process saying it reached a point), polling its growth. */
export async function waitForOutput(path: string, text: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(existsSync(path) && readFileSync(path, 'utf8').includes(text))) {
    if (Date.now() > deadline) throw new Error(`"${text}" did not appear in ${path} within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

export async function waitUntil(
  condition: () => boolean | Promise<boolean>,
  timeoutMs: number,
  what: string,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
