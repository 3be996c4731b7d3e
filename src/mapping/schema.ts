import { z } from 'zod';
import { documentSchema, sequenceSchema } from './files-schema.ts';
import { edifactSchemaWith, noRowsSchema, type NoRowsPolicy } from './edifact-schema.ts';
import { valueMapSchema } from './transforms.ts';
import { conditionSchema, valueSpecSchema, type Condition, type ValueSpec } from './value-schema.ts';

export {
  numberFormatSchema,
  ROUNDING,
  SIGN_STYLES,
  valueMapSchema,
  type NumberFormat,
  type Rounding,
  type SignStyle,
  type ValueMap,
} from './transforms.ts';
export {
  META_KEYS,
  conditionSchema,
  valueObjectSchema,
  valueSpecSchema,
  SOURCE_KEYS,
  CONDITION_SUBJECTS,
  CONDITION_TESTS,
  type Scalar,
  type Condition,
  type SumSpec,
  type CountSpec,
  type ValueObject,
  type ValueSpec,
} from './value-schema.ts';

/** Output formats, tables, tests and the mapping file itself; the value language is in value-schema.ts. */

export interface XmlNode {
  element: string;
  value?: ValueSpec | undefined;
  attributes?: Record<string, ValueSpec> | undefined;
  children?: XmlNode[] | undefined;
  repeat?: string | undefined;
  no_rows?: NoRowsPolicy | undefined;
  when?: Condition | undefined;
  empty?: EmptyPolicy | undefined;
}

export const EMPTY_POLICIES = ['omit', 'empty', 'self_closing'] as const;
export type EmptyPolicy = (typeof EMPTY_POLICIES)[number];

export const xmlNodeSchema: z.ZodType<XmlNode> = z
  .lazy(() =>
    z
      .strictObject({
        element: z.string().describe('Element name, with a namespace prefix if any: "inv:Invoice".'),
        value: valueSpecSchema.optional().describe('Text content.'),
        attributes: z
          .record(z.string(), valueSpecSchema)
          .optional()
          .describe('Attribute name → value; attributes whose value is missing are left out.'),
        children: z.array(xmlNodeSchema).optional().describe('Child elements, in order.'),
        repeat: z
          .string()
          .optional()
          .describe('Repeat this element once per row of a table (name from `tables`) or multivalue schema_id.'),
        no_rows: noRowsSchema('element'),
        when: conditionSchema.optional().describe('Write the element only when this holds.'),
        empty: z.enum(EMPTY_POLICIES).optional().describe('Override `xml.empty_elements` for this element.'),
      })
      .describe('An XML element.'),
  )
  .meta({ id: 'XmlElement' });

export const xmlSchema = z
  .strictObject({
    root: xmlNodeSchema,
    namespaces: z
      .record(z.string(), z.string())
      .optional()
      .describe('Prefix → namespace URI, declared on the root; "" is the default namespace.'),
    declaration: z
      .boolean()
      .default(true)
      .describe('Write <?xml version="1.0" encoding="..."?>; the encoding always names the bytes written.'),
    standalone: z.boolean().optional().describe('Add standalone="yes"/"no" to the declaration.'),
    pretty: z.boolean().default(true).describe('Indent nested elements.'),
    indent: z.string().default('  ').describe('Indentation when pretty.'),
    empty_elements: z
      .enum(EMPTY_POLICIES)
      .default('omit')
      .describe('Elements without content or attributes: omit them, write <a></a>, or <a/>.'),
    invalid_chars: z
      .enum(['drop', 'replace', 'error'])
      .default('drop')
      .describe(
        'Characters XML 1.0 forbids (U+0000-U+0008, U+000B, U+000C, U+000E-U+001F, U+FFFE, U+FFFF, lone surrogates): drop, replace with `invalid_char_replacement`, or fail. Dropped/replaced characters are reported as warnings.',
      ),
    invalid_char_replacement: z
      .string()
      .default('?')
      .describe('Replacement for forbidden characters when invalid_chars is replace.'),
  })
  .describe('XML output.');

export const CSV_QUOTE_POLICIES = ['always', 'never', 'auto'] as const;
const quotePolicy = z.enum(CSV_QUOTE_POLICIES);

export const csvColumnSchema = z.strictObject({
  name: z.string().describe('Column header.'),
  value: valueSpecSchema.describe('Column value; evaluated per row when `rows` is set.'),
  quote: quotePolicy
    .optional()
    .describe(
      'Quoting of this column: always (every non-empty value), never (a value that would need quotes is an error naming the column), auto (only values containing the delimiter, the quote or a line break). Default: from `csv.quoting`.',
    ),
  empty: z
    .enum(['quoted', 'nothing'])
    .optional()
    .describe(
      'An empty value: `quoted` writes "" (importers that tell empty text from a missing value), `nothing` writes nothing between the delimiters. Default nothing. For text columns; a formatted number is never written as "".',
    ),
});

export const csvSchema = z
  .strictObject({
    delimiter: z.string().min(1).default(',').describe('Field separator, e.g. ";" for European ERPs, "\\t" for tab.'),
    quote: z
      .string()
      .max(1)
      .default('"')
      .describe('Quote character ("" disables quoting; values that would need it are then an error).'),
    escape: z
      .string()
      .length(1)
      .optional()
      .describe('Escape character for quotes inside quoted fields. Default: the quote (doubling).'),
    quoting: z
      .enum(['auto', 'all', 'text'])
      .default('auto')
      .describe(
        'auto: quote only fields that need it; all: every field; text: every non-empty field that is not a formatted number.',
      ),
    header: z.boolean().default(true).describe('Write a header row with the column names.'),
    header_quote: quotePolicy
      .optional()
      .describe(
        "Quoting of the header row: always, never or auto (see a column's `quote`). Default: auto with quoting auto, always otherwise.",
      ),
    line_breaks: z
      .enum(['quote', 'strip', 'error'])
      .default('quote')
      .describe(
        'Line breaks inside values: keep them inside quotes (also with CRLF records), replace with a space, or fail.',
      ),
    escape_formulas: z
      .boolean()
      .default(true)
      .describe(
        "Prefix ' to text starting with = + - @ tab or CR, so a spreadsheet opening the file shows it instead of running it as a formula (OWASP CSV injection). Numbers are never changed: values formatted with `number`, and text that is a plain number such as -12,50 or +3. Turn off only for an importer that must receive such text unchanged and never goes through a spreadsheet.",
      ),
    rows: z
      .string()
      .optional()
      .describe('One record per row of this table or multivalue; omit for one record per document.'),
    no_rows: z
      .enum(['header_only', 'document_row', 'error'])
      .default('header_only')
      .describe('When `rows` has no rows: write only the header, one record with empty row values, or fail.'),
    columns: z.array(csvColumnSchema).min(1).describe('Columns in order.'),
  })
  .describe('CSV output.');

export const fixedFieldSchema = z.strictObject({
  name: z.string().describe('Field name for messages and --explain.'),
  value: valueSpecSchema.describe('Field value.'),
  start: z
    .number()
    .int()
    .min(1)
    .optional()
    .describe(
      '1-based byte position; the gap before it is filled with `fill`. Default: right after the previous field.',
    ),
  width: z.number().int().min(1).describe('Width in bytes of the output encoding.'),
  align: z.enum(['left', 'right']).optional().describe('left (default for text) or right (default for numbers).'),
  pad: z.string().length(1).optional().describe('Padding character. Default space; "0" keeps a leading sign in front.'),
  truncate: z
    .boolean()
    .default(false)
    .describe('Cut overlong values to the width (at a character boundary); otherwise overlong is an error.'),
});

export const fixedRecordSchema = z.strictObject({
  name: z.string().describe('Record name for messages, e.g. header, line, trailer.'),
  rows: z.string().optional().describe('Write this record once per row of a table or multivalue.'),
  when: conditionSchema.optional().describe('Write the record only when this holds.'),
  length: z
    .number()
    .int()
    .min(1)
    .optional()
    .describe('Exact record length in bytes; shorter records are filled with `fill`.'),
  fields: z.array(fixedFieldSchema).min(1).describe('Fields in order of position.'),
});

export const fixedSchema = z
  .strictObject({
    fill: z.string().length(1).default(' ').describe('Filler between fields and up to `length`.'),
    records: z
      .array(fixedRecordSchema)
      .min(1)
      .describe(
        'Record types in output order, e.g. H (document), L (per line item), T (trailer with counts and totals).',
      ),
  })
  .describe('Fixed-width flat file.');

export const batchSchema = z
  .strictObject({
    every: z
      .string()
      .regex(/^\d+(?:s|m|h|d)$/, 'a period such as 30s, 15m, 1h or 1d')
      .optional()
      .describe(
        'Close the open batch every period (30s, 15m, 1h, 1d); batches close on whole multiples of it (UTC), e.g. 15m at :00, :15, :30, :45.',
      ),
    at: z
      .string()
      .regex(/^(?:[01]\d|2[0-3]):[0-5]\d$/, 'a time of day such as "18:00"')
      .optional()
      .describe('Close the open batch once a day at this local time ("18:00") in `timezone`.'),
    timezone: z
      .string()
      .default('UTC')
      .describe('IANA time zone of `at`, e.g. Europe/Prague (daylight saving time is followed).'),
    max_documents: z
      .number()
      .int()
      .min(1)
      .max(100_000)
      .optional()
      .describe('Close the batch as soon as it holds this many documents (before its time).'),
    root: z
      .string()
      .optional()
      .describe('XML: the element that holds one root element per document (default Batch); namespaces go on it.'),
    header: fixedRecordSchema
      .optional()
      .describe('Fixed width: a record written once before all documents (reads meta.batch*, e.g. counts and totals).'),
    trailer: fixedRecordSchema.optional().describe('Fixed width: a record written once after all documents.'),
    totals: z
      .record(z.string().regex(/^[A-Za-z_]\w*$/, 'a name of letters, digits and _'), valueSpecSchema)
      .optional()
      .describe(
        'Per-document amounts summed over the batch (plain numbers, no number formatting), read as {meta: batch_total.NAME} in the header and trailer.',
      ),
  })
  .describe(
    'Collect documents and send them as ONE file per batch: each export is rendered and recorded in the ledger at once (Rossum hears when it will be sent); when the batch closes (its time, or max_documents), its file is rendered — CSV with one header and all rows, XML with one element per document under a batch root, fixed width with one header/trailer around all documents — and uploaded under a name with the batch number ({batch} / {seq}).',
  );

export const tableSchema = z.strictObject({
  from: z.string().describe('Multivalue schema_id, e.g. line_items.'),
  where: conditionSchema.optional().describe('Keep only rows where this holds.'),
  vars: z.record(z.string(), valueSpecSchema).optional().describe('Per-row computed values, read with {var: name}.'),
});

export const testCaseSchema = z.strictObject({
  name: z.string().describe('Test name.'),
  payload: z.string().describe('Export payload JSON, relative to the mapping file.'),
  now: z.string().optional().describe('Pinned clock (ISO). Default: the payload timestamp.'),
  route: z.record(z.string(), z.string()).optional().describe('Route values for the render.'),
  env: z.record(z.string(), z.string()).optional().describe('Environment values for the render.'),
  sequence: z.number().int().min(0).default(1).describe('Sequence number `{seq}` renders as in this test.'),
  batch_with: z
    .array(z.string())
    .optional()
    .describe(
      'Batch mappings: more payloads (relative to the mapping file) in the same batch, after `payload`; `sequence` is the batch number, `now` its closing time.',
    ),
  expect: z
    .strictObject({
      file_name: z.string().optional().describe('Expected file name.'),
      output: z.string().optional().describe('Expected output as text (decoded with the mapping encoding).'),
      output_file: z.string().optional().describe('File with the exact expected bytes, relative to the mapping file.'),
      errors: z
        .array(z.string())
        .optional()
        .describe('Rendering must fail; each text must appear in the error message.'),
      warnings: z.array(z.string()).optional().describe('Each text must appear in some warning.'),
    })
    .describe('What the render must produce.'),
});

export const mappingSchema = z
  .strictObject({
    description: z.string().optional().describe('What this mapping is for.'),
    format: z
      .enum(['xml', 'csv', 'fixed', 'edifact'])
      .describe('Output format; the matching `xml`, `csv`, `fixed` or `edifact` block configures it.'),
    encoding: z
      .string()
      .default('utf-8')
      .describe(
        'Output encoding (any iconv-lite name): utf-8, utf-16le, windows-1252, iso-8859-1, iso-8859-15, cp850, ...',
      ),
    bom: z.boolean().default(false).describe('Start with a byte order mark (UTF encodings only).'),
    line_ending: z.enum(['lf', 'crlf', 'cr']).default('lf').describe('Record/line separator.'),
    final_newline: z.boolean().default(true).describe('End the file with a line ending.'),
    unencodable: z
      .enum(['error', 'replace', 'transliterate'])
      .default('error')
      .describe(
        'Characters the encoding cannot represent: fail naming field and character, replace with `replacement`, or transliterate (Š→S, ß→ss, “→") then replace.',
      ),
    replacement: z.string().default('?').describe('Replacement for unencodable characters.'),
    file: z
      .strictObject({
        name: z
          .string()
          .describe(
            'File name template, e.g. "INV_{document_id}_{meta.annotation_id}.xml". Values are sanitized: they can never add a folder or leave the target folder, and separators, look-alike slashes, control and invisible characters, "~", leading dots and spaces and Windows device names are replaced. A name that had to change gets "~" and a short hash of the original values before its extension (INV_a_b~1c0ffee5.xml), so different values never share a name. "~" is reserved in the template.',
          ),
        on_existing: z
          .enum(['fail', 'overwrite', 'version'])
          .default('fail')
          .describe('When the name exists on the target: fail, overwrite, or write a new version name.'),
      })
      .describe('Output file naming.'),
    sequence: sequenceSchema.optional(),
    document: documentSchema.optional(),
    batch: batchSchema.optional(),
    value_maps: z
      .record(z.string(), valueMapSchema)
      .optional()
      .describe('Named value maps, e.g. currency codes or VAT rate → tax code.'),
    tables: z
      .record(z.string(), tableSchema)
      .optional()
      .describe(
        'Named row sets: a multivalue with a filter and per-row values; aggregates over a table match the rows written.',
      ),
    vars: z
      .record(z.string(), valueSpecSchema)
      .optional()
      .describe('Named document-level values, read with {var: name} or {var.name}.'),
    xml: xmlSchema.optional(),
    csv: csvSchema.optional(),
    fixed: fixedSchema.optional(),
    edifact: edifactSchemaWith(valueSpecSchema, conditionSchema).optional(),
    tests: z.array(testCaseSchema).optional().describe('Test cases run by `rossum-sftp-bridge test`.'),
  })
  .describe('A rossum-sftp-bridge mapping file: how one Rossum annotation becomes one ERP file.');

export type MappingSource = z.infer<typeof mappingSchema>;
export type XmlConfig = z.infer<typeof xmlSchema>;
export type CsvConfig = z.infer<typeof csvSchema>;
export type FixedConfig = z.infer<typeof fixedSchema>;
export type BatchConfig = z.infer<typeof batchSchema>;
export type TableConfig = z.infer<typeof tableSchema>;
export type TestCase = z.infer<typeof testCaseSchema>;
