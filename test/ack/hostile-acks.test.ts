import { existsSync, mkdirSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAcks, type RunningAcks } from '../../src/process/index.ts';
import { bridgeConfigSchema, type BridgeConfig } from '../../src/config/index.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { createTarget, type Target } from '../../src/transport/index.ts';
import { CapturedLog } from '../support/bridge.ts';
import { ErpSimulator } from '../support/erp-simulator.ts';
import { RossumSimulator } from '../support/rossum-simulator.ts';
import { exportThrough, ROSSUM_PASSWORD, ROSSUM_USER } from './harness.ts';

const dir = mkdtempSync(join(tmpdir(), 'rsb-acks-hostile-'));
const outbound = join(dir, 'outbound');
let simulator: RossumSimulator;
let acks: RunningAcks;
let config: BridgeConfig;
let inbound: Target;
let otherInbound: Target;
let erp: ErpSimulator;
const log = new CapturedLog();

const xxe = `<?xml version="1.0"?>
<!DOCTYPE Acknowledgement [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<Acknowledgement><SourceFile>&secret;</SourceFile><Status>OK</Status></Acknowledgement>
`;

function billionLaughs(): string {
  const entities = ['<!ENTITY lol0 "lol">'];
  for (let level = 1; level <= 9; level++) entities.push(`<!ENTITY lol${level} "${`&lol${level - 1};`.repeat(10)}">`);
  return `<?xml version="1.0"?>\n<!DOCTYPE Acknowledgement [\n${entities.join('\n')}\n]>\n<Acknowledgement><SourceFile>&lol9;</SourceFile><Status>&lol9;</Status></Acknowledgement>\n`;
}

/** Each hostile kind, the export it names by file name, and the file the ERP (or an attacker) drops. */
const HOSTILE = [
  {
    kind: 'XXE (external entity)',
    annotationId: 880001,
    export: 'INV-H1.xml',
    ack: 'ACK_INV-H1.xml',
    mapping: 'erp-xml',
    write: () => erp.raw('ACK_INV-H1.xml', xxe),
  },
  {
    kind: 'billion laughs (entity expansion)',
    annotationId: 880002,
    export: 'INV-H2.xml',
    ack: 'ACK_INV-H2.xml',
    mapping: 'erp-xml',
    write: () => erp.raw('ACK_INV-H2.xml', billionLaughs()),
  },
  {
    kind: 'binary garbage as XML',
    annotationId: 880003,
    export: 'INV-H3.xml',
    ack: 'ACK_INV-H3.xml',
    mapping: 'erp-xml',
    write: () => erp.raw('ACK_INV-H3.xml', Buffer.concat([Buffer.from([0, 0xff, 0xfe, 0]), randomBytes(4096)])),
  },
  {
    kind: 'oversized error file (3 MiB)',
    annotationId: 880004,
    export: 'INV-H4.xml',
    ack: 'INV-H4.err',
    mapping: 'erp-companion',
    write: () => erp.raw('INV-H4.err', Buffer.alloc(3 * 1024 * 1024, 'E1 zu viel\r\n')),
  },
  {
    kind: 'binary garbage as an error file',
    annotationId: 880005,
    export: 'INV-H5.xml',
    ack: 'INV-H5.err',
    mapping: 'erp-companion',
    write: () => erp.raw('INV-H5.err', Buffer.concat([Buffer.from([0, 1, 2, 3]), randomBytes(8192)])),
  },
] as const;

beforeAll(async () => {
  simulator = await RossumSimulator.start();
  for (const folder of ['inbound', 'inbound-other', 'outbound-other', 'mappings'])
    mkdirSync(join(dir, folder), { recursive: true });
  // The other target's ack folder cannot be listed (a file stands where the folder should be).
  writeFileSync(join(dir, 'outbound-other', 'acks'), 'not a folder');
  erp = new ErpSimulator(outbound);
  config = bridgeConfigSchema.parse({
    ledger: { url: `sqlite:${join(dir, 'ledger.db')}` },
    mappingsDir: join(dir, 'mappings'),
    targets: {
      share: { url: `file://${join(dir, 'inbound')}` },
      'share-out': { url: `file://${outbound}` },
      other: { url: `file://${join(dir, 'inbound-other')}` },
      'other-out': { url: `file://${join(dir, 'outbound-other')}` },
    },
    routes: [
      { mapping: 'erp-xml', target: 'share' },
      { mapping: 'erp-companion', target: 'share' },
      { mapping: 'erp-deadline', target: 'share' },
      { mapping: 'erp-other-deadline', target: 'other' },
    ],
    rossum: {
      baseUrl: simulator.apiUrl,
      username: ROSSUM_USER,
      password: ROSSUM_PASSWORD,
      retry: { attempts: 2, minDelayMs: 10, maxDelayMs: 50 },
    },
    acks: {
      pollIntervalMs: 60_000,
      minAgeMs: 50,
      targets: {
        share: { folder: '.', readFrom: 'share-out', watch: 'poll' },
        other: { folder: 'acks', readFrom: 'other-out', watch: 'poll' },
      },
      delivery: { leaseMs: 2_000, retryMinMs: 50, retryMaxMs: 100 },
      byMapping: {
        'erp-xml': { convention: 'xml', xml: { files: 'ACK_{stem}.xml' } },
        'erp-companion': { convention: 'companion' },
        'erp-deadline': { convention: 'companion', deadlineMs: 200 },
        'erp-other-deadline': { convention: 'companion', deadlineMs: 200 },
      },
    },
  });
  acks = await startAcks(config, { logger: createLogger({ level: 'debug', destination: log.stream }), loop: false });
  inbound = createTarget('share', config.targets.share!, { logger: createLogger({ level: 'silent' }) });
  otherInbound = createTarget('other', config.targets.other!, { logger: createLogger({ level: 'silent' }) });
});

afterAll(async () => {
  await acks?.close();
  await inbound?.close();
  await otherInbound?.close();
  await simulator?.close();
});

const inFolder = (folder: string): string[] => (existsSync(folder) ? readdirSync(folder) : []);
const ackFileRows = async (): Promise<Array<{ file_name: string; disposition: string }>> => {
  const ledger = acks.ledger as unknown as { db: { prepare(sql: string): { all(): unknown[] } } };
  return ledger.db.prepare('SELECT file_name, disposition FROM ack_files ORDER BY file_name').all() as Array<{
    file_name: string;
    disposition: string;
  }>;
};

/** Passes until `done`; the pause lets files reach acks.minAgeMs (50 ms) between two looks. */
async function passesUntil(what: string, done: () => boolean | Promise<boolean>, maxPasses = 40): Promise<void> {
  for (let pass = 0; pass < maxPasses; pass++) {
    await acks.pass();
    if (await done()) return;
    await new Promise((resolve) => setTimeout(resolve, 80));
  }
  throw new Error(`${what}: not reached after ${maxPasses} passes`);
}

async function passes(count: number): Promise<void> {
  for (let pass = 0; pass < count; pass++) {
    await acks.pass();
    await new Promise((resolve) => setTimeout(resolve, 80));
  }
}

describe('hostile ack files', () => {
  it('XXE, billion laughs, oversized and binary garbage: each moved to invalid/ once, its export flagged, and deadlines still flagged', async () => {
    const ids = new Map<string, number>();
    for (const hostile of HOSTILE) {
      simulator.addAnnotation(hostile.annotationId, { status: 'exported' });
      ids.set(
        hostile.ack,
        await exportThrough(acks.ledger, inbound, {
          annotationId: hostile.annotationId,
          fileName: hostile.export,
          mapping: hostile.mapping,
          bytes: Buffer.from('<x/>'),
        }),
      );
      hostile.write();
    }
    simulator.addAnnotation(880010, { status: 'exported' });
    const waiting = await exportThrough(acks.ledger, inbound, {
      annotationId: 880010,
      fileName: 'INV-D1.xml',
      mapping: 'erp-deadline',
      bytes: Buffer.from('<x/>'),
    });
    simulator.addAnnotation(880011, { status: 'exported' });
    const waitingElsewhere = await exportThrough(acks.ledger, otherInbound, {
      annotationId: 880011,
      fileName: 'INV-D2.xml',
      mapping: 'erp-other-deadline',
      bytes: Buffer.from('<x/>'),
    });

    await passesUntil(
      'every hostile ack judged and the deadline passed',
      async () =>
        HOSTILE.every(
          (hostile) =>
            inFolder(join(outbound, 'invalid')).includes(hostile.ack) &&
            simulator.annotation(hostile.annotationId).status === 'failed_export',
        ) && (await acks.ledger.get(waiting))?.ackState === 'ack_timeout',
    );

    const invalid = inFolder(join(outbound, 'invalid'));
    for (const hostile of HOSTILE) {
      expect(invalid, hostile.kind).toContain(hostile.ack);
      expect(inFolder(outbound), hostile.kind).not.toContain(hostile.ack);
      const record = await acks.ledger.get(ids.get(hostile.ack)!);
      expect(record?.ackState, hostile.kind).toBe('ack_invalid');
      expect(simulator.annotation(hostile.annotationId).status, hostile.kind).toBe('failed_export');
    }
    const rows = await ackFileRows();
    expect(rows.filter((row) => HOSTILE.some((hostile) => hostile.ack === row.file_name))).toEqual(
      HOSTILE.map((hostile) => ({ file_name: hostile.ack, disposition: 'invalid' })).sort((a, b) =>
        a.file_name < b.file_name ? -1 : 1,
      ),
    );
    const oversized = (await acks.ledger.outcomes(ids.get('INV-H4.err')!))[0];
    expect(oversized?.detail.messages[0]?.text).toMatch(
      /INV-H4\.err: 3145728 bytes, over acks\.limits\.maxFileBytes \(1048576 bytes\); not read/,
    );
    const xxeOutcome = (await acks.ledger.outcomes(ids.get('ACK_INV-H1.xml')!))[0];
    expect(xxeOutcome?.detail.messages[0]?.text).toMatch(/ACK_INV-H1\.xml:2: DOCTYPE/);
    expect(JSON.stringify(await acks.ledger.outcomes(ids.get('ACK_INV-H1.xml')!))).not.toContain('root:');

    // The deadline passed while the hostile files sat in the same folder: flagged all the same.
    expect((await acks.ledger.get(waiting))?.ackState).toBe('ack_timeout');
    // The other target's ack folder cannot be listed: its export is not judged (an answer may be there), and it does not stop the others.
    expect((await acks.ledger.get(waitingElsewhere))?.ackState).toBe('awaiting_ack');

    // More passes change nothing: nothing is retried or recorded twice.
    await passes(2);
    expect(await ackFileRows()).toEqual(rows);
  }, 120_000);

  it('an error file with thousands of long lines and control characters: messages bounded, note cleaned and cut with a mark', async () => {
    simulator.addAnnotation(880020, { status: 'exported' });
    const id = await exportThrough(acks.ledger, inbound, {
      annotationId: 880020,
      fileName: 'INV-M1.xml',
      mapping: 'erp-companion',
      bytes: Buffer.from('<x/>'),
    });
    const hostileLine =
      'E7 Bell\u0007 escape\u001b[31m red\u001b[0m C1\u0085\u009b next-line, bidi \u202Egnp.exe\u202C and \u2066isolate\u2069\ttab';
    const lines = [hostileLine, ...Array.from({ length: 400 }, (_, i) => `E${i} ${'x'.repeat(2_000)}`)];
    erp.raw('INV-M1.err', Buffer.from(lines.map((line) => `${line}\r\n`).join(''), 'utf8'));
    await passesUntil('the note told to Rossum', () => simulator.annotation(880020).notes.length > 0, 20);

    const [outcome] = await acks.ledger.outcomes(id);
    expect(outcome?.detail.messages).toHaveLength(51);
    // Cleaned before the ledger, so `status` and held-export replies show safe text too.
    expect(outcome?.detail.messages[0]).toEqual({
      code: 'E7',
      text: 'Bell escape[31m red[0m C1 next-line, bidi gnp.exe and isolate\ttab',
    });
    expect(outcome?.detail.messages.at(-1)?.text).toBe('… and 351 more message(s) in the ack file');
    expect(
      Math.max(...(outcome?.detail.messages ?? []).map((message) => Array.from(message.text).length)),
    ).toBeLessThanOrEqual(1_000);

    const note = simulator.annotation(880020).notes[0]!.content;
    expect(Array.from(note).length).toBeLessThanOrEqual(4_096);
    expect(note).toContain('…');
    expect(note).toMatch(/\[rossum-sftp-bridge ack outcome \d+\]$/);
    expect(note).toContain('Bell escape[31m red[0m C1 next-line, bidi gnp.exe and isolate\ttab');
    expect(note).toContain('\n');
    expect(note).not.toMatch(/[\u0000-\u0008\u000B-\u001F\u007F-\u009F\u202A-\u202E\u2066-\u2069]/);
    const metadata = simulator.annotation(880020).metadata as { erp_ack: { messages: string[] } };
    expect(JSON.stringify(metadata).length).toBeLessThan(4_096);
    expect(metadata.erp_ack.messages[0]).toBe('E7 Bell escape[31m red[0m C1 next-line, bidi gnp.exe and isolate\ttab');
    expect(metadata.erp_ack.messages.join('\n')).not.toMatch(
      /[\u0000-\u0008\u000B-\u001F\u007F-\u009F\u202A-\u202E\u2066-\u2069]/,
    );
  }, 60_000);
});
