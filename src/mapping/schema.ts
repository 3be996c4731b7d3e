import { z } from 'zod';
import { documentSchema, sequenceSchema } from './files-schema.ts';
import { stepOrder, transformShape, valueMapSchema, type TransformFields, type ValueMap } from './transforms.ts';

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

/**
 * The mapping file language, declared once: the loader validates with it, `check` reports against it,
 * `npm run schema` publishes it as JSON Schema and docs/mappings.md is generated from its descriptions.
 */

export type Scalar = string | number | boolean;

export interface Condition {
  field?: string | undefined;
  row?: string | undefined;
  var?: string | undefined;
  meta?: string | undefined;
  env?: string | undefined;
  route?: string | undefined;
  value?: ValueSpec | undefined;
  present?: boolean | undefined;
  equals?: Scalar | undefined;
  not_equals?: Scalar | undefined;
  in?: Scalar[] | undefined;
  matches?: string | undefined;
  gt?: Scalar | undefined;
  gte?: Scalar | undefined;
  lt?: Scalar | undefined;
  lte?: Scalar | undefined;
  all?: Condition[] | undefined;
  any?: Condition[] | undefined;
  not?: Condition | undefined;
}

export interface SumSpec {
  rows: string;
  of: string | ValueSpec;
  where?: Condition | undefined;
}

export interface CountSpec {
  rows: string;
  where?: Condition | undefined;
}

export interface ValueObject extends TransformFields {
  field?: string | undefined;
  row?: string | undefined;
  var?: string | undefined;
  meta?: string | undefined;
  const?: Scalar | undefined;
  env?: string | undefined;
  route?: string | undefined;
  template?: string | undefined;
  calc?: string | undefined;
  count?: string | CountSpec | undefined;
  sum?: string | SumSpec | undefined;
  line_number?: boolean | undefined;
  cases?: Array<{ when?: Condition | undefined; value: ValueSpec }> | undefined;
  use?: 'normalized' | 'value' | undefined;
  label?: string | undefined;
  required?: boolean | undefined;
  default?: Scalar | undefined;
  when?: Condition | undefined;
}

/** A string is a template shorthand: `"INV {document_id}"`. */
export type ValueSpec = string | ValueObject;

export const META_KEYS = {
  annotation_id: 'Rossum annotation id',
  document_id: 'Rossum document id',
  queue_id: 'Rossum queue id',
  document_file_name: 'original file name of the document',
  request_id: 'webhook request id',
  hook_timestamp: 'webhook timestamp (ISO)',
  confirmed_at: 'when the annotation was confirmed (ISO)',
  created_at: 'when the annotation was created (ISO)',
  arrived_at: 'when the document arrived (ISO)',
  base_url: 'Rossum base URL',
  now: 'render time (ISO, UTC); tests pin it',
  mapping_name: 'this mapping file stem',
  mapping_version: 'short hash of this mapping file',
  seq: 'sequence number of this export, allocated in the ledger (see `sequence`; `{seq:8}` in a template pads it to 8 digits)',
  record_count:
    'number of records in the output file, header and trailer included (csv: data rows, fixed: all records)',
} as const;

const scalar = z.union([z.string(), z.number(), z.boolean()]);
const sourceDocs = {
  field: 'Header field by Rossum `schema_id` (first datapoint outside any table).',
  row: 'Field of the current table row by `schema_id` (inside `repeat`, `rows` or a table).',
  var: "A named value from `vars` (document) or the table's row `vars`.",
  meta: `Payload metadata: ${Object.keys(META_KEYS).join(', ')}.`,
  env: 'Environment value exposed by the operator (RenderContext.env).',
  route: 'Route value (routing config / hook `settings`).',
};

export const conditionSchema: z.ZodType<Condition> = z.lazy(() =>
  z
    .strictObject({
      field: z.string().optional().describe(sourceDocs.field),
      row: z.string().optional().describe(sourceDocs.row),
      var: z.string().optional().describe(sourceDocs.var),
      meta: z.string().optional().describe(sourceDocs.meta),
      env: z.string().optional().describe(sourceDocs.env),
      route: z.string().optional().describe(sourceDocs.route),
      value: valueSpecSchema.optional().describe('Any value expression to test.'),
      present: z.boolean().optional().describe('true: the value exists and is not empty; false: missing or empty.'),
      equals: scalar.optional().describe('The value equals this text.'),
      not_equals: scalar.optional().describe('The value differs from this text.'),
      in: z.array(scalar).optional().describe('The value is one of these.'),
      matches: z.string().optional().describe('The value matches this regular expression (JavaScript syntax).'),
      gt: scalar.optional().describe('Number greater than (decimal-exact).'),
      gte: scalar.optional().describe('Number greater than or equal.'),
      lt: scalar.optional().describe('Number less than.'),
      lte: scalar.optional().describe('Number less than or equal.'),
      all: z.array(conditionSchema).optional().describe('Every condition holds.'),
      any: z.array(conditionSchema).optional().describe('At least one condition holds.'),
      not: conditionSchema.optional().describe('The condition does not hold.'),
    })
    .describe('A condition: one subject (field, row, var, meta, env, route or value) and one test, or all/any/not.')
    .meta({ id: 'Condition' }),
);

const countSchema = z.union([
  z.string().describe('Table name or multivalue schema_id whose rows are counted.'),
  z.strictObject({
    rows: z.string().describe('Table name or multivalue schema_id.'),
    where: conditionSchema.optional().describe('Count only rows where this holds.'),
  }),
]);

export const valueObjectSchema: z.ZodType<ValueObject> = z.lazy(() =>
  z
    .strictObject({
      field: z.string().optional().describe(sourceDocs.field),
      row: z.string().optional().describe(sourceDocs.row),
      var: z.string().optional().describe(sourceDocs.var),
      meta: z.string().optional().describe(sourceDocs.meta),
      const: scalar.optional().describe('A constant.'),
      env: z.string().optional().describe(sourceDocs.env),
      route: z.string().optional().describe(sourceDocs.route),
      template: z
        .string()
        .optional()
        .describe(
          'Text with placeholders: {schema_id}, {row.x}, {var.x}, {meta.x}, {env.X}, {route.x}, {line_number}; "{{" and "}}" for braces.',
        ),
      calc: z
        .string()
        .optional()
        .describe(
          'Decimal-exact arithmetic: + - * / and parentheses over numbers and references (item_quantity, row.item_amount_base, var.x). Missing operands are errors.',
        ),
      count: countSchema.optional().describe('Number of rows of a table (after its filter).'),
      sum: z
        .union([
          z.string().describe('`table.schema_id`: sum of a row field over the table.'),
          z.strictObject({
            rows: z.string().describe('Table name or multivalue schema_id.'),
            of: z.union([z.string(), valueSpecSchema]).describe('Row field schema_id, or a value evaluated per row.'),
            where: conditionSchema.optional().describe('Sum only rows where this holds.'),
          }),
        ])
        .optional()
        .describe('Decimal-exact sum over table rows; empty values count as 0.'),
      line_number: z.boolean().optional().describe('1-based position of the current row among the rows written.'),
      cases: z
        .array(
          z.strictObject({
            when: conditionSchema.optional().describe('Omit for the last, catch-all case.'),
            value: valueSpecSchema,
          }),
        )
        .optional()
        .describe('The first case whose `when` holds gives the value.'),
      use: z
        .enum(['normalized', 'value'])
        .optional()
        .describe(
          'Datapoint content to read: normalized (ISO date, plain decimal; the default when Rossum has one) or value (as read on the page).',
        ),
      label: z.string().optional().describe('Name of the field in error messages.'),
      required: z.boolean().optional().describe('Missing or empty is an error pointing at the datapoint in Rossum.'),
      default: scalar.optional().describe('Used when the value is missing or empty.'),
      ...transformShape,
      when: conditionSchema
        .optional()
        .describe('Emit the value only when this holds (XML: element omitted; CSV/fixed: empty).'),
    })
    .describe(
      `A value: exactly one source (field, row, var, meta, const, env, route, template, calc, count, sum, line_number, cases) then optional steps in this order: ${stepOrder()}.`,
    )
    .meta({ id: 'Value' }),
);

export const valueSpecSchema: z.ZodType<ValueSpec> = z.lazy(() =>
  z
    .union([z.string().describe('Template shorthand, e.g. "{document_id}".'), valueObjectSchema])
    .describe('A value: a template string, or a value object.')
    .meta({ id: 'ValueSpec' }),
);

export const SOURCE_KEYS = [
  'field',
  'row',
  'var',
  'meta',
  'const',
  'env',
  'route',
  'template',
  'calc',
  'count',
  'sum',
  'line_number',
  'cases',
] as const;
export const CONDITION_SUBJECTS = ['field', 'row', 'var', 'meta', 'env', 'route', 'value'] as const;
export const CONDITION_TESTS = ['present', 'equals', 'not_equals', 'in', 'matches', 'gt', 'gte', 'lt', 'lte'] as const;

export interface XmlNode {
  element: string;
  value?: ValueSpec | undefined;
  attributes?: Record<string, ValueSpec> | undefined;
  children?: XmlNode[] | undefined;
  repeat?: string | undefined;
  when?: Condition | undefined;
  empty?: EmptyPolicy | undefined;
}

export const EMPTY_POLICIES = ['omit', 'empty', 'self_closing'] as const;
export type EmptyPolicy = (typeof EMPTY_POLICIES)[number];

export const xmlNodeSchema: z.ZodType<XmlNode> = z.lazy(() =>
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
      when: conditionSchema.optional().describe('Write the element only when this holds.'),
      empty: z.enum(EMPTY_POLICIES).optional().describe('Override `xml.empty_elements` for this element.'),
    })
    .describe('An XML element.')
    .meta({ id: 'XmlElement' }),
);

export const xmlSchema = z
  .strictObject({
    root: xmlNodeSchema.describe('The document element.'),
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

export const csvColumnSchema = z.strictObject({
  name: z.string().describe('Column header.'),
  value: valueSpecSchema.describe('Column value; evaluated per row when `rows` is set.'),
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
      .enum(['xml', 'csv', 'fixed'])
      .describe('Output format; the matching `xml`, `csv` or `fixed` block configures it.'),
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
    tests: z.array(testCaseSchema).optional().describe('Test cases run by `rossum-sftp-bridge test`.'),
  })
  .describe('A rossum-sftp-bridge mapping file: how one Rossum annotation becomes one ERP file.');

export type MappingSource = z.infer<typeof mappingSchema>;
export type XmlConfig = z.infer<typeof xmlSchema>;
export type CsvConfig = z.infer<typeof csvSchema>;
export type FixedConfig = z.infer<typeof fixedSchema>;
export type TableConfig = z.infer<typeof tableSchema>;
export type TestCase = z.infer<typeof testCaseSchema>;
