import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ConsoleContext } from './context.ts';

interface OutcomeParams {
  id: string;
  outcomeId: string;
}

/**
 * The recorded operator actions. Each is a GET that explains and asks, then a POST (CSRF-checked,
 * operator role) that the ledger records with who and when. None of them uploads anything: re-sending
 * a file would need its bytes, which the ledger does not keep, so a transient upload failure is
 * retried by Rossum's next delivery (or by exporting the annotation again), never from here.
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
