import type { FastifyReply, FastifyRequest } from 'fastify';
import type { RetryResult } from '../export/index.ts';
import type { ConsoleLedger, Ledger } from '../ledger/index.ts';
import type { Logger } from '../observability/index.ts';
import type { Target } from '../transport/index.ts';
import type { ConsoleConfig } from './config.ts';
import type { PageFrame, Views } from './view.ts';

export interface ConsoleOptions {
  config: ConsoleConfig;
  ledger: Ledger;
  console: ConsoleLedger;
  targets: ReadonlyMap<string, Target>;
  /** The mapping's output encoding, to show its files as text. */
  encodingOf: (mappingName: string) => string | undefined;
  /** Where the access token is read from (`config.tokenEnv` names the variable). */
  env: Record<string, string | undefined>;
  logger: Logger;
  now?: () => number;
  /** Uploads the kept bytes of a transiently failed export again (serve wires the export service); absent = no retries. */
  retryUpload?: (exportId: number, actor: string) => Promise<RetryResult>;
}

/** What the route files share. */
export interface ConsoleContext extends Omit<ConsoleOptions, 'now'> {
  prefix: string;
  views: Views;
  now: () => number;
  /** Renders a full page for this request (layout, navigation, CSRF token). */
  page(
    request: FastifyRequest,
    reply: FastifyReply,
    template: string,
    frame: Pick<PageFrame, 'title' | 'section' | 'scripts' | 'styles'>,
    data: Record<string, unknown>,
  ): FastifyReply;
  /** A page saying why not, with the status code. */
  problem(
    request: FastifyRequest,
    reply: FastifyReply,
    statusCode: number,
    title: string,
    message: string,
  ): FastifyReply;
}
