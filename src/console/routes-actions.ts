import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ConsoleContext } from './context.ts';

interface OutcomeParams {
  id: string;
  outcomeId: string;
}

/**
 * The recorded operator actions. Each is a GET that explains and asks, then a POST (CSRF-checked,
 * operator role) that the ledger records with who and when. The one that uploads (retry) uploads only
 * the bytes the ledger kept when the upload failed, after checking them against the recorded sha256.
 */
export function registerActionRoutes(app: FastifyInstance, context: ConsoleContext): void {
  const { prefix, ledger, console: ledgerView } = context;

  const operatorOnly = async (request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | undefined> => {
    if (request.consoleSession?.role === 'operator') return undefined;
    return context.problem(
      request,
      reply,
      403,
      'Not allowed',
      'Your role can look but not act: actions need the operator role.',
    );
  };

  const findOutcome = async (params: OutcomeParams) => {
    const exportId = Number(params.id);
    const outcomeId = Number(params.outcomeId);
    if (!Number.isSafeInteger(exportId) || !Number.isSafeInteger(outcomeId)) return undefined;
    const record = await ledger.get(exportId);
    const outcome = record
      ? (await ledger.outcomes(exportId)).find((candidate) => candidate.id === outcomeId)
      : undefined;
    return record && outcome ? { record, outcome } : undefined;
  };

  app.get<{ Params: OutcomeParams }>(
    '/exports/:id/outcomes/:outcomeId/redeliver',
    { preHandler: operatorOnly },
    async (request, reply) => {
      const found = await findOutcome(request.params);
      if (!found)
        return context.problem(request, reply, 404, 'Not found', 'There is no such Rossum outcome for this export.');
      const { record, outcome } = found;
      return context.page(
        request,
        reply,
        'confirm',
        { title: 'Deliver to Rossum again', section: 'exports' },
        {
          heading: `Tell Rossum again about export #${record.id}?`,
          explanation: [
            `Outcome "${outcome.kind}" (${outcome.delivery}, ${outcome.attempts} attempt(s)${outcome.lastError ? `, last error: ${outcome.lastError}` : ''}) goes back into the queue for delivery now.`,
            'The acks process delivers it with the same content as before; nothing is uploaded to the ERP. The ledger records that you asked.',
          ],
          action: `${prefix}/exports/${record.id}/outcomes/${outcome.id}/redeliver`,
          confirmLabel: 'Deliver again',
          cancel: `${prefix}/exports/${record.id}`,
          note: false,
        },
      );
    },
  );

  app.post<{ Params: OutcomeParams }>(
    '/exports/:id/outcomes/:outcomeId/redeliver',
    { preHandler: operatorOnly },
    async (request, reply) => {
      const found = await findOutcome(request.params);
      if (!found)
        return context.problem(request, reply, 404, 'Not found', 'There is no such Rossum outcome for this export.');
      await ledgerView.redeliverOutcome(found.outcome.id, request.consoleSession?.user ?? '?');
      context.logger.info(
        { user: request.consoleSession?.user, exportId: found.record.id, outcomeId: found.outcome.id },
        'console: outcome queued for Rossum again',
      );
      return reply.redirect(`${prefix}/exports/${found.record.id}#rossum`, 303);
    },
  );

  app.get<{ Params: { id: string } }>('/exports/:id/retry', { preHandler: operatorOnly }, async (request, reply) => {
    const id = Number(request.params.id);
    const record = Number.isSafeInteger(id) ? await ledger.get(id) : undefined;
    if (!record) return context.problem(request, reply, 404, 'Not found', `There is no export ${request.params.id}.`);
    const kept = record.status === 'retryable' ? await ledgerView.keptPayload(id) : undefined;
    if (!kept || !context.retryUpload)
      return context.problem(
        request,
        reply,
        409,
        'Not done',
        `Export ${id} is ${record.ackState ?? record.status}${kept ? '' : ' with no kept file'}: only an export whose upload failed transiently, with its file kept, is retried from the console.`,
      );
    return context.page(
      request,
      reply,
      'confirm',
      { title: 'Retry upload', section: 'exports' },
      {
        heading: `Upload export #${record.id} to ${record.target} again?`,
        explanation: [
          `The last attempt failed${record.error ? `: ${record.error}` : ''}.`,
          `The bridge uploads the file it rendered then (${kept.content.length} bytes, sha256 ${record.sha256}) as ${record.plannedPath}, atomically, exactly as recorded; nothing is rendered again. If an earlier attempt did reach the server, that is recorded instead.`,
          'The ledger records that you asked and when, and the result.',
        ],
        action: `${prefix}/exports/${record.id}/retry`,
        confirmLabel: 'Upload again',
        cancel: `${prefix}/exports/${record.id}`,
        note: false,
      },
    );
  });

  app.post<{ Params: { id: string } }>('/exports/:id/retry', { preHandler: operatorOnly }, async (request, reply) => {
    const id = Number(request.params.id);
    if (!Number.isSafeInteger(id) || !context.retryUpload)
      return context.problem(request, reply, 404, 'Not found', `There is no export ${request.params.id} to retry.`);
    const user = request.consoleSession?.user ?? '?';
    const result = await context.retryUpload(id, user);
    context.logger.info({ user, exportId: id, outcome: result.outcome }, 'console: upload retried');
    if (result.outcome === 'failed')
      return context.problem(
        request,
        reply,
        502,
        'Upload failed again',
        `${result.message}. ${result.permanent ? 'The failure is permanent: the export is now failed.' : 'The file stays kept; retry later.'} The timeline of export ${id} shows the attempt.`,
      );
    return reply.redirect(`${prefix}/exports/${id}#timeline-h`, 303);
  });

  app.get('/ack-files', async (request, reply) => {
    const files = await ledgerView.openAckFiles(200);
    return context.page(
      request,
      reply,
      'ack-files',
      { title: 'Unmatched ack files', section: 'ack-files' },
      { files, canAct: request.consoleSession?.role === 'operator' },
    );
  });

  app.get<{ Params: { id: string } }>('/ack-files/:id/handle', { preHandler: operatorOnly }, async (request, reply) => {
    const file = Number.isSafeInteger(Number(request.params.id))
      ? await ledgerView.ackFile(Number(request.params.id))
      : undefined;
    if (!file) return context.problem(request, reply, 404, 'Not found', `There is no ack file ${request.params.id}.`);
    return context.page(
      request,
      reply,
      'confirm',
      { title: 'Mark ack file handled', section: 'ack-files' },
      {
        heading: `Mark ${file.fileName} as handled?`,
        explanation: [
          `The ack file from ${file.source} (${file.disposition}${file.error ? `: ${file.error}` : ''}) leaves the list of open ack files.`,
          'No export changes state and Rossum is not told anything. The ledger records who marked it and your note.',
        ],
        action: `${prefix}/ack-files/${file.id}/handle`,
        confirmLabel: 'Mark handled',
        cancel: `${prefix}/ack-files`,
        note: true,
      },
    );
  });

  app.post<{ Params: { id: string }; Body: { note?: string } }>(
    '/ack-files/:id/handle',
    { preHandler: operatorOnly },
    async (request, reply) => {
      const id = Number(request.params.id);
      if (!Number.isSafeInteger(id))
        return context.problem(request, reply, 404, 'Not found', `There is no ack file ${request.params.id}.`);
      const note = String(request.body?.note ?? '')
        .trim()
        .slice(0, 500);
      await ledgerView.markAckFileHandled(id, request.consoleSession?.user ?? '?', note);
      context.logger.info({ user: request.consoleSession?.user, ackFileId: id }, 'console: ack file marked handled');
      return reply.redirect(`${prefix}/ack-files`, 303);
    },
  );
}
