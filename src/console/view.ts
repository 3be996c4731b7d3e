import { fileURLToPath } from 'node:url';
import { Eta } from 'eta';
import type { ExportState } from '../ledger/index.ts';
import type { ConsoleSession } from './session.ts';

const VIEWS = fileURLToPath(new URL('./views/', import.meta.url));

/** What every page's layout needs. */
export interface PageFrame {
  prefix: string;
  title: string;
  session: ConsoleSession | null;
  csrfToken: string;
  /** Which navigation entry is current. */
  section: 'exports' | 'overview' | 'ack-files' | 'login';
  scripts?: string[];
  styles?: string[];
}

/** Templates escape every `<%= %>` value; nothing the ledger holds is ever written unescaped. */
export class Views {
  private readonly eta = new Eta({
    views: VIEWS,
    autoEscape: true,
    cache: true,
    defaultExtension: '.eta',
    autoTrim: [false, 'nl'],
  });

  page(template: string, frame: PageFrame, data: Record<string, unknown>): string {
    const helpers = { ...format, prefix: frame.prefix, session: frame.session, csrfToken: frame.csrfToken };
    const body = this.eta.render(template, { ...helpers, ...data });
    return this.eta.render('layout', { ...helpers, ...frame, body });
  }

  fragment(template: string, prefix: string, data: Record<string, unknown>): string {
    return this.eta.render(template, { ...format, prefix, ...data });
  }
}

const STATE_LABELS: Record<ExportState, string> = {
  uploading: 'Uploading',
  uploaded: 'Uploaded',
  failed: 'Failed',
  retryable: 'Upload failed (transient)',
  awaiting_ack: 'Awaiting ack',
  accepted: 'Accepted',
  rejected: 'Rejected',
  ack_timeout: 'Ack timed out',
  ack_invalid: 'Ack unreadable',
};

const TONES: Record<ExportState, 'ok' | 'bad' | 'wait' | 'info'> = {
  uploading: 'wait',
  uploaded: 'info',
  failed: 'bad',
  retryable: 'bad',
  awaiting_ack: 'wait',
  accepted: 'ok',
  rejected: 'bad',
  ack_timeout: 'bad',
  ack_invalid: 'bad',
};

const DELIVERY_LABELS: Record<string, string> = {
  pending: 'Rossum pending',
  delivered: 'Rossum told',
  not_needed: 'Nothing to tell',
  by_hold: 'Told by held reply',
  failed: 'Rossum not told (failed)',
};

export const format = {
  stateLabel: (state: ExportState): string => STATE_LABELS[state] ?? state,
  stateTone: (state: ExportState): string => TONES[state] ?? 'info',
  deliveryLabel: (delivery: string | null): string => (delivery ? (DELIVERY_LABELS[delivery] ?? delivery) : ''),
  /** UTC, to the second: operators compare it with server logs. */
  time: (epochMs: number | null | undefined): string =>
    epochMs === null || epochMs === undefined
      ? ''
      : `${new Date(epochMs).toISOString().slice(0, 19).replace('T', ' ')} UTC`,
  isoTime: (epochMs: number | null | undefined): string =>
    epochMs === null || epochMs === undefined ? '' : new Date(epochMs).toISOString(),
  duration: (ms: number | null | undefined): string => {
    if (ms === null || ms === undefined) return '';
    if (ms < 1000) return `${ms} ms`;
    if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
    if (ms < 3_600_000) return `${Math.round(ms / 60_000)} min`;
    return `${(ms / 3_600_000).toFixed(1)} h`;
  },
  bytes: (count: number): string =>
    count < 1024
      ? `${count} B`
      : count < 1024 * 1024
        ? `${(count / 1024).toFixed(1)} KiB`
        : `${(count / 1024 / 1024).toFixed(1)} MiB`,
  json: (value: unknown): string => JSON.stringify(value),
};
