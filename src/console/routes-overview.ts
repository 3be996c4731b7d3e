import type { FastifyInstance } from 'fastify';
import type { ConsoleContext } from './context.ts';

const WINDOW_MS = 24 * 3_600_000;

export function registerOverviewRoutes(app: FastifyInstance, context: ConsoleContext): void {
  app.get('/overview', async (request, reply) => {
    const overview = await context.console.overview(context.now() - WINDOW_MS);
    return context.page(request, reply, 'overview', { title: 'Overview', section: 'overview', scripts: ['vendor/uPlot.iife.min.js', 'overview.js'], styles: ['vendor/uPlot.min.css'] }, { overview });
  });

  app.get('/overview/data', async () => {
    const since = context.now() - WINDOW_MS;
    return { since, until: context.now(), ...(await context.console.overview(since)) };
  });
}
