import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { consoleLedgerOf } from '../../src/ledger/index.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { createTarget } from '../../src/transport/index.ts';
import { ErpSimulator, erpFixturesDir } from '../support/erp-simulator.ts';
import { RossumSimulator } from '../support/rossum-simulator.ts';
import { startSshd, type SshdInstance } from '../support/sshd.ts';
import { ackBridgeConfig, ROSSUM_PASSWORD, startAckHarness, type AckHarness } from './harness.ts';

let sshd: SshdInstance;
let simulator: RossumSimulator;
let erp: ErpSimulator;
let harness: AckHarness;

beforeAll(async () => {
  sshd = await startSshd({ baseDir: mkdtempSync(join(tmpdir(), 'rsb-acks-sshd-')) });
  simulator = await RossumSimulator.start();
  erp = new ErpSimulator(sshd.acksDir);
  harness = await startAckHarness(
    ackBridgeConfig({ sshd, simulator, byMapping: { 'erp-deadline': { convention: 'companion', deadlineMs: 300 } } }),
  );
});

afterAll(async () => {
  if (process.env.ACK_TEST_LOG) (await import('node:fs')).writeFileSync(process.env.ACK_TEST_LOG, harness.log.text());
  await harness?.close();
  await simulator?.close();
  await sshd?.stop();
});

const archived = (folder: string): string[] =>
  existsSync(join(sshd.acksDir, folder)) ? readdirSync(join(sshd.acksDir, folder)) : [];
const inAcks = (name: string): boolean => existsSync(join(sshd.acksDir, name));
const apiCalls = (id: number) =>
  simulator.calls.filter(
    (call) =>
      call.path.includes(`/annotations/${id}`) || JSON.stringify(call.body ?? '').includes(`/annotations/${id}"`),
  );

describe('acks over SFTP (real sshd, simulated Rossum)', () => {
  it('a companion .ok accepts the export: recorded, archived to processed/, Rossum left alone', async () => {
    simulator.addAnnotation(314521, { status: 'exported' });
    const id = await harness.exported({
      annotationId: 314521,
      fileName: 'INV-2024-00417_314521.xml',
      mapping: 'erp-companion',
    });
    erp.fixture('INV-2024-00417_314521.ok');
    await harness.passUntil(async () => (await harness.acks.ledger.get(id))?.ackState === 'accepted');
    expect(archived('processed')).toContain('INV-2024-00417_314521.ok');
    expect(inAcks('INV-2024-00417_314521.ok')).toBe(false);
    expect(apiCalls(314521)).toEqual([]);
    expect(simulator.annotation(314521).status).toBe('exported');
    // A bare marker is not read, so the ledger has no content to show for it.
    const [okFile] = await consoleLedgerOf(harness.acks.ledger).ackFilesOfExport(id);
    expect(await consoleLedgerOf(harness.acks.ledger).ackFileContent(okFile?.id ?? 0)).toBeUndefined();
  });

  it("a companion .err rejects it: failed_export, a note with the ERP's reasons decoded from windows-1252, metadata with codes", async () => {
    simulator.addAnnotation(314530, { status: 'exported', metadata: { keep: 'me' } });
    const id = await harness.exported({
      annotationId: 314530,
      fileName: 'INV-2024-00418_314530.xml',
      mapping: 'erp-companion',
    });
    erp.fixture('INV-2024-00418_314530.err');
    await harness.passUntil(() => simulator.annotation(314530).status === 'failed_export');
    const annotation = simulator.annotation(314530);
    expect(annotation.notes).toHaveLength(1);
    expect(annotation.notes[0]!.type).toBe('rejection');
    expect(annotation.notes[0]!.content).toContain('E207 Steuerkennzeichen V9 ungültig für Position 3');
    expect(annotation.notes[0]!.content).toContain(
      'E102 Kreditor DE123456789 nicht im Stammsatz gefunden (Buchungskreis 1000)',
    );
    expect(annotation.metadata).toMatchObject({
      keep: 'me',
      erp_ack: { result: 'rejected', codes: ['E102', 'E207'], ackFile: 'INV-2024-00418_314530.err', state: 'done' },
    });
    expect((await harness.acks.ledger.get(id))?.ackState).toBe('rejected');
    expect(archived('processed')).toContain('INV-2024-00418_314530.err');
    const patches = simulator.callsTo('PATCH', '/v1/annotations/314530');
    expect(patches.at(-1)!.body).toMatchObject({ status: 'failed_export' });
    // The console shows the file as the ERP wrote it: its bytes kept, with the encoding they were read in.
    const view = consoleLedgerOf(harness.acks.ledger);
    const [errFile] = await view.ackFilesOfExport(id);
    const content = await view.ackFileContent(errFile?.id ?? 0);
    expect(content).toMatchObject({ encoding: 'windows-1252', truncated: false });
    expect(content?.content.equals(readFileSync(join(erpFixturesDir, 'INV-2024-00418_314530.err')))).toBe(true);
  });

  it('namespaced XML acks: a rejection with coded errors, an acceptance with the ERP document number in metadata', async () => {
    simulator.addAnnotation(314531, { status: 'exported' });
    simulator.addAnnotation(314532, { status: 'exported' });
    const rejected = await harness.exported({
      annotationId: 314531,
      fileName: 'INV-2024-00419_314531.xml',
      mapping: 'erp-xml',
    });
    const accepted = await harness.exported({
      annotationId: 314532,
      fileName: 'INV-2024-00420_314532.xml',
      mapping: 'erp-xml',
    });
    erp.fixture('ACK_INV-2024-00419_314531.xml');
    erp.fixture('ACK_INV-2024-00420_314532.xml');
    await harness.passUntil(
      async () =>
        (await harness.acks.ledger.get(accepted))?.ackState === 'accepted' &&
        simulator.annotation(314531).status === 'failed_export',
    );
    await harness.passUntil(
      () => (simulator.annotation(314532).metadata.erp_ack as { state?: string } | undefined)?.state === 'done',
    );
    expect(simulator.annotation(314531).notes[0]!.content).toMatch(
      /E310 Quantity 2,5 has more decimals than unit KG allows\nE311 Total 1\.469,06/,
    );
    expect(simulator.annotation(314532)).toMatchObject({
      status: 'exported',
      metadata: { erp_ack: { result: 'accepted', erpReference: '5100004711' } },
      notes: [],
    });
    expect((await harness.acks.ledger.get(accepted))?.erpReference).toBe('5100004711');
    expect((await harness.acks.ledger.get(rejected))?.ackState).toBe('rejected');
  });

  it('a batch CSV ack (windows-1252, ;) settles every export it lists, each by its own row', async () => {
    for (const id of [314533, 314534, 314535]) simulator.addAnnotation(id, { status: 'exported' });
    const ids = [
      await harness.exported({ annotationId: 314533, fileName: 'INV-2024-00421_314533.csv', mapping: 'erp-csv' }),
      await harness.exported({ annotationId: 314534, fileName: 'INV-2024-00422_314534.csv', mapping: 'erp-csv' }),
      await harness.exported({ annotationId: 314535, fileName: 'INV-2024-00423_314535.csv', mapping: 'erp-csv' }),
    ];
    erp.fixture('ack_20240202_1015.csv');
    await harness.passUntil(async () => {
      const states = await Promise.all(ids.map(async (id) => (await harness.acks.ledger.get(id))?.ackState));
      return states.join() === 'accepted,rejected,accepted' && simulator.annotation(314534).status === 'failed_export';
    });
    await harness.passUntil(
      () => (simulator.annotation(314535).metadata.erp_ack as { state?: string } | undefined)?.state === 'done',
    );
    expect(simulator.annotation(314534).notes[0]!.content).toContain('E102 Lieferant "Müller & Söhne GmbH" gesperrt');
    expect(simulator.annotation(314533).metadata.erp_ack).toMatchObject({ erpReference: '5100004712' });
    expect(simulator.annotation(314535).metadata.erp_ack).toMatchObject({ erpReference: '5100004713' });
    expect(archived('processed')).toContain('ack_20240202_1015.csv');
  });

  it('an ack matching no export goes to unmatched/ with a warning and a metric; nothing is told to Rossum', async () => {
    const before = simulator.calls.length;
    erp.ok('INV-9999-00001_999999');
    await harness.passUntil(() => archived('unmatched').includes('INV-9999-00001_999999.ok'));
    expect(harness.log.text()).toMatch(/matches no export in the ledger/);
    expect((await harness.acks.metrics.render()).body).toMatch(
      /bridge_ack_files_total\{source="erp",disposition="unmatched"\} 1/,
    );
    expect(simulator.calls.slice(before)).toEqual([]);
  });

  it('an unreadable ack goes to invalid/ with the parse error logged, and the export its name points at is flagged', async () => {
    simulator.addAnnotation(314540, { status: 'exported' });
    const id = await harness.exported({
      annotationId: 314540,
      fileName: 'INV-2024-00430_314540.xml',
      mapping: 'erp-xml',
    });
    erp.raw(
      'ACK_INV-2024-00430_314540.xml',
      '<?xml version="1.0"?>\n<Acknowledgement xmlns="urn:example:erp:ack:1">\n  <Status>REJECTED\n</Acknowledgement>\n',
    );
    await harness.passUntil(() => simulator.annotation(314540).status === 'failed_export');
    expect(archived('invalid')).toContain('ACK_INV-2024-00430_314540.xml');
    expect(harness.log.text()).toMatch(/ACK_INV-2024-00430_314540\.xml:\d+:\d+: not well-formed XML/);
    expect(simulator.annotation(314540).notes[0]!.content).toMatch(/could not be read/);
    expect((await harness.acks.ledger.get(id))?.ackState).toBe('ack_invalid');
  });

  it('no answer by the deadline flags the export; a late positive ack restores exported and says it came late', async () => {
    simulator.addAnnotation(314550, { status: 'exported' });
    const id = await harness.exported({
      annotationId: 314550,
      fileName: 'INV-2024-00440_314550.xml',
      mapping: 'erp-deadline',
    });
    await harness.passUntil(() => simulator.annotation(314550).status === 'failed_export');
    expect((await harness.acks.ledger.get(id))?.ackState).toBe('ack_timeout');
    expect(simulator.annotation(314550).notes.map((note) => note.content)).toEqual([
      expect.stringMatching(/^No answer from the ERP for INV-2024-00440_314550\.xml within/),
    ]);
    erp.ok('INV-2024-00440_314550');
    await harness.passUntil(() => simulator.annotation(314550).status === 'exported');
    expect(simulator.annotation(314550).metadata.erp_ack).toMatchObject({
      result: 'accepted',
      late: true,
      message: expect.stringMatching(/accepted .* late/),
    });
    expect(simulator.annotation(314550).notes).toHaveLength(1);
    const events = (await harness.acks.ledger.events(id)).map((event) => event.kind);
    expect(events).toEqual(expect.arrayContaining(['awaiting_ack', 'ack_timeout', 'ack_accepted_late', 'rossum_told']));
  });

  it('Rossum answering 429 (Retry-After) and 503 is retried; the rejection arrives once', async () => {
    simulator.addAnnotation(314560, { status: 'exported' });
    await harness.exported({ annotationId: 314560, fileName: 'INV-2024-00450_314560.xml', mapping: 'erp-companion' });
    simulator.injectFaults(
      { status: 429, retryAfter: '1', pathPrefix: '/v1/annotations/314560' },
      { status: 503, pathPrefix: '/v1/notes' },
    );
    erp.err('INV-2024-00450_314560', ['E500 Periode gesperrt']);
    await harness.passUntil(() => simulator.annotation(314560).status === 'failed_export');
    const injected = simulator.calls.filter((call) => call.injected).map((call) => call.status);
    expect(injected).toEqual(expect.arrayContaining([429, 503]));
    expect(simulator.pendingFaults()).toBe(0);
    expect(simulator.annotation(314560).notes).toHaveLength(1);
  });

  it('Rossum unreachable for longer than the client retries: the outcome waits in the ledger and is delivered once later', async () => {
    simulator.addAnnotation(314570, { status: 'exported' });
    const id = await harness.exported({
      annotationId: 314570,
      fileName: 'INV-2024-00460_314570.xml',
      mapping: 'erp-companion',
    });
    simulator.injectFaults(...Array.from({ length: 6 }, () => ({ status: 503, pathPrefix: '/v1/annotations/314570' })));
    erp.err('INV-2024-00460_314570', ['E600 Gesperrt']);
    await harness.passUntil(async () => (await harness.acks.ledger.outcomes(id)).some((o) => o.lastError !== null));
    expect(archived('processed')).toContain('INV-2024-00460_314570.err');
    expect((await harness.acks.ledger.outcomes(id))[0]).toMatchObject({
      delivery: 'pending',
      lastError: expect.stringMatching(/HTTP 503/),
    });
    await harness.passUntil(() => simulator.annotation(314570).status === 'failed_export');
    expect(simulator.annotation(314570).notes).toHaveLength(1);
    expect((await harness.acks.ledger.outcomes(id))[0]).toMatchObject({ delivery: 'delivered' });
  });

  it('the note is stored but setting the status keeps failing: the next attempt finds the note and does not post it again', async () => {
    simulator.addAnnotation(314575, { status: 'exported' });
    const id = await harness.exported({
      annotationId: 314575,
      fileName: 'INV-2024-00465_314575.xml',
      mapping: 'erp-companion',
    });
    // More failures than the client retries: the first delivery ends after the note, before the status.
    simulator.injectFaults(
      ...Array.from({ length: 6 }, () => ({ status: 503, method: 'PATCH', pathPrefix: '/v1/annotations/314575' })),
    );
    erp.err('INV-2024-00465_314575', ['E610 Periode gesperrt']);
    await harness.passUntil(async () => (await harness.acks.ledger.outcomes(id)).some((o) => o.lastError !== null));
    expect(simulator.annotation(314575).notes).toHaveLength(1);
    await harness.passUntil(() => simulator.annotation(314575).status === 'failed_export');
    expect(simulator.annotation(314575).notes).toHaveLength(1);
    expect(simulator.callsTo('GET', '/v1/notes').length).toBeGreaterThanOrEqual(1);
    expect((await harness.acks.ledger.outcomes(id))[0]).toMatchObject({ delivery: 'delivered' });
  });

  it('reads an empty ack file through the SFTP transport (an empty Buffer, not an error)', async () => {
    const folder = join(sshd.acksDir, 'readcheck');
    mkdirSync(folder, { recursive: true });
    const big = Buffer.alloc(100_000, 'a');
    writeFileSync(join(folder, 'empty.ok'), '');
    writeFileSync(join(folder, 'small.err'), 'E1 x\r\n');
    writeFileSync(join(folder, 'big.err'), big);
    const out = createTarget('erp-out', harness.config.targets['erp-out']!, {
      logger: createLogger({ level: 'silent' }),
    });
    try {
      expect(await out.readFile('readcheck/empty.ok')).toEqual(Buffer.alloc(0));
      expect((await out.readFile('readcheck/small.err')).toString()).toBe('E1 x\r\n');
      expect((await out.readFile('readcheck/big.err')).equals(big)).toBe(true);
      await expect(out.readFile('readcheck/missing.err')).rejects.toMatchObject({ code: 'NOT_FOUND' });
    } finally {
      await out.close();
    }
  });

  it('a file still being written is not read until complete; dot-files and upload temp names are never touched', async () => {
    simulator.addAnnotation(314580, { status: 'exported' });
    await harness.exported({ annotationId: 314580, fileName: 'INV-2024-00470_314580.xml', mapping: 'erp-companion' });
    erp.raw('.INV-2024-00470_314580.err.tmp', 'E1 hidden');
    erp.raw('INV-2024-00470_314580.err.part', 'E1 temp');
    const lines = Array.from({ length: 40 }, (_, i) => `E${700 + i} Zeile ${i} der Fehlermeldung`).join('\r\n');
    // Pauses shorter than acks.minAgeMs (100 ms): the ERP is still writing, however it looks between chunks.
    const writing = erp.writeSlowly('INV-2024-00470_314580.err', Buffer.from(lines, 'latin1'), 8, 60);
    // Passes run while the ERP writes; none may read a partial file.
    while (
      !(await Promise.race([
        writing.then(() => true),
        new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 50)),
      ]))
    )
      await harness.acks.pass();
    await harness.passUntil(() => simulator.annotation(314580).status === 'failed_export');
    expect(simulator.annotation(314580).notes[0]!.content).toContain('E739 Zeile 39 der Fehlermeldung');
    expect(inAcks('.INV-2024-00470_314580.err.tmp') && inAcks('INV-2024-00470_314580.err.part')).toBe(true);
  });

  it('never logs the Rossum password or token', () => {
    expect(harness.log.text()).not.toContain(ROSSUM_PASSWORD);
    expect(simulator.calls.filter((call) => call.path.endsWith('/auth/login')).length).toBeGreaterThanOrEqual(1);
    const tokens = simulator.issuedTokens();
    expect(tokens.length).toBeGreaterThanOrEqual(1);
    for (const token of tokens)
      expect(harness.log.text(), 'an API token from the login reached the log').not.toContain(token);
  });
});
