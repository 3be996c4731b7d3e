import { createHmac, timingSafeEqual } from 'node:crypto';
import type { AcksConfig, HoldConfig } from './config.ts';
import type { AckOutcome, ExportRecord, Ledger } from '../ledger/index.ts';
import type { Logger } from '../observability/index.ts';
import { ROSSUM_MESSAGE_LIMIT as MESSAGE_LIMIT } from '../rossum/index.ts';
import type { ExportReply, RossumMessage } from '../export/index.ts';

/** An HTTP answer for Rossum's side of a held export. */
export interface HeldAnswer {
  /** 202 = polling starts; 201 = final (Rossum reads the messages); 503 = not yet, keep polling. */
  statusCode: 201 | 202 | 503;
  headers: Record<string, string>;
  body: { messages: RossumMessage[] };
}

export interface ExportHoldOptions {
  ledger: Ledger;
  acks: AcksConfig;
  /** Signs poll URLs so nobody can guess another export's. */
  secret: string;
  logger: Logger;
  now?: () => number;
}

/**
 * Rossum polls a held export every 30 s and gives up after `max_polling_time_s` (300 s for export
 * events, not changeable). Counted from the call that started the hold, and one poll interval short of
 * it, the final answer always reaches a poll Rossum still makes.
 */
export const ROSSUM_MAX_POLLING_MS = 300_000;
export const ROSSUM_POLL_INTERVAL_MS = 30_000;
export const HOLD_CEILING_MS = ROSSUM_MAX_POLLING_MS - ROSSUM_POLL_INTERVAL_MS;

/**
 * Held-export mode: the export webhook answers 202 + Location, and each poll answers "not yet" (503,
 * which Rossum documents as "keep polling") until the `acks` process has recorded the ERP's verdict in
 * the ledger; then 201 with the ERP's own messages (error → failed_export, info → exported). When the
 * wait runs out the poll answers success saying the ack is still awaited, and the ack loop takes over.
 */
export class ExportHold {
  private readonly now: () => number;

  constructor(private readonly options: ExportHoldOptions) {
    this.now = options.now ?? Date.now;
  }

  private settingsFor(mappingName: string): HoldConfig | undefined {
    const hold = this.options.acks.byMapping[mappingName]?.hold;
    return hold?.enabled ? hold : undefined;
  }

  /**
   * After an export: a 202 with the poll URL when its mapping holds exports, else null (answer as usual).
   * `callStartedAt` is when Rossum's call arrived: the wait counts from there, not from the end of the upload.
   */
  async hold(reply: ExportReply, pollBaseUrl: string, callStartedAt: number = this.now()): Promise<HeldAnswer | null> {
    if (reply.statusCode !== 200 || reply.exportId === undefined || reply.mappingName === undefined) return null;
    if (reply.body.messages.some((message) => message.type === 'error')) return null;
    const settings = this.settingsFor(reply.mappingName);
    if (!settings) return null;
    const record = await this.options.ledger.get(reply.exportId);
    if (record?.status !== 'uploaded') return null;
    // A retried delivery of an export whose hold already ended gets the ordinary answer.
    if (record.holdState === 'answered' || record.holdState === 'released') return null;
    const maxWaitMs = Math.min(settings.maxWaitMs, HOLD_CEILING_MS);
    if (record.holdState === null) await this.options.ledger.startHold(record.id, callStartedAt + maxWaitMs);
    this.options.logger.info(
      { exportId: record.id, annotationId: record.annotationId, maxWaitMs },
      'export held until the ERP answers',
    );
    return {
      statusCode: 202,
      headers: { location: `${pollBaseUrl.replace(/\/+$/, '')}/${record.id}/${this.token(record.id)}` },
      body: { messages: [{ type: 'info', content: `Uploaded ${record.remotePath}; waiting for the ERP's answer` }] },
    };
  }

  /** One poll from Rossum. */
  async poll(
    exportId: number,
    token: string,
  ): Promise<HeldAnswer | { statusCode: 404; headers: Record<string, string>; body: { messages: RossumMessage[] } }> {
    const record = this.validToken(exportId, token) ? await this.options.ledger.get(exportId) : undefined;
    if (!record || record.holdState === null)
      return {
        statusCode: 404,
        headers: {},
        body: { messages: [{ type: 'error', content: 'No held export at this address' }] },
      };
    const settings = this.settingsFor(record.mappingName);
    const verdict =
      record.ackState === 'accepted' || record.ackState === 'rejected' || record.ackState === 'ack_invalid';
    if (
      verdict &&
      (record.holdState === 'answered' || (await this.options.ledger.moveHold(record.id, ['pending'], 'answered')))
    ) {
      return this.final(await this.verdictMessages(record));
    }
    if (record.holdState === 'released') return this.final(stillAwaited(record));
    if (this.now() < (record.holdUntil ?? 0)) {
      const retryAfter = String(settings?.retryAfterS ?? 30);
      return {
        statusCode: 503,
        headers: { 'retry-after': retryAfter },
        body: { messages: [{ type: 'info', content: `Waiting for the ERP's answer to ${record.remotePath}` }] },
      };
    }
    if (await this.options.ledger.moveHold(record.id, ['pending'], 'released')) {
      this.options.logger.info(
        { exportId: record.id, annotationId: record.annotationId },
        'hold ended without an ERP answer; the ack loop reports it when it comes',
      );
      return this.final(stillAwaited(record));
    }
    // The verdict arrived between reading the record and releasing it.
    return this.poll(exportId, token);
  }

  private final(messages: RossumMessage[]): HeldAnswer {
    return { statusCode: 201, headers: {}, body: { messages } };
  }

  private async verdictMessages(record: ExportRecord): Promise<RossumMessage[]> {
    const outcomes = await this.options.ledger.outcomes(record.id);
    const last: AckOutcome | undefined = outcomes.filter((outcome) => outcome.kind !== 'duplicate').at(-1);
    const reasons = last?.detail.messages ?? [];
    const file = record.remotePath ?? record.plannedPath;
    if (record.ackState === 'accepted') {
      return [
        {
          type: 'info',
          content: limit(
            `The ERP accepted ${file}${record.erpReference ? ` (ERP reference ${record.erpReference})` : ''}`,
          ),
        },
      ];
    }
    if (record.ackState === 'ack_invalid') {
      return [
        {
          type: 'error',
          content: limit(`The ERP's answer for ${file} could not be read: ${reasons.map((m) => m.text).join('; ')}`),
        },
      ];
    }
    if (reasons.length === 0)
      return [{ type: 'error', content: limit(`The ERP rejected ${file} without giving a reason`) }];
    return reasons.map((reason) => ({
      type: 'error' as const,
      content: limit(`ERP rejected ${file}: ${reason.code ? `${reason.code} ` : ''}${reason.text}`),
    }));
  }

  private token(exportId: number): string {
    return createHmac('sha256', this.options.secret).update(`held-export:${exportId}`).digest('base64url').slice(0, 32);
  }

  private validToken(exportId: number, token: string): boolean {
    const expected = Buffer.from(this.token(exportId));
    const given = Buffer.from(token);
    return given.length === expected.length && timingSafeEqual(given, expected);
  }
}

function stillAwaited(record: ExportRecord): RossumMessage[] {
  return [
    {
      type: 'info',
      content: `Exported ${record.remotePath}; the ERP has not answered yet. Its answer will be reported on this annotation (status and note) when it arrives.`,
    },
  ];
}

function limit(text: string): string {
  return text.length <= MESSAGE_LIMIT ? text : `${text.slice(0, MESSAGE_LIMIT - 1)}…`;
}
