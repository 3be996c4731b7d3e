import { readFileSync } from 'node:fs';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { formatTable, PROFILES, runFaultStream, SECRET } from './fault-run.ts';

// `npm run soak` sets FAULT_PROFILE=soak (thousands of deliveries, more faults); CI runs the short one.
const profileName = process.env.FAULT_PROFILE ?? 'ci';
const base = PROFILES[profileName];
if (!base) throw new Error(`unknown FAULT_PROFILE "${profileName}": ${Object.keys(PROFILES).join(', ')}`);
const seed = process.env.FAULT_SEED ? Number(process.env.FAULT_SEED) : Math.floor(Math.random() * 2 ** 31);
const timeoutMs = profileName === 'soak' ? 60 * 60_000 : 240_000;

describe(`fault stream (${profileName}, seed ${seed})`, () => {
  it(
    'nothing lost, nothing doubled, no partial file ever visible, every failure explained',
    async () => {
      const report = await runFaultStream({ ...base, seed }, (line) => console.log(line));
      console.log(formatTable(report));
      const details = { lost: report.lost, duplicated: report.duplicated, partial: report.partialSeen, unanswered: report.unanswered, bad: report.badReplies, ledger: report.ledgerMismatches };
      if (Object.values(details).some((list) => list.length > 0)) console.log(JSON.stringify(details, null, 2).slice(0, 20_000));

      expect(report.lost).toEqual([]);
      expect(report.duplicated).toEqual([]);
      expect(report.partialSeen).toEqual([]);
      expect(report.exportedExactlyOnce).toBe(report.annotations);
      expect(report.failedWithoutMessage).toBe(0);
      expect(report.ledgerMismatches).toEqual([]);
      expect(report.unexplainedTemps).toEqual([]);
      expect(report.unanswered).toEqual([]);
      expect(report.badReplies).toEqual([]);

      // Every planned fault really happened, and the kills hit uploads in progress.
      const planned = Object.values(base.faults).reduce((a, b) => a + b, 0);
      expect(report.faults).toHaveLength(planned);
      expect(report.deliveries).toBeGreaterThan(report.annotations * 1.2);
      const kills = report.faults.filter((fault) => fault.kind === 'bridgeKill');
      expect(kills.every((fault) => (fault.detail.uploadingAtKill as number) > 0)).toBe(true);
      // Graceful stop: exits 0 after finishing what was in flight.
      expect(report.sigtermExitCodes.every((code) => code === 0)).toBe(true);
      const stops = report.faults.filter((fault) => fault.kind === 'sigterm');
      expect(stops.every((fault) => (fault.detail.inFlightAtSignal as number) > 0)).toBe(true);
      // In-flight exports were finished before the exit: no upload left claimed.
      expect(stops.every((fault) => fault.detail.uploadingAfterStop === 0)).toBe(true);

      // Nothing the process wrote or stored holds a secret.
      const output = readFileSync(report.outputPath, 'utf8');
      expect(output.length).toBeGreaterThan(0);
      const db = new Database(report.ledgerPath, { readonly: true });
      const dump = JSON.stringify([db.prepare('SELECT * FROM exports').all(), db.prepare('SELECT * FROM export_events').all(), db.prepare('SELECT * FROM export_requests').all()]);
      db.close();
      for (const secret of [SECRET, report.sftpPassword, report.privateKeyLine]) {
        expect(output).not.toContain(secret);
        expect(dump).not.toContain(secret);
      }
    },
    timeoutMs,
  );
});
