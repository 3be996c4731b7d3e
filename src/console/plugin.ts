import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import fastifyCookie from '@fastify/cookie';
import fastifyCsrf from '@fastify/csrf-protection';
import fastifyFormbody from '@fastify/formbody';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import { ConsoleActionRefused } from '../ledger/index.ts';
import type { ConsoleContext, ConsoleOptions } from './context.ts';
import { registerActionRoutes } from './routes-actions.ts';
import { registerExportRoutes } from './routes-exports.ts';
import { registerOverviewRoutes } from './routes-overview.ts';
import { authenticate, endSession, sessionOf, startSession, type ConsoleSession } from './session.ts';

export type { ConsoleOptions } from './context.ts';
import { Views } from './view.ts';

declare module 'fastify' {
  interface FastifyRequest {
    consoleSession: ConsoleSession | null;
  }
}

const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "font-src 'self'",
  "form-action 'self'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
].join('; ');

const ASSETS = fileURLToPath(new URL('./assets/', import.meta.url));
const require = createRequire(import.meta.url);
const VENDOR: Record<string, { file: string; type: string }> = {
  'uPlot.iife.min.js': {
    file: require.resolve('uplot/dist/uPlot.iife.min.js'),
    type: 'text/javascript; charset=utf-8',
  },
  'uPlot.min.css': { file: require.resolve('uplot/dist/uPlot.min.css'), type: 'text/css; charset=utf-8' },
};

/** Paths anyone may fetch: the sign-in page and the static files it needs. */
const PUBLIC = /^\/(login|assets\/.*)$/;

/**
 * The operator console as a fastify plugin, registered by `serve` under `config.pathPrefix` on the
 * webhook's server. Everything but the sign-in page needs a session; every POST needs a CSRF token;
 * actions need the operator role.
 */
export function consolePlugin(options: ConsoleOptions): FastifyPluginAsync {
  const { config } = options;
  const prefix = config.pathPrefix;
  const now = options.now ?? Date.now;
  const cookieSecret = config.sessionSecret ?? randomBytes(32).toString('hex');
  if (!config.sessionSecret)
    options.logger.info(
      'console: no sessionSecret configured; sessions are signed with a random key and end when this process restarts',
    );
  const vendor = Object.fromEntries(
    Object.entries(VENDOR).map(([name, { file, type }]) => [name, { body: readFileSync(file), type }]),
  );

  return async (app: FastifyInstance) => {
    await app.register(fastifyCookie, { secret: cookieSecret, hook: 'onRequest' });
    await app.register(fastifyFormbody, { bodyLimit: 16 * 1024 });
    await app.register(fastifyCsrf, {
      sessionPlugin: '@fastify/cookie',
      cookieKey: 'rsb_console_csrf',
      cookieOpts: {
        path: prefix,
        sameSite: 'strict',
        httpOnly: true,
        signed: true,
        secure: config.secureCookies === 'always',
      },
      getToken: (request) => (request.body as Record<string, string> | undefined)?._csrf,
    });
    await app.register(fastifyStatic, {
      root: ASSETS,
      prefix: '/assets/',
      decorateReply: false,
      index: false,
      list: false,
      dotfiles: 'deny',
    });
    app.get<{ Params: { name: string } }>('/assets/vendor/:name', async (request, reply) => {
      const asset = vendor[request.params.name];
      if (!asset) return reply.code(404).send('not found');
      return reply.type(asset.type).header('cache-control', 'public, max-age=86400').send(asset.body);
    });

    const views = new Views();
    const context: ConsoleContext = {
      ...options,
      prefix,
      views,
      now,
      page(request, reply, template, frame, data) {
        const csrfToken = reply.generateCsrf();
        const html = views.page(template, { prefix, session: request.consoleSession, csrfToken, ...frame }, data);
        return reply.type('text/html; charset=utf-8').send(html);
      },
      problem(request, reply, statusCode, title, message) {
        reply.code(statusCode);
        if (!request.consoleSession) return reply.type('text/plain; charset=utf-8').send(`${title}: ${message}`);
        return context.page(
          request,
          reply,
          'problem',
          { title, section: 'exports' },
          { heading: title, message, statusCode },
        );
      },
    };

    app.decorateRequest('consoleSession', null);
    app.addHook('onRequest', async (request, reply) => {
      reply.headers({
        'content-security-policy': CONTENT_SECURITY_POLICY,
        'x-frame-options': 'DENY',
        'x-content-type-options': 'nosniff',
        'referrer-policy': 'no-referrer',
        'cross-origin-opener-policy': 'same-origin',
        'cache-control': 'no-store',
      });
      request.consoleSession = sessionOf(request, now());
      const path = request.url.slice(prefix.length).split('?')[0] ?? '';
      if (request.consoleSession || PUBLIC.test(path)) return;
      if (request.method === 'GET' && !path.startsWith('/live')) {
        const next = encodeURIComponent(request.url);
        return reply.redirect(`${prefix}/login?next=${next}`, 303);
      }
      return reply.code(401).type('text/plain; charset=utf-8').send('Sign in first');
    });
    // Every state change checks the CSRF token (sign-in and sign-out included).
    app.addHook('preHandler', (request, reply, done) => {
      if (request.method === 'GET' || request.method === 'HEAD') return done();
      app.csrfProtection(request, reply, done);
    });

    app.setErrorHandler((error: Error & { statusCode?: number; code?: string }, request, reply) => {
      if (error instanceof ConsoleActionRefused) {
        return context.problem(request, reply, error.reason === 'not_found' ? 404 : 409, 'Not done', error.message);
      }
      if (error.code === 'FST_CSRF_INVALID_TOKEN' || error.code === 'FST_CSRF_MISSING_SECRET') {
        return context.problem(
          request,
          reply,
          403,
          'Form expired',
          'The form was not sent from this console session (missing or stale CSRF token). Go back, reload the page and try again.',
        );
      }
      const statusCode = error.statusCode && error.statusCode >= 400 && error.statusCode < 500 ? error.statusCode : 500;
      if (statusCode === 500)
        options.logger.error({ err: error.message, path: request.url.split('?')[0] }, 'console: unexpected error');
      return context.problem(
        request,
        reply,
        statusCode,
        statusCode === 500 ? 'Something went wrong' : 'Bad request',
        statusCode === 500 ? 'The console hit an unexpected error; the bridge log has the details.' : error.message,
      );
    });
    app.setNotFoundHandler((request, reply) =>
      context.problem(request, reply, 404, 'Not found', 'There is nothing at this address.'),
    );

    registerLoginRoutes(app, context);
    registerExportRoutes(app, context);
    registerActionRoutes(app, context);
    registerOverviewRoutes(app, context);
  };
}

function registerLoginRoutes(app: FastifyInstance, context: ConsoleContext): void {
  const { prefix, config, env, now, logger } = context;
  const cookies = { prefix, secure: config.secureCookies };
  const safeNext = (next: unknown): string =>
    typeof next === 'string' && next.startsWith(`${prefix}/`) && !next.startsWith('//') && !next.includes('\\')
      ? next
      : `${prefix}/`;

  app.get<{ Querystring: { next?: string } }>('/login', async (request, reply) => {
    if (request.consoleSession) return reply.redirect(safeNext(request.query.next), 303);
    return context.page(
      request,
      reply,
      'login',
      { title: 'Sign in', section: 'login' },
      { next: safeNext(request.query.next), error: null, name: '', tokenSignIn: config.tokenEnv !== undefined },
    );
  });

  app.post<{ Body: { name?: string; password?: string; next?: string } }>('/login', async (request, reply) => {
    const name = String(request.body?.name ?? '').trim();
    const who = await authenticate(config, env, name, String(request.body?.password ?? ''));
    if (!who) {
      logger.warn({ user: name.slice(0, 64) }, 'console: sign-in refused');
      reply.code(401);
      return context.page(
        request,
        reply,
        'login',
        { title: 'Sign in', section: 'login' },
        {
          next: safeNext(request.body?.next),
          error: 'Wrong name or password.',
          name,
          tokenSignIn: config.tokenEnv !== undefined,
        },
      );
    }
    logger.info({ user: who.user, role: who.role }, 'console: signed in');
    startSession(reply, request, cookies, {
      user: who.user,
      role: who.role,
      expiresAt: now() + config.sessionHours * 3_600_000,
    });
    return reply.redirect(safeNext(request.body?.next), 303);
  });

  app.post('/logout', async (request, reply) => {
    endSession(reply, request, cookies);
    return reply.redirect(`${prefix}/login`, 303);
  });
}
