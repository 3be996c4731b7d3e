import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import iconv from 'iconv-lite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSshd, type SshdInstance } from '../support/sshd.ts';
import { OPERATOR, Session, startConsoleBridge, type ConsoleBridge } from './harness.ts';

let sshd: SshdInstance;
let bridge: ConsoleBridge;
let session: Session;

beforeAll(async () => {
  sshd = await startSshd({ baseDir: mkdtempSync(join(tmpdir(), 'rsb-console-file-')) });
  bridge = await startConsoleBridge(sshd, { mapping: 'datev-csv' });
  for (const annotationId of [720001, 720002, 720003]) expect(await bridge.send(annotationId)).toBe(200);
  session = new Session(bridge.consoleUrl);
  await session.signIn(OPERATOR.name, OPERATOR.password);
}, 60_000);

afterAll(async () => {
  await bridge?.close();
  await sshd?.stop();
});

async function exportOf(annotationId: number) {
  const [record] = await bridge.bridge.ledger.list({ annotationId });
  if (!record?.remotePath) throw new Error(`annotation ${annotationId} was not uploaded`);
  return { ...record, remotePath: record.remotePath };
}

describe('the rendered file in the console', () => {
  it('is read back from the SFTP target and shown in the mapping encoding (windows-1252), and downloads byte for byte', async () => {
    const record = await exportOf(720001);
    const uploaded = readFileSync(join(sshd.inboundDir, record.remotePath));
    expect(iconv.decode(uploaded, 'windows-1252')).toContain('Schlüssel');
    expect(uploaded.includes(Buffer.from('Schlüssel', 'utf8'))).toBe(false);
    const page = await (await session.request(`/exports/${record.id}/file`)).text();
    expect(page).toContain('<strong>Encoding</strong> windows-1252');
    expect(page).toContain('Schlüssel');
    expect(page).not.toContain('\uFFFD');
    const download = await session.request(`/exports/${record.id}/file/download`);
    expect(download.headers.get('content-disposition')).toContain('attachment;');
    expect(Buffer.from(await download.arrayBuffer()).equals(uploaded)).toBe(true);
  });

  it('says it is not kept once the ERP has taken the file away', async () => {
    const record = await exportOf(720002);
    rmSync(join(sshd.inboundDir, record.remotePath));
    const page = await (await session.request(`/exports/${record.id}/file`)).text();
    expect(page).toContain('no longer on erp');
    expect(page).toContain('does not keep a copy');
    expect(page).toContain(record.sha256);
    expect((await session.request(`/exports/${record.id}/file/download`)).status).toBe(404);
  });

  it('refuses to show a different file that now has the same name', async () => {
    const record = await exportOf(720003);
    writeFileSync(join(sshd.inboundDir, record.remotePath), 'someone else wrote this\n');
    const page = await (await session.request(`/exports/${record.id}/file`)).text();
    expect(page).toContain('not the one the bridge uploaded');
    expect(page).not.toContain('someone else wrote this');
    expect((await session.request(`/exports/${record.id}/file/download`)).status).toBe(404);
  });
});
