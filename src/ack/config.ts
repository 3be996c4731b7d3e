import { z } from 'zod';
import { ROSSUM_MESSAGE_LIMIT } from '../rossum/index.ts';

const decisionWords = (defaults: string[], what: string) =>
  z
    .array(z.string().min(1))
    .min(1)
    .default(defaults)
    .describe(`Status values meaning ${what} (compared case-insensitively)`);

const matchBy = z
  .enum(['name', 'stem', 'annotationId', 'documentRef'])
  .describe(
    'What the reference in the ack is: the exported file name, its name without extension, the Rossum annotation id, or the document number (`document_id` field)',
  );

const filePattern = (example: string) =>
  z
    .string()
    .min(1)
    .describe(
      `Ack file names this convention reads: \`*\` and \`?\` wildcards; \`{stem}\` / \`{name}\` capture the exported file's stem / name (then an unreadable file still names its export), e.g. \`${example}\``,
    );

export const companionAckSchema = z
  .strictObject({
    ok: filePattern('{stem}.ok').default('{stem}.ok'),
    err: filePattern('{stem}.err').default('{stem}.err'),
    encoding: z
      .string()
      .default('utf-8')
      .describe('Encoding of the error file body (the ERP writes in its own, e.g. windows-1252)'),
    codePattern: z
      .string()
      .default('^(?<code>[A-Z]{1,5}-?\\d{1,6})\\b[\\s:.-]*(?<text>.*)$')
      .describe(
        'Regular expression splitting one line of the error body into `code` and `text` named groups; lines that do not match are text only',
      ),
  })
  .describe(
    'Companion files: `<stem>.ok` accepts the export with that stem, `<stem>.err` rejects it and its body is the ERP message',
  );

export const xmlAckSchema = z
  .strictObject({
    files: filePattern('ACK_{stem}.xml').default('*.xml'),
    encoding: z.string().default('utf-8').describe('Encoding used to read the file (iconv-lite name)'),
    match: matchBy.default('name'),
    paths: z
      .strictObject({
        reference: z
          .string()
          .default('Acknowledgement/SourceFile')
          .describe('Element naming the export (see `match`); local names without namespace prefixes, `/`-separated'),
        status: z.string().default('Acknowledgement/Status').describe('Element holding the status'),
        messages: z.string().default('Acknowledgement/Errors/Error').describe('Repeated element, one per ERP message'),
        messageCode: z
          .string()
          .default('@code')
          .describe('Attribute (`@name`) or child element of a message holding its code'),
        erpReference: z
          .string()
          .optional()
          .default('Acknowledgement/DocumentNumber')
          .describe("Element with the ERP's own reference for an accepted export"),
      })
      .prefault({})
      .describe('Where things are in the ack (namespace prefixes are ignored)'),
    accepted: decisionWords(['ACCEPTED', 'OK', 'SUCCESS'], 'accepted'),
    rejected: decisionWords(['REJECTED', 'ERROR', 'FAILED'], 'rejected'),
  })
  .describe('One XML ack per export (namespaced or not), read through configured paths');

export const csvAckSchema = z
  .strictObject({
    files: filePattern('ack_*.csv').default('*.csv'),
    encoding: z.string().default('utf-8').describe('Encoding of the file (iconv-lite name), e.g. windows-1252'),
    delimiter: z.string().min(1).max(4).default(';').describe('Field delimiter'),
    match: matchBy.default('name'),
    columns: z
      .strictObject({
        reference: z.string().default('file').describe('Header of the column naming the export (see `match`)'),
        status: z.string().default('status').describe('Header of the status column'),
        code: z.string().optional().default('code').describe('Header of the message code column'),
        message: z.string().optional().default('message').describe('Header of the message column'),
        erpReference: z.string().optional().describe("Header of a column with the ERP's reference"),
      })
      .prefault({})
      .describe('Column headers (the first line is the header)'),
    erpReferencePattern: z
      .string()
      .optional()
      .describe(
        "Regular expression finding the ERP's reference in an accepted row's message; its first group is the reference, e.g. `Gebucht als (\\d+)`",
      ),
    accepted: decisionWords(['OK', 'ACCEPTED', 'SUCCESS'], 'accepted'),
    rejected: decisionWords(['ERROR', 'REJECTED', 'FAILED'], 'rejected'),
  })
  .describe('Batch CSV acks: one header line, then one row per export');

export const holdConfigSchema = z
  .strictObject({
    enabled: z
      .boolean()
      .default(true)
      .describe('Reply 202 + Location to the export webhook and give the final answer when the ERP has answered'),
    maxWaitMs: z
      .number()
      .int()
      .min(1_000)
      .max(290_000)
      .default(240_000)
      .describe(
        "Longest the poll waits for the ack before answering success (ack still awaited); stay below Rossum's 300 s polling limit for export events",
      ),
    retryAfterS: z
      .number()
      .int()
      .min(1)
      .max(60)
      .default(30)
      .describe('Retry-After sent with each "not yet" poll answer (Rossum polls every 30 s)'),
  })
  .describe('Held export: Rossum waits for the ERP verdict (for ERPs that answer within minutes)');

export const mappingAckSchema = z
  .strictObject({
    convention: z
      .enum(['companion', 'xml', 'csv'])
      .describe('How this ERP answers: companion .ok/.err files, one XML ack per export, or batch CSV acks'),
    deadlineMs: z
      .number()
      .int()
      .min(1)
      .default(30 * 60_000)
      .describe(
        'No ack within this long after the upload → the export is flagged as failed in Rossum (a late positive ack restores it)',
      ),
    storeErpReference: z
      .boolean()
      .default(true)
      .describe("Store the ERP's reference from a positive ack in the annotation's metadata"),
    companion: companionAckSchema.prefault({}),
    xml: xmlAckSchema.prefault({}),
    csv: csvAckSchema.prefault({}),
    hold: holdConfigSchema.optional(),
  })
  .describe('How the ERP behind one mapping acknowledges exports');

export const ackSourceSchema = z
  .strictObject({
    folder: z
      .string()
      .default('acks')
      .describe('Folder the ERP writes acks to, relative to the target folder (of `readFrom` when set)'),
    readFrom: z
      .string()
      .optional()
      .describe(
        'Read the acks through this other configured target (e.g. the ERP outbound folder next to the inbound one); the exports still belong to this target',
      ),
    watch: z
      .enum(['auto', 'poll', 'events'])
      .default('auto')
      .describe(
        'auto = file events (chokidar) plus listing for file:// folders, listing only for sftp://; poll = listing only; events = file events plus listing',
      ),
  })
  .describe("Where one target's ERP writes its acks");

export const acksConfigSchema = z
  .strictObject({
    pollIntervalMs: z.number().int().min(50).default(10_000).describe('How often each ack folder is listed'),
    minAgeMs: z
      .number()
      .int()
      .min(0)
      .default(1_000)
      .describe(
        'A file is read only when its size and mtime stayed the same across two looks and it is at least this old',
      ),
    concurrency: z.number().int().min(1).max(64).default(4).describe('Ack files processed at once (per process)'),
    archive: z
      .enum(['move', 'delete'])
      .default('move')
      .describe('After an ack is recorded: move it to the processed folder, or delete it'),
    folders: z
      .strictObject({
        processed: z.string().default('processed').describe('Recorded acks go here (inside the ack folder)'),
        unmatched: z.string().default('unmatched').describe('Acks naming no known export go here (never deleted)'),
        invalid: z.string().default('invalid').describe('Acks that cannot be parsed go here'),
      })
      .prefault({})
      .describe('Archive folders, relative to the ack folder'),
    ignore: z
      .array(z.string())
      .default([])
      .describe(
        'More file name patterns (`*`, `?`) to leave alone; dot-files and upload temp names are always ignored',
      ),
    targets: z.record(z.string(), ackSourceSchema).default({}).describe('Ack folder per target name'),
    byMapping: z
      .record(z.string(), mappingAckSchema)
      .default({})
      .describe('Ack convention and deadline per mapping name'),
    usePolling: z
      .boolean()
      .default(false)
      .describe('file:// folders: make chokidar poll (network mounts where file events do not arrive)'),
    watchIntervalMs: z
      .number()
      .int()
      .min(50)
      .default(1_000)
      .describe('file:// folders: chokidar polling interval when `usePolling` is on'),
    trackUploadsNewerThanMs: z
      .number()
      .int()
      .min(0)
      .default(7 * 24 * 3_600_000)
      .describe(
        'Uploads older than this when the acks process starts are not tracked (so enabling acks does not flag old exports)',
      ),
    limits: z
      .strictObject({
        maxFileBytes: z
          .number()
          .int()
          .min(1)
          .max(256 * 1024 * 1024)
          .default(1024 * 1024)
          .describe(
            'Largest ack file read (bytes, default 1 MiB); a larger one goes to the invalid folder unread, with the reason logged and recorded',
          ),
        maxMessages: z
          .number()
          .int()
          .min(1)
          .max(10_000)
          .default(50)
          .describe('ERP messages kept per export from one ack (the rest are counted in a last message)'),
        maxMessageChars: z
          .number()
          .int()
          .min(16)
          .max(ROSSUM_MESSAGE_LIMIT)
          .default(1_000)
          .describe('Characters kept per ERP message (longer ones are cut, marked with …)'),
      })
      .prefault({})
      .describe(
        'Bounds on what one ack file may make us read and keep: hostile or broken files cannot stall or bloat the acks process',
      ),
    drainMs: z
      .number()
      .int()
      .min(0)
      .max(120_000)
      .default(10_000)
      .describe(
        'On SIGTERM: how long files already being recorded may take to finish; reads in progress are abandoned at once (they are read again at the next start)',
      ),
    metadataKey: z
      .string()
      .min(1)
      .default('erp_ack')
      .describe('Key in the annotation metadata where the ack result is stored'),
    delivery: z
      .strictObject({
        leaseMs: z
          .number()
          .int()
          .min(100)
          .default(60_000)
          .describe(
            'An outcome being delivered to Rossum is reserved this long, renewed before each write to Rossum (another process takes over after a crash; one whose lease was taken over drops the outcome unwritten). Keep it above rossum.timeoutMs',
          ),
        retryMinMs: z
          .number()
          .int()
          .min(10)
          .default(5_000)
          .describe('First wait before delivering again after Rossum was unreachable'),
        retryMaxMs: z.number().int().min(10).default(300_000).describe('Longest wait between deliveries'),
        exportingWaitMs: z
          .number()
          .int()
          .min(0)
          .default(900_000)
          .describe(
            'A verdict for an annotation Rossum still shows as `exporting` (our webhook reply not processed yet; a status set now would be overwritten) waits, with backoff, at most this long after it was recorded; then it is reported (failed, verdict posted as a note)',
          ),
      })
      .prefault({})
      .describe('Telling Rossum (the outbox): outcomes wait in the ledger until Rossum has them'),
    listen: z
      .strictObject({
        host: z
          .string()
          .min(1)
          .default('127.0.0.1')
          .describe('Interface for /healthz, /readyz and /metrics of the acks process'),
        port: z.number().int().min(0).max(65_535).describe('Port (0 = any free one, logged)'),
      })
      .optional()
      .describe(
        'Serve /healthz, /readyz (not ready while Rossum refuses our credentials) and /metrics from the acks process',
      ),
  })
  .describe('Reading the ERP acknowledgements back (the `acks` process)');

export type AcksConfig = z.output<typeof acksConfigSchema>;
export type MappingAckConfig = z.output<typeof mappingAckSchema>;
export type CompanionAckConfig = z.output<typeof companionAckSchema>;
export type XmlAckConfig = z.output<typeof xmlAckSchema>;
export type CsvAckConfig = z.output<typeof csvAckSchema>;
export type AckLimits = z.output<typeof acksConfigSchema>['limits'];
export type AckSourceConfig = z.output<typeof ackSourceSchema>;
export type HoldConfig = z.output<typeof holdConfigSchema>;
