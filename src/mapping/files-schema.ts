import { z } from 'zod';

/** The `sequence:` and `document:` blocks: files numbered, and the original document beside the data file. */

export const sequenceSchema = z
  .strictObject({
    counter: z
      .string()
      .min(1)
      .max(100)
      .optional()
      .describe('Named counter shared by every mapping that names it; default: one counter per target.'),
    start: z.number().int().min(0).default(1).describe('First number of a new counter (raising it later skips ahead).'),
  })
  .describe(
    'Sequence numbers for `{seq}` / `{seq:8}` (file name or values): allocated in the ledger, unique and increasing per counter; a re-delivery of the same content keeps its number. Gaps happen when a numbered export never completes (its upload fails for good, or the document changes before a retry succeeds).',
  );

export const documentSchema = z
  .strictObject({
    name: z
      .string()
      .default('{stem}{ext}')
      .describe(
        "The document's file name: {stem} is the data file's name without its extension, {ext} the document's extension (e.g. \"{stem}_scan{ext}\").",
      ),
    folder: z
      .string()
      .optional()
      .describe('Folder of the same target for the document (relative, e.g. "scans"); default: beside the data file.'),
    extension: z
      .string()
      .regex(/^\.[A-Za-z0-9]{1,10}$/, 'an extension such as ".pdf"')
      .optional()
      .describe('Extension of the document\'s name; default: the original file\'s (".pdf" when it has none).'),
    required: z
      .boolean()
      .default(true)
      .describe(
        'When the document cannot be fetched or uploaded, the data file is not uploaded either (false: upload the data file alone, with a warning).',
      ),
    max_bytes: z
      .number()
      .int()
      .positive()
      .max(1024 * 1024 * 1024)
      .default(50 * 1024 * 1024)
      .describe('Largest document accepted; a larger one fails the export naming the document.'),
    buffer_bytes: z
      .number()
      .int()
      .min(0)
      .max(64 * 1024 * 1024)
      .default(4 * 1024 * 1024)
      .describe(
        'A document up to this size is held in memory, so a dropped SFTP connection is retried at once; a larger one is streamed from Rossum straight into the upload (never held whole) and a failure is retried by Rossum.',
      ),
  })
  .describe(
    "The annotation's original document (PDF/TIFF/... as Rossum holds it), uploaded beside the data file with the data file's stem (INV_1.xml + INV_1.pdf). It is fetched through Rossum's API with the webhook's rossum_authorization_token (else the configured rossum.token) and is fully in place before the data file appears.",
  );
