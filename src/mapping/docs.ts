import { markdownReference, publishJsonSchema, type PublishedSchema } from '../schema-docs/index.ts';
import { formatNumber, formatUtc } from './format.ts';
import { datePatternMistake } from './patterns.ts';
import { CONDITION_SUBJECTS, CONDITION_TESTS, mappingSchema, SOURCE_KEYS } from './schema.ts';
import { stepOrder, TRANSFORMS, type NumberFormat } from './transforms.ts';

const published: PublishedSchema = {
  id: 'https://github.com/rossum-sftp-bridge/schema/mapping.schema.json',
  title: 'rossum-sftp-bridge mapping',
  source: 'src/mapping/schema.ts',
  rootTitle: 'Mapping file',
};

/** The JSON Schema editors use for autocomplete and validation of mappings/*.yaml. */
export function mappingJsonSchema(): Record<string, unknown> {
  return publishJsonSchema(mappingSchema, published);
}

interface Described {
  description?: string;
  $ref?: string;
}

function definitions(): Record<string, Described & { properties?: Record<string, Described> }> {
  return (mappingJsonSchema().$defs ?? {}) as Record<string, Described & { properties?: Record<string, Described> }>;
}

function cell(text: string): string {
  return text.replaceAll('|', '\\|').replaceAll('\n', ' ');
}

/** Inline code that may contain backticks or pipes. */
function code(text: string): string {
  const shown = text.replaceAll('\n', '\\n');
  return shown.includes('`') ? `\`\` ${cell(shown)} \`\`` : `\`${cell(shown)}\``;
}

/** Every key needs its example: a new source, test or option without one stops `npm run schema`. */
function exampleFor(examples: Record<string, string>, key: string, what: string): string {
  const example = examples[key];
  if (example === undefined) throw new Error(`docs: no example for ${what} "${key}" (add it in src/mapping/docs.ts)`);
  return example;
}

const SOURCE_EXAMPLES: Record<string, string> = {
  field: '{ field: document_id }',
  row: '{ row: item_quantity }  # under repeat / rows: line_items',
  var: '{ var: net_total }',
  meta: '{ meta: annotation_id }',
  const: '{ const: "380" }',
  env: '{ env: ERP_COMPANY }',
  route: '{ route: company_code }',
  template: '{ template: "INV {document_id}/{row.item_code}" }  # or just the string',
  calc: '{ calc: "row.item_quantity * row.item_amount_base" }',
  count: '{ count: line_items }',
  sum: '{ sum: line_items.item_amount_total }',
  line_number: '{ line_number: true }',
  cases: '{ cases: [{ when: { field: document_type, equals: credit_note }, value: "381" }, { value: "380" }] }',
};

const VALUE_OPTION_EXAMPLES: Record<string, string> = {
  use: '{ field: date_issue, use: value }  # the page text, not the ISO date',
  label: '{ field: iban, label: "bank account" }',
  required: '{ field: document_id, required: true }',
  default: '{ field: order_id, default: "NONE" }',
  when: '{ field: order_id, when: { field: document_type, equals: tax_invoice } }',
};

const CONDITION_EXAMPLES: Record<string, string> = {
  field: '{ field: order_id, present: true }',
  row: '{ row: item_amount_total, gt: 0 }',
  var: '{ var: net, lt: 0 }',
  meta: '{ meta: queue_id, equals: 8236 }',
  env: '{ env: ERP_MODE, equals: test }',
  route: '{ route: company, in: [A, B] }',
  value: '{ value: "{currency}-{document_type}", equals: eur-credit_note }',
  present: '{ field: order_id, present: false }',
  equals: '{ field: currency, equals: eur }',
  not_equals: '{ field: document_type, not_equals: proforma }',
  in: '{ field: currency, in: [eur, usd] }',
  matches: '{ field: sender_vat_id, matches: "^DE[0-9]{9}$" }',
  gt: '{ row: item_quantity, gt: 0 }',
  gte: '{ field: amount_total, gte: 1000 }',
  lt: '{ row: item_amount_total, lt: 0 }',
  lte: '{ field: amount_total, lte: "0.00" }',
  all: '{ all: [{ field: currency, equals: eur }, { field: amount_total, gt: 0 }] }',
  any: '{ any: [{ field: order_id, present: true }, { field: iban, present: true }] }',
  not: '{ not: { field: document_type, equals: proforma } }',
};

/** Each number option with an input; the output column is computed by the formatter itself. */
const NUMBER_EXAMPLES: Record<keyof NumberFormat, { input: string; spec: NumberFormat }> = {
  decimals: { input: '1234.5', spec: { decimals: 2 } },
  rounding: { input: '2.345', spec: { decimals: 2, rounding: 'half-even' } },
  decimal_separator: { input: '1234.5', spec: { decimals: 2, decimal_separator: ',' } },
  group_separator: { input: '1234567.5', spec: { decimals: 2, decimal_separator: ',', group_separator: '.' } },
  sign: { input: '-26.41', spec: { decimals: 2, sign: 'trailing' } },
  implied_decimals: { input: '12.34', spec: { decimals: 2, implied_decimals: true } },
  scale: { input: '0.19', spec: { scale: 2 } },
  negate: { input: '165.41', spec: { negate: true } },
};

/** Date pattern letters people need; the output column is computed with the renderer's own formatter. */
const DATE_LETTERS: Array<[string, string]> = [
  ['yyyy', 'calendar year'],
  ['yy', 'two-digit year'],
  ['MM', 'month 01-12'],
  ['M', 'month 1-12'],
  ['MMM', 'month abbreviation (English)'],
  ['dd', 'day of the month 01-31'],
  ['d', 'day of the month 1-31'],
  ['HH', 'hour 00-23'],
  ['hh a', 'hour 01-12 with AM/PM'],
  ['mm', 'minutes 00-59 (only next to hours)'],
  ['ss', 'seconds'],
  ['SSS', 'milliseconds'],
  ['EEE', 'weekday abbreviation (English)'],
  ["'T'", 'literal text in single quotes'],
];
const DATE_MISTAKES = ['dd.mm.yyyy', 'DD.MM.yyyy', 'dd.MM.YYYY', 'yyyy-MM-dd hh:mm', 'yyyy-MM-ddTHH:mm'];
const SAMPLE_TIME = new Date(Date.UTC(2024, 0, 31, 14, 5, 9, 123));

function table(header: string[], rows: string[][]): string[] {
  return [
    `| ${header.join(' | ')} |`,
    `|${header.map(() => '---').join('|')}|`,
    ...rows.map((row) => `| ${row.join(' | ')} |`),
  ];
}

/** The value language, one table per kind of key, each with an example; generated so none is forgotten. */
export function languageReference(): string {
  const defs = definitions();
  const valueKeys = defs.Value?.properties ?? {};
  const conditionKeys = defs.Condition?.properties ?? {};
  const numberKeys = defs.NumberFormat?.properties ?? {};
  const describe = (keys: Record<string, Described>, key: string): string => {
    const property = keys[key];
    const referenced = property?.$ref
      ? (defs[property.$ref.split('/').pop() ?? ''] as Described | undefined)
      : undefined;
    return cell(property?.description ?? referenced?.description ?? '');
  };
  const transformKeys = new Set(TRANSFORMS.flatMap((entry) => Object.keys(entry.fields)));
  const optionKeys = Object.keys(valueKeys).filter(
    (key) => !(SOURCE_KEYS as readonly string[]).includes(key) && !transformKeys.has(key),
  );

  const out: string[] = [
    '### Value sources',
    '',
    'A value has exactly one source; a plain string is a template (`"INV {document_id}"`).',
    '',
  ];
  out.push(
    ...table(
      ['source', 'reads', 'example'],
      SOURCE_KEYS.map((key) => [
        `\`${key}\``,
        describe(valueKeys, key),
        code(exampleFor(SOURCE_EXAMPLES, key, 'source')),
      ]),
    ),
    '',
  );

  out.push('### Value options', '');
  out.push(
    ...table(
      ['key', 'meaning', 'example'],
      optionKeys.map((key) => [
        `\`${key}\``,
        describe(valueKeys, key),
        code(exampleFor(VALUE_OPTION_EXAMPLES, key, 'value option')),
      ]),
    ),
    '',
  );

  out.push(
    '### Value steps',
    '',
    `After the source, in this order: ${stepOrder()}. Each example reads a datapoint \`x\`.`,
    '',
  );
  const stepRows = TRANSFORMS.map((entry) => {
    const keys = Object.keys(entry.fields);
    const meaning = keys.map((key) => describe(valueKeys, key)).join(' ');
    return [
      `\`${entry.name}\``,
      keys.map((key) => `\`${key}\``).join(', '),
      meaning,
      code(entry.example.value),
      `${code(entry.example.input)} → ${code(entry.example.output)}`,
    ];
  });
  out.push(...table(['step', 'keys', 'what it does', 'example', 'x → output'], stepRows), '');

  out.push(
    '### Conditions',
    '',
    'Used by `when`, `where` and `cases[].when`: one subject and one or more tests (all must hold), or `all` / `any` / `not`.',
    '',
  );
  const conditionRow = (kind: string) => (key: string) => [
    `\`${key}\``,
    kind,
    describe(conditionKeys, key),
    code(exampleFor(CONDITION_EXAMPLES, key, 'condition key')),
  ];
  const combinators = Object.keys(conditionKeys).filter(
    (key) =>
      !(CONDITION_SUBJECTS as readonly string[]).includes(key) && !(CONDITION_TESTS as readonly string[]).includes(key),
  );
  out.push(
    ...table(
      ['key', 'kind', 'meaning', 'example'],
      [
        ...CONDITION_SUBJECTS.map(conditionRow('subject')),
        ...CONDITION_TESTS.map(conditionRow('test')),
        ...combinators.map(conditionRow('combination')),
      ],
    ),
    '',
  );

  out.push(
    '### Number options',
    '',
    'Under `number:`. Formatting works on the normalized decimal text, never through binary floats; the outputs below are computed by the formatter.',
    '',
  );
  const numberRows = Object.keys(numberKeys).map((key) => {
    const example = NUMBER_EXAMPLES[key as keyof NumberFormat];
    if (!example) throw new Error(`docs: no example for number option "${key}" (add it in src/mapping/docs.ts)`);
    const spec = `{ ${Object.entries(example.spec)
      .map(([option, value]) => `${option}: ${JSON.stringify(value)}`)
      .join(', ')} }`;
    return [
      `\`${key}\``,
      describe(numberKeys, key),
      code(`number: ${spec}`),
      `${code(example.input)} → ${code(formatNumber(example.input, example.spec) ?? '(not a number)')}`,
    ];
  });
  out.push(...table(['option', 'meaning', 'example', 'input → output'], numberRows), '');

  out.push(
    '### Date patterns',
    '',
    '`date:` formats an ISO date or timestamp with a date-fns pattern, in UTC. Outputs for 2024-01-31T14:05:09.123Z:',
    '',
  );
  out.push(
    ...table(
      ['letters', 'meaning', 'output'],
      DATE_LETTERS.map(([letters, meaning]) => [code(letters), meaning, code(formatUtc(SAMPLE_TIME, letters))]),
    ),
    '',
  );
  out.push('`check` refuses the classic mistakes, with the letters to use instead:', '');
  const mistakeRows = DATE_MISTAKES.map((pattern) => {
    const mistake = datePatternMistake(pattern);
    if (!mistake) throw new Error(`docs: "${pattern}" is listed as a mistake but the lint accepts it`);
    return [code(pattern), cell(mistake.message), cell(mistake.hint)];
  });
  out.push(...table(['pattern', 'problem', 'use instead'], mistakeRows), '');
  return out.join('\n');
}

/** The reference section of docs/mappings.md: the value language, then every key of the file. */
export function mappingReference(intro: string): string {
  const reference = markdownReference(mappingSchema, published, intro);
  const marker = `_Generated by \`npm run schema\` from \`${published.source}\`; do not edit by hand._\n`;
  const at = reference.indexOf(marker);
  if (at < 0) return reference;
  const end = at + marker.length;
  return `${reference.slice(0, end)}\n${languageReference()}\n${reference.slice(end)}`;
}
