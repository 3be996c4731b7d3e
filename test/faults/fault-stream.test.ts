import { readFileSync } from 'node:fs';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { FaultRig, formatTable, freshSeed, PROFILES, runFaultStream, SECRET } from './fault-run.ts';
import { DOWNLOAD_FAULTS } from './schedule.ts';

// `npm run soak` sets FAULT_PROFILE=soak (thousands of deliveries, more faults); CI runs the short one.
const profileName = process.env.FAULT_PROFILE ?? 'ci';
const base = PROFILES[profileName];
if (!base) throw new Error(`unknown FAULT_PROFILE "${profileName}": ${Object.keys(PROFILES).join(', ')}`);
// FAULT_SEED replays a run: the whole schedule (documents, faults, ERP answers) comes from it.
const seed = process.env.FAULT_SEED ? Number(process.env.FAULT_SEED) : freshSeed();
if (!Number.isSafeInteger(seed) || seed < 0)
  throw new Error(`FAULT_SEED must be a non-negative integer, got "${process.env.FAULT_SEED}"`);
const timeoutMs = profileName === 'soak' ? 60 * 60_000 : 300_000;

describe(`fault stream (${profileName}, seed ${seed})`, () => {
  // A failed or timed-out run leaves nothing running (the happy path closes its rig itself).
  afterAll(() => FaultRig.abortAll());

  it(
    'nothing lost, nothing doubled, no partial file ever visible, every failure explained',
    async () => {
      const report = await runFaultStream({ ...base, seed }, (line) => console.log(line));
      console.log(formatTable(report));
      const { acks } = report;
      const details = {
        lost: report.lost,
        duplicated: report.duplicated,
        partial: report.partialSeen,
        unanswered: report.unanswered,
        bad: report.badReplies,
        ledger: report.ledgerMismatches,
        ackFilesLost: acks.lost,
        acksNotOnce: acks.notProcessedOnce,
        doubleFlags: acks.doubleFlags,
        ackWrong: acks.wrong,
        undelivered: acks.undelivered,
        acksCrashes: acks.crashes,
      };
      if (Object.values(details).some((list) => list.length > 0))
        console.log(JSON.stringify(details, null, 2).slice(0, 20_000));

      expect(report.lost).toEqual([]);
      expect(report.duplicated).toEqual([]);
      expect(report.partialSeen).toEqual([]);
      expect(report.exportedExactlyOnce).toBe(report.annotations);
      // Document downloads: the scan mapping was in the mix and every kind of download fault struck.
      expect(report.scans).toBeGreaterThan(0);
      const downloadFaults = new Set(report.documentDownloads.map((download) => download.fault));
      for (const kind of DOWNLOAD_FAULTS) expect(downloadFaults, `download fault ${kind}`).toContain(kind);
      expect(report.failedWithoutMessage).toBe(0);
      expect(report.ledgerMismatches).toEqual([]);
      expect(report.unexplainedTemps).toEqual([]);
      expect(report.unanswered).toEqual([]);
      expect(report.badReplies).toEqual([]);

      // The ack loop: every answer read once and archived, every rejection and silence flagged once, nothing else touched.
      expect(acks.crashes).toEqual([]);
      expect(acks.lost).toEqual([]);
      expect(acks.notProcessedOnce).toEqual([]);
      expect(acks.doubleFlags).toEqual([]);
      expect(acks.wrong).toEqual([]);
      expect(acks.undelivered).toEqual([]);
      expect(acks.processedOnce).toBe(acks.filesWritten);
      expect(acks.filesWritten).toBe(acks.verdicts.accept + acks.verdicts.reject + acks.noise);
      expect(acks.rejectedFlaggedOnce).toBe(acks.verdicts.reject);
      expect(acks.silentFlaggedOnce).toBe(acks.verdicts.silent);
      expect(acks.acceptedUntouched).toBe(acks.verdicts.accept);
      expect(acks.verdicts.accept + acks.verdicts.reject + acks.verdicts.silent).toBe(report.annotations);
      // The mix really exercised each path, and Rossum really refused calls.
      expect(acks.verdicts.reject).toBeGreaterThan(0);
      expect(acks.verdicts.silent).toBeGreaterThan(0);
      expect(acks.noise).toBe(base.erp.noise);
      expect(acks.injectedApiReplies).toBeGreaterThan(0);
      expect(acks.exit).toEqual({ code: 0, signal: null });

      // Every planned fault really happened, and the kills hit uploads in progress.
      const planned = Object.values(base.faults).reduce((a, b) => a + b, 0);
      expect(report.faults).toHaveLength(planned);
      expect(report.deliveries).toBeGreaterThan(report.annotations * 1.2);
      const kills = report.faults.filter((fault) => fault.kind === 'bridgeKill');
      expect(kills.every((fault) => (fault.detail.uploadingAtKill as number) > 0)).toBe(true);
      // The acks process died mid-batch: part of a burst recorded, part still in the folder.
      const acksKills = report.faults.filter((fault) => fault.kind === 'acksKill');
      expect(acksKills.map((fault) => fault.detail.signal)).toEqual(acksKills.map(() => 'SIGKILL'));
      expect(
        acksKills.every(
          (fault) => (fault.detail.recordedAtKill as number) > 0 && (fault.detail.leftInFolder as number) > 0,
        ),
      ).toBe(true);
      // By construction, not by luck: the kill waited for a record of the first half and wrote the second half just before it.
      expect(acksKills.every((fault) => (fault.detail.writtenJustBeforeKill as number) > 0)).toBe(true);
      // Each API window refused calls: it sends its own rejected documents once it is open, so there are calls to refuse.
      expect(
        report.faults
          .filter((fault) => fault.kind === 'rossumApi')
          .every((fault) => (fault.detail.answered as number) > 0),
      ).toBe(true);
      // Graceful stop: exits 0 after finishing what was in flight.
      expect(report.sigtermExitCodes.every((code) => code === 0)).toBe(true);
      const stops = report.faults.filter((fault) => fault.kind === 'sigterm');
      expect(stops.every((fault) => (fault.detail.inFlightAtSignal as number) > 0)).toBe(true);
      // In-flight exports were finished before the exit: no upload left claimed.
      expect(stops.every((fault) => fault.detail.uploadingAfterStop === 0)).toBe(true);

      // Nothing the process wrote or stored holds a secret.
      const output = readFileSync(report.outputPath, 'utf8') + readFileSync(acks.outputPath, 'utf8');
      expect(output.length).toBeGreaterThan(0);
      const db = new Database(report.ledgerPath, { readonly: true });
      const dump = JSON.stringify(
        ['exports', 'export_events', 'export_requests', 'ack_files', 'ack_outcomes'].map((table) =>
          db.prepare(`SELECT * FROM ${table}`).all(),
        ),
      );
      db.close();
      for (const secret of [SECRET, report.sftpPassword, report.rossumPassword, report.privateKeyLine]) {
        expect(output).not.toContain(secret);
        expect(dump).not.toContain(secret);
      }
    },
    timeoutMs,
  );
});
