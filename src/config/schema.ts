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
      .describe(
        'Processes serving the webhook on the same port and ledger (each has its own SFTP pools: connections = workers × pool.size)',
      ),
    secret: z
      .string()
      .min(16, 'use at least 16 characters (Rossum hook.config.secret)')
      .optional()
      .describe(
        'Shared secret of the Rossum hook (hook.config.secret); signatures are checked against it. Use ${ENV} interpolation.',
      ),
    allowLegacySha1: z.boolean().default(false).describe('Also accept the legacy X-Elis-Signature (HMAC-SHA1) header'),
    bodyLimitBytes: z
      .number()
      .int()
      .positive()
      .default(4 * 1024 * 1024)
      .describe(
        'Largest webhook body accepted; larger calls get 413. Default 4 MiB: a Rossum export payload takes about 3.3 kB per line item of 7 columns (test/fixtures/rossum/export-invoice.json: 21 kB with 3 lines, 10 kB without), so 4 MiB holds an invoice of about 1,200 line items',
      ),
    unverifiedBodyBytes: z
      .number()
      .int()
      .positive()
      .default(32 * 1024 * 1024)
      .describe(
        'Bytes of webhook bodies whose signature is not verified yet, summed over all connections; a call that would exceed it gets 503 with Retry-After (Rossum retries) and its connection is closed. Bounds what unauthenticated callers can make the bridge hold',
      ),
    retryAfterS: z
      .number()
      .int()
      .min(1)
      .max(300)
      .default(5)
      .describe('Retry-After (seconds) of the 503 sent when unverified bodies fill `unverifiedBodyBytes`'),
    headersTimeoutMs: z
      .number()
      .int()
      .min(100)
      .max(120_000)
      .default(10_000)
      .describe('The request line and headers must arrive within this'),
    bodyIdleTimeoutMs: z
      .number()
      .int()
      .min(100)
      .max(120_000)
      .default(10_000)
      .describe(
        'Longest pause between two pieces of a webhook body; a stalled call gets 408 and its connection is closed',
      ),
    requestTimeoutMs: z
      .number()
      .int()
      .min(100)
      .max(600_000)
      .default(30_000)
      .describe(
        'The whole request (headers and body) must arrive within this, however slowly it trickles; at least headersTimeoutMs',
      ),
    keepAliveTimeoutMs: z
      .number()
      .int()
      .min(100)
      .max(600_000)
      .default(5_000)
      .describe('An idle keep-alive connection is closed after this'),
    publicUrl: z
      .url({ protocol: /^https?$/ })
      .optional()
      .describe(
        "Base URL Rossum reaches this server at (e.g. https://bridge.example.com), used for the Location Rossum polls in held-export mode. Without it (and without trustProxy) the request's unsigned Host header is used and `serve` logs a warning when a mapping holds exports",
      ),
    trustProxy: z
      .boolean()
      .default(false)
      .describe(
        'Take protocol and host from X-Forwarded-Proto / X-Forwarded-Host (set only behind a reverse proxy that overwrites them); publicUrl wins when both are set',
      ),
    maxJsonDepth: z
      .number()
      .int()
      .min(8)
      .max(1000)
      .default(64)
      .describe('Deepest JSON nesting accepted in a webhook body'),
    deadlineMs: z
      .number()
      .int()
      .min(1000)
      .max(59_000)
      .default(25_000)
      .describe(
        "Answer Rossum within this time, whatever the upload is doing (keep it below the hook's timeout_s, 30 s by default)",
      ),
  })
  .describe('The webhook endpoint Rossum calls');

export const bridgeConfigSchema = z
  .strictObject({
    server: serverConfigSchema.prefault({}),
    ledger: ledgerConfigSchema.prefault({}),
    mappingsDir: z
      .string()
      .default('./mappings')
      .describe('Folder with the mapping files (relative to this config file)'),
    logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace']).default('info').describe('Log level'),
    targets: z
      .record(z.string().regex(/^[A-Za-z0-9_.-]+$/, 'letters, digits, _ . - only'), targetConfigSchema)
      .describe('Where files go, by name'),
    routes: z
      .array(routeSchema)
      .min(1, 'add at least one route')
      .describe('Which mapping and target each export uses; first match wins'),
    rossum: rossumApiConfigSchema
      .optional()
      .describe(
        'Rossum API access for the `acks` process (status changes, notes, metadata); hook tokens expire too soon for acks that come later',
      ),
    acks: acksConfigSchema.prefault({}),
    console: consoleConfigSchema.prefault({}),
  })
  .describe('rossum-sftp-bridge configuration');

export type BridgeConfig = z.infer<typeof bridgeConfigSchema>;
