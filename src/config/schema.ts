import { z } from 'zod';
import { acksConfigSchema } from '../ack/index.ts';
import { consoleConfigSchema } from '../console/index.ts';
import { routeSchema } from '../export/index.ts';
import { ledgerConfigSchema } from '../ledger/index.ts';
import { rossumApiConfigSchema } from '../rossum/index.ts';
import { targetConfigSchema } from '../transport/index.ts';

export const serverConfigSchema = z
  .strictObject({
    host: z.string().default('0.0.0.0').describe('Interface the webhook listens on'),
    port: z.number().int().min(0).max(65535).default(8080).describe('TCP port of the webhook (0 picks a free one)'),
    workers: z
      .number()
      .int()
      .min(1)
      .max(64)
      .default(1)
      .describe('Processes serving the webhook on the same port and ledger (each has its own SFTP pools: connections = workers × pool.size)'),
    secret: z
      .string()
      .min(16, 'use at least 16 characters (Rossum hook.config.secret)')
      .optional()
      .describe('Shared secret of the Rossum hook (hook.config.secret); signatures are checked against it. Use ${ENV} interpolation.'),
    allowLegacySha1: z.boolean().default(false).describe('Also accept the legacy X-Elis-Signature (HMAC-SHA1) header'),
    bodyLimitBytes: z
      .number()
      .int()
      .positive()
      .default(10 * 1024 * 1024)
      .describe('Largest webhook body accepted; larger calls get 413'),
    maxJsonDepth: z.number().int().min(8).max(1000).default(64).describe('Deepest JSON nesting accepted in a webhook body'),
    deadlineMs: z
      .number()
      .int()
      .min(1000)
      .max(59_000)
      .default(25_000)
      .describe("Answer Rossum within this time, whatever the upload is doing (keep it below the hook's timeout_s, 30 s by default)"),
  })
  .describe('The webhook endpoint Rossum calls');

export const bridgeConfigSchema = z
  .strictObject({
    server: serverConfigSchema.prefault({}),
    ledger: ledgerConfigSchema.prefault({}),
    mappingsDir: z.string().default('./mappings').describe('Folder with the mapping files (relative to this config file)'),
    logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace']).default('info').describe('Log level'),
    targets: z.record(z.string().regex(/^[A-Za-z0-9_.-]+$/, 'letters, digits, _ . - only'), targetConfigSchema).describe('Where files go, by name'),
    routes: z.array(routeSchema).min(1, 'add at least one route').describe('Which mapping and target each export uses; first match wins'),
    rossum: rossumApiConfigSchema
      .optional()
      .describe('Rossum API access for the `acks` process (status changes, notes, metadata); hook tokens expire too soon for acks that come later'),
    acks: acksConfigSchema.prefault({}),
    console: consoleConfigSchema.prefault({}),
  })
  .describe('rossum-sftp-bridge configuration');

export type BridgeConfig = z.infer<typeof bridgeConfigSchema>;
