import { Ajv } from 'ajv';
import { z } from 'zod';
import { formatPath } from '../config-loading/index.ts';
import { BridgeError } from '../errors.ts';

/** What the webhook needs from a Rossum `annotation_content.*` payload; unknown keys pass (Rossum extends them). */
const datapointContent = z.looseObject({
  value: z.string().nullable().optional(),
  normalized_value: z.string().nullable().optional(),
});

export interface RawNode {
  id: number;
  schema_id: string;
  category: 'section' | 'multivalue' | 'tuple' | 'datapoint';
  children?: RawNode[] | undefined;
  content?: { value?: string | null | undefined; normalized_value?: string | null | undefined } | undefined;
}

const node: z.ZodType<RawNode> = z.lazy(() =>
  z.looseObject({
    id: z.number().int(),
    schema_id: z.string().min(1),
    category: z.enum(['section', 'multivalue', 'tuple', 'datapoint']),
    children: z.array(node).optional(),
    content: datapointContent.optional(),
  }),
);

const urlOrNull = z.string().nullable().optional();

export const exportPayloadSchema = z.looseObject({
  request_id: z.string().min(1),
  timestamp: z.string().optional(),
  base_url: z.string().optional(),
  rossum_authorization_token: z.string().optional(),
  hook: z.string().optional(),
  settings: z.record(z.string(), z.unknown()).nullable().optional(),
  secrets: z.record(z.string(), z.unknown()).nullable().optional(),
  action: z.string(),
  event: z.string(),
  annotation: z.looseObject({
    id: z.number().int(),
    url: z.string().optional(),
    queue: urlOrNull,
    document: urlOrNull,
    status: z.string().optional(),
    created_at: urlOrNull,
    confirmed_at: urlOrNull,
    modified_at: urlOrNull,
    metadata: z.record(z.string(), z.unknown()).nullable().optional(),
    content: z.array(node),
  }),
  document: z
    .looseObject({
      id: z.number().int().optional(),
      original_file_name: z.string().nullable().optional(),
      arrived_at: urlOrNull,
      mime_type: z.string().optional(),
    })
    .optional(),
});

export type ExportPayload = z.infer<typeof exportPayloadSchema>;

/** The only part dispatch needs before knowing the event is an export. */
export const hookEnvelopeSchema = z.looseObject({ event: z.string(), action: z.string() });

/**
 * The same schema compiled by Ajv: it checks the tree in place (about 20× faster than zod, which
 * copies every node of a 20–60 kB payload on the hot path). Zod stays the declaration and the type,
 * and explains a rejection, so both always agree on what is valid.
 */
const isExportPayload = new Ajv({ allErrors: false, strict: false }).compile<ExportPayload>(
  z.toJSONSchema(exportPayloadSchema, { io: 'input', target: 'draft-7', unrepresentable: 'any' }),
);

/**
 * Validates an export payload; the error names the first offending path, e.g.
 * `annotation.content[2].children[0].schema_id: expected string, received number`.
 */
export function parseExportPayload(json: unknown): ExportPayload {
  if (isExportPayload(json)) {
    assertUniqueIds(json.annotation.content);
    return json;
  }
  const parsed = exportPayloadSchema.safeParse(json);
  if (parsed.success) {
    // Unreachable while both come from one declaration; fail closed with Ajv's reason.
    const first = isExportPayload.errors?.[0];
    throw new BridgeError(
      'PAYLOAD_INVALID',
      `Invalid export payload at ${first?.instancePath || '(root)'}: ${first?.message ?? 'invalid'}`,
      { permanent: true },
    );
  }
  const issue = parsed.error.issues[0];
  const path = issue ? formatPath(issue.path) : '';
  throw new BridgeError(
    'PAYLOAD_INVALID',
    `Invalid export payload at ${path || '(root)'}: ${issue?.message ?? 'invalid'}`,
    {
      permanent: true,
    },
  );
}

function assertUniqueIds(content: RawNode[]): void {
  const seen = new Set<number>();
  const stack = [...content];
  while (stack.length > 0) {
    const current = stack.pop() as RawNode;
    if (seen.has(current.id)) {
      throw new BridgeError(
        'PAYLOAD_INVALID',
        `Invalid export payload: datapoint id ${current.id} appears more than once in annotation.content`,
        {
          permanent: true,
        },
      );
    }
    seen.add(current.id);
    if (current.children) stack.push(...current.children);
  }
}
