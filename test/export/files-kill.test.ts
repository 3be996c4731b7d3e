import { existsSync, mkdtempSync, readdirSync, readFileSync, watch, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { SqliteLedger } from '../../src/ledger/index.ts';
import { callHook as deliver } from '../../src/rossum/hook-call.ts';
import { fixture, repoRoot } from '../support/bridge.ts';
import { DocumentContentServer } from '../support/document-content.ts';
import { ServeProcess } from '../support/fault-serve.ts';
import { freePort, startSshd, type SshdInstance } from '../support/sshd.ts';

const SECRET = 'files-kill-secret-0123456789';
const TOKEN = 'files-kill-token';
const PDF = readFileSync(join(repoRoot, 'test/fixtures/rossum/INV-2024-00417.pdf'));

let dir: string;
let sshd: SshdInstance;
let documents: DocumentContentServer;
let serve: ServeProcess | undefined;
let configPath: string;
let port: number;
const ledgerPath = (): string => join(dir, 'ledger.db');

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'rsb-files-kill-'));
  sshd = await startSshd({ baseDir: join(dir, 'sshd') });
  documents = await DocumentContentServer.start();
  documents.issueToken(TOKEN);
  const mappingsDir = join(dir, 'mappings');
  const shipped = readFileSync(join(repoRoot, 'mappings/sap-idoc-xml-scan.yaml'), 'utf8');
  await import('node:fs/promises').then((fs) => fs.mkdir(mappingsDir));
  writeFileSync(join(mappingsDir, 'sap-idoc-xml-scan.yaml'), shipped.slice(0, shipped.indexOf('\ntests:')));
  port = await freePort();
  configPath = join(dir, 'bridge.yaml');
  writeFileSync(
    configPath,
    stringify({
      server: { host: '127.0.0.1', port, secret: SECRET },
      ledger: { url: `sqlite:${ledgerPath()}` },
      mappingsDir,
      logLevel: 'info',
      targets: {
        erp: { url: sshd.url('inbound'), hostKey: sshd.hostKeyFingerprint, privateKeyPath: sshd.privateKeyPath },
      },
      routes: [{ mapping: 'sap-idoc-xml-scan', target: 'erp' }],
      rossum: { allowedHosts: ['127.0.0.1'], token: 'configured-but-unused' },
    }),
    { mode: 0o600 },
  );
}, 120_000);

afterAll(async () => {
  await serve?.stop();
  await documents?.close();
  await sshd?.stop();
});

function payload(annotationId: number): string {
  const body = fixture('export-invoice.json');
  const { url, document } = documents.addDocument(annotationId, PDF, 'INV-2024-00417.pdf');
  const annotation = body.annotation as Record<string, unknown>;
  annotation.id = annotationId;
  annotation.document = url;
  body.document = { ...(body.document as Record<string, unknown>), ...document };
  body.rossum_authorization_token = TOKEN;
  const walk = (node: { schema_id: string; category: string; children?: unknown[]; content?: { value: string } }) => {
    if (node.category === 'datapoint' && node.schema_id === 'document_id' && node.content)
      node.content.value = `KILL-${annotationId}`;
    for (const child of (node.children ?? []) as Array<typeof node>) walk(child);
  };
  for (const section of annotation.content as Array<Parameters<typeof walk>[0]>) walk(section);
  return JSON.stringify(body);
}

const startServe = async (): Promise<ServeProcess> =>
  ServeProcess.start({ configPath, port, outputPath: join(dir, 'serve.out') });
const pairOf = (annotationId: number): string[] =>
  readdirSync(sshd.inboundDir)
    .filter((name) => name.includes(`_KILL-${annotationId}.`))
    .sort();

describe('SIGKILL between the original document and the data file (real serve process, real sshd)', () => {
  it('the retry after a restart finishes the pair: one PDF, one data file, the same number, nothing sent twice', async () => {
    for (let attempt = 0; ; attempt++) {
      const annotationId = 720_001 + attempt;
      serve = await startServe();
      const seen: string[][] = [];
      let killedAt: string[] | undefined;
      // The kill fires the moment the PDF has been renamed into place.
      const watcher = watch(sshd.inboundDir, () => {
        const names = pairOf(annotationId);
        seen.push(names);
        if (killedAt === undefined && names.some((name) => name.endsWith('.pdf'))) {
          serve?.kill('SIGKILL');
          killedAt = names;
        }
      });
      const body = payload(annotationId);
      const first = await deliver({ url: serve.url, body, secret: SECRET, retryCount: 0, timeoutS: 30 });
      watcher.close();
      // Asserted before waiting for the exit: a process that was never killed would never exit.
      expect(killedAt, 'the PDF never appeared').toBeDefined();
      await serve.exited;
      // An ERP polling the folder never saw the data file without its document.
      for (const names of seen)
        if (names.some((name) => name.endsWith('.xml'))) expect(names.some((name) => name.endsWith('.pdf'))).toBe(true);
      if (killedAt?.some((name) => name.endsWith('.xml'))) {
        // The kill landed after the data file too (scheduling): try again with a new document.
        expect(attempt, 'could not kill between the two files in 4 attempts').toBeLessThan(3);
        continue;
      }
      expect(first.annotationStatus).not.toBe('exported');
      expect(killedAt?.filter((name) => !name.startsWith('.'))).toHaveLength(1);

      serve = await startServe();
      const retried = await deliver({ url: serve.url, body, secret: SECRET, retryCount: 2, retryDelayS: 0.2 });
      expect(retried.annotationStatus).toBe('exported');
      await serve.stop();
      serve = undefined;

      const ledger = new SqliteLedger({ path: ledgerPath() });
      const records = await ledger.list({ annotationId });
      await ledger.close();
      expect(records).toHaveLength(1);
      const record = records[0]!;
      const stem = `IDOC_${String(record.sequenceNumber).padStart(8, '0')}_KILL-${annotationId}`;
      expect(record).toMatchObject({ status: 'uploaded', remotePath: `${stem}.xml`, documentPath: `${stem}.pdf` });
      expect(pairOf(annotationId)).toEqual([`${stem}.pdf`, `${stem}.xml`]);
      expect(readFileSync(join(sshd.inboundDir, `${stem}.pdf`))).toEqual(PDF);
      expect(existsSync(join(sshd.inboundDir, `${stem}.xml`))).toBe(true);
      expect(readdirSync(sshd.inboundDir).filter((name) => name.endsWith('.part'))).toEqual([]);
      return;
    }
  }, 600_000);
});
