import type { FastifyInstance } from 'fastify';
import type { ConsoleOverview } from '../ledger/index.ts';
import type { ConsoleContext } from './context.ts';

const WINDOW_MS = 24 * 3_600_000;
/** The overview groups a day of exports; a few seconds old is fresh enough, and the page and its chart data share one query. */
const CACHE_MS = 10_000;

export function registerOverviewRoutes(app: FastifyInstance, context: ConsoleContext): void {
  let cached: { at: number; since: number; value: Promise<ConsoleOverview> } | undefined;
  const overview = (): { since: number; value: Promise<ConsoleOverview> } => {
    const now = context.now();
    if (!cached || now - cached.at > CACHE_MS) {
      const since = now - WINDOW_MS;
      const value = context.console.overview(since);
      value.catch(() => {
        cached = undefined;
      });
      cached = { at: now, since, value };
    }
    return cached;
  };

  app.get('/overview', async (request, reply) => {
    const { value } = overview();
    return context.page(
      request,
      reply,
      'overview',
      {
        title: 'Overview',
        section: 'overview',
        scripts: ['vendor/uPlot.iife.min.js', 'overview.js'],
        styles: ['vendor/uPlot.min.css'],
      },
      { overview: await value },
    );
  });

  app.get('/overview/data', async () => {
    const { since, value } = overview();
    return { since, until: since + WINDOW_MS, ...(await value) };
  });
}
