import type { AttemptRecord } from '../../src/rossum/hook-call.ts';
import type { RossumSimulator } from '../support/rossum-simulator.ts';
import { HOOK_SECRET, HOOK_TIMINGS } from './rig.ts';
import type { FaultSchedule } from './schedule.ts';

export interface Attempt {
  id: number;
  record: AttemptRecord;
  endedAt: number;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Rossum's side: signed webhook deliveries with Rossum's retry policy (via the simulator), one new
 * document every `spacingMs`, some delivered twice as the schedule says, then re-deliveries of documents
 * already sent until told to stop. Every HTTP attempt is recorded for the analysis.
 */
export class DeliveryStream {
  readonly attempts: Attempt[] = [];
  deliveries = 0;
  /** Deliveries waiting for their outcome right now. */
  inFlight = 0;
  private readonly pending: Array<Promise<void>> = [];

  constructor(
    private readonly simulator: RossumSimulator,
    private readonly hookUrl: string,
    private readonly payloads: ReadonlyMap<number, Record<string, unknown>>,
  ) {}

  /** Sends every planned document, then keeps re-delivering until `keepGoing` turns false; resolves when every delivery has its outcome. */
  async run(schedule: FaultSchedule, spacingMs: number, keepGoing: () => boolean): Promise<void> {
    for (const { annotationId, again } of schedule.documents) {
      this.pending.push(this.deliver(annotationId));
      if (again === 'concurrent') this.pending.push(this.deliver(annotationId));
      else if (again !== 'none') this.pending.push(sleep(again).then(() => this.deliver(annotationId)));
      await sleep(spacingMs);
    }
    for (let n = 0; keepGoing(); n++) {
      this.pending.push(this.deliver(schedule.redeliveries[n % schedule.redeliveries.length]!));
      await sleep(spacingMs);
    }
    await Promise.all(this.pending);
  }

  /** One delivery of this annotation's export, with Rossum's retries; resolves once Rossum has its outcome. */
  async deliver(id: number): Promise<void> {
    this.deliveries++;
    this.inFlight++;
    try {
      await this.simulator.exportAnnotation(this.payloads.get(id)!, {
        hookUrl: this.hookUrl,
        secret: HOOK_SECRET,
        ...HOOK_TIMINGS,
        onAttempt: (record) => this.attempts.push({ id, record, endedAt: Date.now() }),
      });
    } finally {
      this.inFlight--;
    }
  }
}
