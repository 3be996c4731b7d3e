import { z } from 'zod';
import type { Condition, ValueSpec } from './schema.ts';

/**
 * The `edifact` block of the mapping language. Built by a function that receives the value and condition
 * schemas, so this file needs nothing from schema.ts at load time (schema.ts imports this one).
 */

export const EDIFACT_SYNTAX_LEVELS = ['UNOA', 'UNOB', 'UNOC'] as const;
export type EdifactSyntaxLevel = (typeof EDIFACT_SYNTAX_LEVELS)[number];
export const NO_ROWS_POLICIES = ['omit', 'error'] as const;
export type NoRowsPolicy = (typeof NO_ROWS_POLICIES)[number];

/** `no_rows` of a repeated XML element or EDIFACT segment/group. */
export function noRowsSchema(what: string) {
  return z
    .enum(NO_ROWS_POLICIES)
    .optional()
    .describe(
      `With \`repeat\` and no rows: omit the ${what} (default) or error (the document is refused, naming the table).`,
    );
}

/** A data element: one value (a simple element) or a list of component values (a composite). */
export type EdifactElement = ValueSpec | ValueSpec[];

export interface EdifactNode {
  segment?: string | undefined;
  elements?: EdifactElement[] | undefined;
  group?: string | undefined;
  segments?: EdifactNode[] | undefined;
  repeat?: string | undefined;
  no_rows?: NoRowsPolicy | undefined;
  when?: Condition | undefined;
}

export interface EdifactParty {
  id: ValueSpec;
  qualifier?: ValueSpec | undefined;
}

export interface EdifactConfig {
  syntax: EdifactSyntaxLevel;
  syntax_version: 3 | 4;
  una: boolean;
  segment_newline: boolean;
  sender: EdifactParty;
  recipient: EdifactParty;
  interchange_reference: ValueSpec;
  application_reference?: ValueSpec | undefined;
  test_indicator: boolean;
  message: { type: string; version: string; release: string; agency: string; association?: string | undefined };
  message_reference: ValueSpec;
  segments: EdifactNode[];
}

export function edifactSchemaWith(
  valueSpec: z.ZodType<ValueSpec>,
  condition: z.ZodType<Condition>,
): z.ZodType<EdifactConfig, unknown> {
  const element = z
    .union([valueSpec, z.array(valueSpec).min(1)])
    .describe(
      'A simple data element (one value) or a composite (a list of component values). "" leaves a position empty; trailing empty ones are not written.',
    );
  const node: z.ZodType<EdifactNode> = z
    .lazy(() =>
      z
        .strictObject({
          segment: z
            .string()
            .optional()
            .describe(
              'Segment tag, three capital letters: BGM, DTM, NAD, LIN, ... (the envelope UNA/UNB/UNH/UNT/UNZ is written for you).',
            ),
          elements: z.array(element).optional().describe('Data elements of the segment, in order.'),
          group: z
            .string()
            .optional()
            .describe(
              'Name of a segment group (e.g. SG26), for messages and --explain; its `segments` are written together.',
            ),
          segments: z.array(node).optional().describe('The segments (and nested groups) of the group, in order.'),
          repeat: z
            .string()
            .optional()
            .describe(
              'Write the segment or group once per row of a table (name from `tables`) or multivalue schema_id.',
            ),
          no_rows: noRowsSchema('segment or group'),
          when: condition.optional().describe('Write the segment or group only when this holds.'),
        })
        .describe('A segment (`segment` + `elements`) or a segment group (`group` + `segments`).'),
    )
    .meta({ id: 'EdifactSegment' });
  const party = z.strictObject({
    id: valueSpec.describe('Party identification (GLN, customer number, ...).'),
    qualifier: valueSpec.optional().describe('Code qualifier, e.g. 14 (GLN), ZZZ (mutually defined).'),
  });
  return z
    .strictObject({
      syntax: z
        .enum(EDIFACT_SYNTAX_LEVELS)
        .default('UNOA')
        .describe(
          'Syntax level: UNOA (capital letters, digits, space and . , - ( ) / = \' + : ? ! " % & * ; < >), UNOB (UNOA plus small letters), UNOC (ISO 8859-1; set encoding: iso-8859-1). Other characters follow `unencodable`: error, replace, or transliterate (é→E under UNOA).',
        ),
      syntax_version: z
        .union([z.literal(3), z.literal(4)])
        .default(3)
        .describe('Syntax version in UNB: 3 writes the preparation date as YYMMDD, 4 as CCYYMMDD.'),
      una: z.boolean().default(true).describe("Start with the service string advice UNA:+.? ' (the separators used)."),
      segment_newline: z
        .boolean()
        .default(false)
        .describe('Write `line_ending` after every segment terminator (readable files; parsers ignore it).'),
      sender: party.describe('Interchange sender (UNB S002).'),
      recipient: party.describe('Interchange recipient (UNB S003).'),
      interchange_reference: valueSpec.describe(
        'Interchange control reference (UNB 0020, repeated in UNZ), at most 14 characters, e.g. "{meta.annotation_id}".',
      ),
      application_reference: valueSpec.optional().describe('Application reference (UNB 0026), e.g. INVOIC.'),
      test_indicator: z.boolean().default(false).describe('Mark the interchange as a test (UNB 0035 = 1).'),
      message: z
        .strictObject({
          type: z.string().describe('Message type, e.g. INVOIC.'),
          version: z.string().describe('Version, e.g. D.'),
          release: z.string().describe('Release, e.g. 96A.'),
          agency: z.string().default('UN').describe('Controlling agency. Default UN.'),
          association: z.string().optional().describe('Association assigned code, e.g. EAN008.'),
        })
        .describe('Message identifier (UNH S009).'),
      message_reference: valueSpec
        .default('1')
        .describe('Message reference number (UNH 0062, repeated in UNT), at most 14 characters. Default 1.'),
      segments: z
        .array(node)
        .min(1)
        .describe('The message body between UNH and UNT; UNT counts the segments and UNZ the messages.'),
    })
    .describe(
      'UN/EDIFACT interchange with one message: UNA, UNB, UNH, your segments, UNT, UNZ.',
    ) as unknown as z.ZodType<EdifactConfig, unknown>;
}
