import { z } from 'zod';
import { stepOrder, transformShape, type TransformFields } from './transforms.ts';

/**
 * The value language of mapping files (sources, conditions), split from schema.ts, which re-exports it.
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
    'number of records in the output file, header and trailer included (csv: data rows, fixed: all records, edifact: the segments UNT counts)',
  batch: 'batch number (batch mappings: file name, `batch.header`/`trailer`; `{batch:6}` in a template pads it)',
  batch_documents: 'documents in the batch (batch mappings: file name, `batch.header`/`trailer`)',
  batch_records: 'records of all documents in the batch, without its header and trailer',
  batch_opened_at: 'when the batch opened (ISO, UTC)',
  batch_closed_at: 'when the batch closed (ISO, UTC)',
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

export const conditionSchema: z.ZodType<Condition> = z
  .lazy(() =>
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
      .describe('A condition: one subject (field, row, var, meta, env, route or value) and one test, or all/any/not.'),
  )
  .meta({ id: 'Condition' });

const countSchema = z.union([
  z.string().describe('Table name or multivalue schema_id whose rows are counted.'),
  z.strictObject({
    rows: z.string().describe('Table name or multivalue schema_id.'),
    where: conditionSchema.optional().describe('Count only rows where this holds.'),
  }),
]);

export const valueObjectSchema: z.ZodType<ValueObject> = z
  .lazy(() =>
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
      ),
  )
  .meta({ id: 'Value' });

export const valueSpecSchema: z.ZodType<ValueSpec> = z
  .lazy(() =>
    z
      .union([z.string().describe('Template shorthand, e.g. "{document_id}".'), valueObjectSchema])
      .describe('A value: a template string, or a value object.'),
  )
  .meta({ id: 'ValueSpec' });

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
