import type { FastifyInstance } from 'fastify';
import {
  EXPORT_STATES,
  type AckFileContent,
  type ConsoleCursor,
  type ConsoleExportFilter,
  type ExportState,
  type LedgerEvent,
} from '../ledger/index.ts';
import type { ConsoleContext } from './context.ts';
import { decodeText, readRenderedFile, VIEW_LIMIT_BYTES } from './rendered-file.ts';
import { format } from './view.ts';

interface ListQuery {
  state?: string;
  mapping?: string;
  target?: string;
  from?: string;
  to?: string;
  q?: string;
  after?: string;
}

const DAY_MS = 86_400_000;

/** The list's query string → a ledger filter, or the field that is wrong and why. */
export function parseListQuery(
  query: ListQuery,
):
  | { ok: true; filter: ConsoleExportFilter; after: ConsoleCursor | null }
  | { ok: false; field: string; message: string } {
  const filter: ConsoleExportFilter = {};
  const text = (value: string | undefined): string | undefined => {
    const trimmed = value?.trim();
    return trimmed ? trimmed.slice(0, 300) : undefined;
  };
  const state = text(query.state);
  if (state !== undefined) {
    if (!(EXPORT_STATES as readonly string[]).includes(state))
      return { ok: false, field: 'state', message: `unknown state "${state}": one of ${EXPORT_STATES.join(', ')}` };
    filter.state = state as ExportState;
  }
  const mapping = text(query.mapping);
  if (mapping !== undefined) filter.mappingName = mapping;
  const target = text(query.target);
  if (target !== undefined) filter.target = target;
  for (const [field, value] of [
    ['from', text(query.from)],
    ['to', text(query.to)],
  ] as const) {
    if (value === undefined) continue;
    const day = /^\d{4}-\d{2}-\d{2}$/.test(value) ? Date.parse(`${value}T00:00:00Z`) : Number.NaN;
    if (Number.isNaN(day)) return { ok: false, field, message: `"${value}" is not a date (YYYY-MM-DD)` };
    if (field === 'from') filter.createdFrom = day;
    else filter.createdTo = day + DAY_MS;
  }
  const search = text(query.q);
  if (search !== undefined) filter.search = search;
  let after: ConsoleCursor | null = null;
  const cursor = text(query.after);
  if (cursor !== undefined) {
    const match = /^(\d{1,16})\.(\d{1,16})$/.exec(cursor);
    if (!match) return { ok: false, field: 'after', message: 'not a page cursor' };
    after = { createdAt: Number(match[1]), id: Number(match[2]) };
  }
  return { ok: true, filter, after };
}

/** The same filters as a query string (for paging and the live refresh). */
function queryString(query: ListQuery, extra: Record<string, string> = {}): string {
  const params = new URLSearchParams();
  for (const key of ['state', 'mapping', 'target', 'from', 'to', 'q'] as const) {
    const value = query[key]?.trim();
    if (value) params.set(key, value);
  }
  for (const [key, value] of Object.entries(extra)) params.set(key, value);
  const text = params.toString();
  return text ? `?${text}` : '';
}

const SECRET_KEYS = /secret|password|passphrase|token|authorization|private/i;

/** Event details as label/value pairs, never showing anything under a secret-sounding key. */
function describeEvent(event: LedgerEvent): Array<[string, string]> {
  return Object.entries(event.detail).map(([key, value]) => {
    if (SECRET_KEYS.test(key)) return [key, '(hidden)'];
    if (typeof value === 'string') return [key, value];
    // Epoch-ms fields (deadlineAt, retryAt, until) read as times.
    if (typeof value === 'number' && (/At$/.test(key) || key === 'until') && value > 1e12)
      return [key, format.time(value)];
    return [key, JSON.stringify(value)];
  });
}

const EVENT_TITLES: Record<string, string> = {
  claimed: 'Webhook received, file rendered',
  uploaded: 'Uploaded',
  failed: 'Failed',
  transient_failure: 'Upload failed (transient)',
  takeover: 'Retried (took over)',
  duplicate_in_progress: 'Duplicate delivery while uploading',
  duplicate_answered: 'Duplicate delivery answered',
  awaiting_ack: 'Waiting for the ERP',
  ack_accepted: 'ERP accepted',
  ack_rejected: 'ERP rejected',
  ack_invalid: 'Ack file unreadable',
  ack_accepted_late: 'ERP accepted (late)',
  ack_rejected_late: 'ERP rejected (late)',
  ack_duplicate: 'Repeated ack',
  ack_timeout: 'No ack in time',
  rossum_told: 'Rossum told',
  rossum_delivery_retry: 'Telling Rossum failed, will retry',
  rossum_delivery_failed: 'Telling Rossum failed',
  console_redeliver: 'Queued for Rossum again (console)',
  console_retry: 'Upload retried (console)',
  hold_started: 'Held: Rossum polls',
  hold_answered: 'Held export answered',
  hold_released: 'Held export released',
};

/** An ack file's kept content as text in the encoding its convention read it in (escaped by the template). */
function shownAckContent(content: AckFileContent): {
  text: string;
  encoding: string;
  totalBytes: number;
  shownBytes: number;
  truncated: boolean;
} {
  const decoded = decodeText(content.content, content.encoding ?? 'utf-8');
  return {
    text: decoded.text,
    encoding: decoded.encoding,
    totalBytes: content.totalBytes,
    shownBytes: content.content.length,
    truncated: content.truncated,
  };
}

export function registerExportRoutes(app: FastifyInstance, context: ConsoleContext): void {
  const { prefix, console: ledgerView, ledger, config } = context;

  app.get('/', async (_request, reply) => reply.redirect(`${prefix}/exports`, 303));

  app.get<{ Querystring: ListQuery }>('/exports', async (request, reply) => {
    const parsed = parseListQuery(request.query);
    if (!parsed.ok) return context.problem(request, reply, 400, 'Bad filter', `${parsed.field}: ${parsed.message}`);
    const [page, choices, mark] = await Promise.all([
      ledgerView.listExports(parsed.filter, parsed.after, config.pageSize),
      ledgerView.filterChoices(),
      ledgerView.changeMark(),
    ]);
    const next = page.next
      ? `${prefix}/exports${queryString(request.query, { after: `${page.next.createdAt}.${page.next.id}` })}`
      : null;
    return context.page(
      request,
      reply,
      'exports',
      { title: 'Exports', section: 'exports', scripts: ['live.js'] },
      {
        rows: page.rows,
        query: request.query,
        states: EXPORT_STATES,
        choices,
        next,
        first: parsed.after === null ? null : `${prefix}/exports${queryString(request.query)}`,
        // Only the newest page refreshes itself: older pages stay put while the operator reads them.
        live: parsed.after === null ? { mark, rowsUrl: `${prefix}/exports/rows${queryString(request.query)}` } : null,
        filtered: Object.keys(parsed.filter).length > 0,
      },
    );
  });

  app.get<{ Querystring: ListQuery }>('/exports/rows', async (request, reply) => {
    const parsed = parseListQuery(request.query);
    if (!parsed.ok) return reply.code(400).type('text/plain; charset=utf-8').send(`${parsed.field}: ${parsed.message}`);
    const [page, mark] = await Promise.all([
      ledgerView.listExports(parsed.filter, null, config.pageSize),
      ledgerView.changeMark(),
    ]);
    return reply
      .type('text/html; charset=utf-8')
      .header('x-change-mark', String(mark))
      .send(context.views.fragment('rows', prefix, { rows: page.rows }));
  });

  app.get('/live', async () => ({ mark: await ledgerView.changeMark() }));

  app.get<{ Params: { id: string } }>('/exports/:id', async (request, reply) => {
    const id = Number(request.params.id);
    const record = Number.isSafeInteger(id) ? await ledger.get(id) : undefined;
    if (!record) return context.problem(request, reply, 404, 'Not found', `There is no export ${request.params.id}.`);
    const [events, outcomes, ackFiles, actions, kept] = await Promise.all([
      ledger.events(id),
      ledger.outcomes(id),
      ledgerView.ackFilesOfExport(id),
      ledgerView.actionsOfExport(id),
      record.status === 'retryable' ? ledgerView.keptPayload(id) : undefined,
    ]);
    const ackContents: Record<number, ReturnType<typeof shownAckContent>> = {};
    for (const file of ackFiles) {
      const content = await ledgerView.ackFileContent(file.id);
      if (content) ackContents[file.id] = shownAckContent(content);
    }
    const rossumBase = (config.rossumAppUrl ?? record.rossumBaseUrl ?? '').replace(/\/+$/, '');
    return context.page(
      request,
      reply,
      'export',
      { title: `Export ${record.id}`, section: 'exports' },
      {
        record,
        state: record.ackState ?? record.status,
        timeline: events.map((event) => ({
          at: event.at,
          kind: event.kind,
          title: EVENT_TITLES[event.kind] ?? event.kind.replaceAll('_', ' '),
          details: describeEvent(event),
        })),
        outcomes,
        ackFiles,
        ackContents,
        actions,
        // Offered only when the kept bytes still are the ones the ledger recorded (the retry checks again).
        retry: kept && kept.sha256 === record.sha256 ? { bytes: kept.content.length } : null,
        rossumLink: /^https:\/\//.test(rossumBase) ? `${rossumBase}/document/${record.annotationId}` : null,
        canAct: request.consoleSession?.role === 'operator',
      },
    );
  });

  app.get<{ Params: { id: string } }>('/exports/:id/file', async (request, reply) => {
    const id = Number(request.params.id);
    const record = Number.isSafeInteger(id) ? await ledger.get(id) : undefined;
    if (!record) return context.problem(request, reply, 404, 'Not found', `There is no export ${request.params.id}.`);
    const kept = record.remotePath === null ? await ledgerView.keptPayload(id) : undefined;
    const file = await readRenderedFile(record, context.targets, context.encodingOf, kept);
    const decoded =
      file.kind === 'bytes' && file.bytes.length <= VIEW_LIMIT_BYTES ? decodeText(file.bytes, file.encoding) : null;
    return context.page(
      request,
      reply,
      'file',
      { title: `File of export ${record.id}`, section: 'exports' },
      { record, file, decoded },
    );
  });

  app.get<{ Params: { id: string } }>('/exports/:id/file/download', async (request, reply) => {
    const id = Number(request.params.id);
    const record = Number.isSafeInteger(id) ? await ledger.get(id) : undefined;
    if (!record) return context.problem(request, reply, 404, 'Not found', `There is no export ${request.params.id}.`);
    const kept = record.remotePath === null ? await ledgerView.keptPayload(id) : undefined;
    const file = await readRenderedFile(record, context.targets, context.encodingOf, kept);
    if (file.kind !== 'bytes') return context.problem(request, reply, 404, 'File not available', file.reason);
    const asciiName = file.fileName.replace(/[^A-Za-z0-9._-]/g, '_');
    return reply
      .type('application/octet-stream')
      .header(
        'content-disposition',
        `attachment; filename="${asciiName}"; filename*=UTF-8''${encodeURIComponent(file.fileName)}`,
      )
      .send(file.bytes);
  });
}
