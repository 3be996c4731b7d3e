import type { ExportPayload, RawNode } from './payload.ts';

/** One datapoint as the mapping sees it. */
export interface Datapoint {
  id: number;
  schemaId: string;
  /** As read on the page (`content.value`), '' when empty. */
  value: string;
  /** ISO date / plain decimal from Rossum (`content.normalized_value`), null when Rossum has none. */
  normalizedValue: string | null;
}

/** A multivalue row (tuple) or a simple multivalue child. */
export interface Row {
  /** 1-based position in the table. */
  index: number;
  id: number;
  field(schemaId: string): Datapoint | undefined;
  fields(): Datapoint[];
}

export interface DocumentMetadata {
  annotationId: number;
  documentId: number | null;
  queueId: number | null;
  documentFileName: string | null;
  requestId: string;
  hookTimestamp: string | null;
  confirmedAt: string | null;
  createdAt: string | null;
  arrivedAt: string | null;
  baseUrl: string | null;
  settings: Record<string, unknown>;
}

/** Metadata of no document in particular: what a batch's own parts (and tests of routing) start from. */
export function emptyMetadata(overrides: Partial<DocumentMetadata> = {}): DocumentMetadata {
  return {
    annotationId: 0,
    documentId: null,
    queueId: null,
    documentFileName: null,
    requestId: '',
    hookTimestamp: null,
    confirmedAt: null,
    createdAt: null,
    arrivedAt: null,
    baseUrl: null,
    settings: {},
    ...overrides,
  };
}

/** Read-only, typed view of an annotation tree: header fields by `schema_id`, tables as rows. */
export interface AnnotationView {
  meta: DocumentMetadata;
  /** First datapoint with this schema id outside any multivalue. */
  field(schemaId: string): Datapoint | undefined;
  /** Rows of the multivalue with this schema id (empty when absent). */
  rows(multivalueSchemaId: string): Row[];
  /** Whether a multivalue with this schema id exists in the tree. */
  hasTable(multivalueSchemaId: string): boolean;
}

export function idFromUrl(url: string | null | undefined): number | null {
  if (!url) return null;
  const match = /\/(\d+)\/?$/.exec(url);
  return match ? Number(match[1]) : null;
}

function toDatapoint(node: RawNode): Datapoint {
  return {
    id: node.id,
    schemaId: node.schema_id,
    value: node.content?.value ?? '',
    normalizedValue: node.content?.normalized_value ?? null,
  };
}

function collectDatapoints(node: RawNode, into: Map<string, Datapoint>): void {
  if (node.category === 'datapoint') {
    if (!into.has(node.schema_id)) into.set(node.schema_id, toDatapoint(node));
    return;
  }
  for (const child of node.children ?? []) collectDatapoints(child, into);
}

function makeRow(node: RawNode, index: number): Row {
  const fields = new Map<string, Datapoint>();
  collectDatapoints(node, fields);
  return { index, id: node.id, field: (schemaId) => fields.get(schemaId), fields: () => [...fields.values()] };
}

export function viewAnnotation(payload: ExportPayload): AnnotationView {
  const header = new Map<string, Datapoint>();
  const tables = new Map<string, Row[]>();

  const walk = (node: RawNode): void => {
    if (node.category === 'datapoint') {
      if (!header.has(node.schema_id)) header.set(node.schema_id, toDatapoint(node));
      return;
    }
    if (node.category === 'multivalue') {
      if (!tables.has(node.schema_id))
        tables.set(
          node.schema_id,
          (node.children ?? []).map((child, i) => makeRow(child, i + 1)),
        );
      return;
    }
    for (const child of node.children ?? []) walk(child);
  };
  for (const section of payload.annotation.content) walk(section);

  const { annotation, document } = payload;
  const meta: DocumentMetadata = {
    annotationId: annotation.id,
    documentId: document?.id ?? idFromUrl(annotation.document),
    queueId: idFromUrl(annotation.queue),
    documentFileName: document?.original_file_name ?? null,
    requestId: payload.request_id,
    hookTimestamp: payload.timestamp ?? null,
    confirmedAt: annotation.confirmed_at ?? null,
    createdAt: annotation.created_at ?? null,
    arrivedAt: document?.arrived_at ?? null,
    baseUrl: payload.base_url ?? null,
    settings: payload.settings ?? {},
  };

  return {
    meta,
    field: (schemaId) => header.get(schemaId),
    rows: (schemaId) => tables.get(schemaId) ?? [],
    hasTable: (schemaId) => tables.has(schemaId),
  };
}
