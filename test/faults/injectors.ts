import { chmodSync, readdirSync } from 'node:fs';
import type { DeliveryStream } from './deliveries.ts';
import { TEMP_NAME } from './documents.ts';
import type { ErpSide } from './erp-side.ts';
import type { LedgerProbe } from './ledger-probe.ts';
import type { FaultRig } from './rig.ts';
import type { FaultKind, PlannedFault } from './schedule.ts';

/** Times the bridge was down or stopping on purpose: webhook attempts failing then are Rossum's to retry. */
export interface ServeWindows {
  /** Killed or stopped until restarted; `startedAfter`: only attempts started after it are excused (a graceful stop answers the earlier ones). */
  down: Array<{ from: number; to: number; startedAfter?: number }>;
  /** From SIGTERM to exit: idle keep-alive connections are closed then. */
  stopping: Array<{ from: number; to: number }>;
}

export interface InjectorContext {
  rig: FaultRig;
  probe: LedgerProbe;
  erp: ErpSide;
  deliveries: DeliveryStream;
  windows: ServeWindows;
  sigtermExitCodes: Array<number | null>;
}

export type Injector = (fault: PlannedFault) => Promise<Record<string, unknown>>;

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Waits until `condition` holds or `timeoutMs` passed; returns whether it held. */
async function waitUntil(condition: () => boolean, timeoutMs: number, stepMs = 1): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) return false;
    await sleep(stepMs);
  }
  return true;
}

/** One injector per fault kind; each returns what it found, for the report. */
export function faultInjectors(context: InjectorContext): Record<FaultKind, Injector> {
  const { rig, probe, erp, deliveries, windows } = context;
  return {
    sshdKill: async ({ durationMs }) => {
      await rig.sshd.kill('SIGKILL');
      await sleep(durationMs);
      await rig.sshd.restart();
      return { downMs: durationMs };
    },

    bridgeKill: async ({ durationMs }) => {
      // Mid-upload: wait until the ledger shows an upload in progress, then kill at once.
      let uploading = 0;
      await waitUntil(() => {
        uploading = probe.uploading();
        return uploading > 0;
      }, 10_000);
      const from = Date.now();
      rig.serve.kill('SIGKILL');
      await rig.serve.exited;
      const tempsAtKill = readdirSync(rig.sshd.inboundDir).filter((name) => TEMP_NAME.test(name)).length;
      await sleep(durationMs);
      await rig.startServe();
      windows.down.push({ from, to: Date.now() });
      return { uploadingAtKill: uploading, tempsAtKill };
    },

    stall: async ({ durationMs }) => {
      rig.proxy.stall();
      await sleep(durationMs);
      rig.proxy.resume();
      return { stallMs: durationMs };
    },

    readOnly: async ({ durationMs }) => {
      // Both folders: uploads fail (Rossum is told), and acks cannot be archived (they wait for the next pass).
      chmodSync(rig.sshd.inboundDir, 0o555);
      chmodSync(rig.sshd.acksDir, 0o555);
      await sleep(durationMs);
      chmodSync(rig.sshd.inboundDir, 0o755);
      chmodSync(rig.sshd.acksDir, 0o755);
      return { readOnlyMs: durationMs };
    },

    acksKill: async ({ durationMs }) => {
      // Mid-batch, by construction: hold the ERP's answers back until some pile up, write half of them, wait for
      // the event "one of them is recorded", write the rest and kill at once. The rest is still in the folder then:
      // the acks process reads a file only after two looks a poll interval apart, and only once it is minAgeMs old.
      const pausedAt = Date.now();
      erp.pause();
      // Up to 4 s for 6 answers: held back longer, answers pass their ack deadline under load (and the track drags on).
      await waitUntil(() => erp.queued >= 6, 4_000, 10);
      // Early in a stream (or while the bridge is down) answers come slowly: a kill with nothing to cut is no test.
      if (!(await waitUntil(() => erp.queued >= 2, 120_000, 10)))
        throw new Error('acksKill: the ERP had fewer than 2 answers to write within 120 s; nothing to kill mid-batch');
      const answersWaitMs = Date.now() - pausedAt;
      const firstHalf = new Set(erp.flush(Math.ceil(erp.queued / 2)));
      const flushedAt = Date.now();
      let recordedAtKill = 0;
      await waitUntil(() => {
        recordedAtKill = probe.ackFilesRecorded(firstHalf);
        return recordedAtKill > 0;
      }, 15_000);
      const recordWaitMs = Date.now() - flushedAt;
      const secondHalf = erp.flushAll();
      const exit = await rig.killAcks('SIGKILL');
      const leftInFolder = readdirSync(rig.sshd.acksDir, { withFileTypes: true }).filter(
        (entry) => entry.isFile() && !entry.name.startsWith('.'),
      ).length;
      await sleep(durationMs);
      await rig.restartAcks();
      return {
        batch: firstHalf.size + secondHalf.length,
        recordedAtKill,
        writtenJustBeforeKill: secondHalf.length,
        leftInFolder,
        signal: exit.signal,
        answersWaitMs,
        recordWaitMs,
      };
    },

    rossumApi: async ({ durationMs, annotationIds }) => {
      // Every API call in the window gets 503 or 429 (Retry-After: 1 s); a few queued ones outlive it. The window
      // lasts until some calls were refused, at most 60 s. Calls come by construction: the window's own documents
      // are sent once it is open, the ERP rejects them, and the acks process must tell Rossum.
      const { simulator } = rig;
      // Calls are only appended: count the refused ones from where the window began.
      const firstCall = simulator.calls.length;
      const refused = (): number => simulator.calls.slice(firstCall).filter((call) => call.injected).length;
      const from = Date.now();
      let queued = 0;
      const inject = (): void => {
        while (simulator.pendingFaults() < 3)
          simulator.injectFaults(queued++ % 3 === 0 ? { status: 429, retryAfter: '1' } : { status: 503 });
      };
      inject();
      const exports = annotationIds.map((id) => deliveries.deliver(id));
      while (Date.now() - from < durationMs || (refused() < 3 && Date.now() - from < 60_000)) {
        inject();
        await sleep(5);
      }
      await Promise.all(exports);
      return { windowMs: Date.now() - from, answered: refused(), rejectedDocumentsSent: annotationIds.length };
    },

    tokenExpiry: async () => {
      // Every Rossum token dies at once, mid-stream (as after 162 h): the acks process must log in again
      // at its next call and lose nothing. It may be idle; the report says whether it needed a login before the end.
      const { simulator } = rig;
      const loginsBefore = simulator.callsTo('POST', '/v1/auth/login').length;
      const firstCall = simulator.calls.length;
      simulator.expireAllTokens();
      await waitUntil(() => simulator.callsTo('POST', '/v1/auth/login').length > loginsBefore, 30_000);
      const after = simulator.calls.slice(firstCall);
      return {
        refused401: after.filter((call) => call.status === 401).length,
        loginsAfter: simulator.callsTo('POST', '/v1/auth/login').length - loginsBefore,
      };
    },

    sigterm: async () => {
      await waitUntil(() => deliveries.inFlight > 0, 5_000);
      const inFlightAtSignal = deliveries.inFlight;
      const stopped = rig.serve;
      const from = Date.now();
      stopped.kill('SIGTERM');
      const exit = await Promise.race([stopped.exited, sleep(20_000).then(() => null)]);
      if (exit === null) stopped.kill('SIGKILL');
      context.sigtermExitCodes.push(exit === null ? null : exit.code);
      const stoppedAt = Date.now();
      const uploadingAfterStop = probe.uploading(stopped.pid);
      windows.stopping.push({ from, to: stoppedAt });
      await rig.startServe();
      // Requests started before the signal must have been answered; later ones may be refused (Rossum retries them).
      windows.down.push({ from, to: Date.now(), startedAfter: from - 5 });
      return {
        inFlightAtSignal,
        uploadingAfterStop,
        exitCode: exit?.code ?? 'hung',
        stopMs: stoppedAt - from,
        signalAt: from,
      };
    },
  };
}
