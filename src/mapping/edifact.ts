import { canonicalEncoding, type UnencodablePolicy } from './encoding.ts';
import type { EdifactConfig, EdifactElement, EdifactNode, EdifactSyntaxLevel, NoRowsPolicy } from './edifact-schema.ts';
import type { ValueSpec } from './schema.ts';
import { fitsLevel, fitToLevel, messageEnvelope, SegmentWriter } from './edifact-syntax.ts';
import type { Emitter } from './emit.ts';
import { mappingError } from './errors.ts';
import { formatUtc, parseIsoDate } from './format.ts';
import { compileCondition } from './conditions.ts';
import {
  newScope,
  warnAbout,
  type CompileEnv,
  type CompiledCondition,
  type CompiledTable,
  type CompiledValue,
  type RowScope,
  type Scope,
} from './scope.ts';
import { rowsOf, tableFor } from './tables.ts';
import { compileValue } from './values.ts';

interface CompiledComponent {
  value: CompiledValue;
  /** ` element 2` or ` element 2.1`: where in its segment, for messages. */
  at: string;
  /** Plain text known at compile time (qualifiers, codes): written without evaluating, unless explaining. */
  literal: string | undefined;
}

interface CompiledNode {
  /** `segment BGM`, `group SG26`: for messages. */
  label: string;
  tag: string | undefined;
  elements: CompiledComponent[][];
  children: CompiledNode[];
  table: CompiledTable | undefined;
  noRows: NoRowsPolicy;
  when: CompiledCondition | undefined;
}

interface CompiledParty {
  id: CompiledValue;
  qualifier: CompiledValue | undefined;
}

export interface CompiledEdifact {
  config: EdifactConfig;
  sender: CompiledParty;
  recipient: CompiledParty;
  interchangeReference: CompiledValue;
  applicationReference: CompiledValue | undefined;
  messageReference: CompiledValue;
  nodes: CompiledNode[];
}

const TAG = /^[A-Z]{3}$/;
const ENVELOPE_TAGS = new Set(['UNA', 'UNB', 'UNG', 'UNH', 'UNT', 'UNE', 'UNZ']);
/** Encodings whose bytes are the syntax level's characters; UNOA/UNOB text is ASCII in all of them. */
const LEVEL_ENCODINGS: Record<EdifactSyntaxLevel, string[]> = {
  UNOA: ['ascii', 'usascii', 'iso88591', 'latin1', 'utf8'],
  UNOB: ['ascii', 'usascii', 'iso88591', 'latin1', 'utf8'],
  UNOC: ['iso88591', 'latin1'],
};
const MAX_REFERENCE = 14;

export function compileEdifact(
  config: EdifactConfig,
  env: CompileEnv,
  source: { encoding: string; bom: boolean; unencodable: UnencodablePolicy; replacement: string },
): CompiledEdifact {
  const level = config.syntax;
  if (!LEVEL_ENCODINGS[level].includes(canonicalEncoding(source.encoding))) {
    env.problem(
      ['encoding'],
      `EDIFACT syntax level ${level} cannot be written in ${source.encoding}`,
      level === 'UNOC' ? 'UNOC is ISO 8859-1: set encoding: iso-8859-1' : 'set encoding: ascii (or iso-8859-1)',
    );
  }
  if (source.bom)
    env.problem(['bom'], 'EDIFACT interchanges start with UNA or UNB, never with a byte order mark', 'set bom: false');
  if (source.unencodable !== 'error' && !fitsLevel(level, source.replacement))
    env.problem(
      ['replacement'],
      `the replacement "${source.replacement}" is not allowed in syntax level ${level}`,
      'use e.g. "?" or a space',
    );
  for (const key of ['type', 'version', 'release', 'agency', 'association'] as const) {
    const value = config.message[key];
    if (value !== undefined && !/^[A-Z0-9]{1,6}$/.test(value))
      env.problem(
        ['edifact', 'message', key],
        `"${value}" is not a message identifier code`,
        'use capital letters and digits, e.g. INVOIC, D, 96A, UN, EAN008',
      );
  }

  const compileNode = (node: EdifactNode, path: PropertyKey[], nodeEnv: CompileEnv): CompiledNode => {
    let childEnv = nodeEnv;
    let table: CompiledTable | undefined;
    if (node.repeat) {
      table = tableFor(nodeEnv, node.repeat, [...path, 'repeat']);
      childEnv = { ...nodeEnv, rowTable: table, declaredRowVars: new Set(table.vars.keys()) };
    } else if (node.no_rows)
      env.problem(
        [...path, 'no_rows'],
        'no_rows only applies to a repeated segment or group',
        'add repeat: or remove no_rows',
      );
    const isGroup = node.group !== undefined || node.segments !== undefined;
    if (isGroup && node.segment !== undefined)
      env.problem(path, 'an entry is either a segment (segment + elements) or a group (group + segments), not both');
    if (!isGroup && node.segment === undefined)
      env.problem(
        path,
        'the entry names no segment',
        'add segment: TAG with its elements, or group: NAME with segments',
      );
    if (isGroup && node.elements !== undefined)
      env.problem(
        [...path, 'elements'],
        'a group has segments, not elements',
        'put the elements in a segment of the group',
      );
    if (node.segment !== undefined) {
      if (!TAG.test(node.segment))
        env.problem(
          [...path, 'segment'],
          `"${node.segment}" is not a segment tag`,
          'three capital letters, e.g. BGM, NAD, LIN',
        );
      else if (ENVELOPE_TAGS.has(node.segment))
        env.problem(
          [...path, 'segment'],
          `${node.segment} is part of the envelope, which the bridge writes and counts`,
          'remove it; set the references under edifact: instead',
        );
    }
    const compileComponent = (spec: ValueSpec, componentPath: PropertyKey[], at: string): CompiledComponent => {
      const literal = typeof spec === 'string' && !/[{}]/.test(spec) ? spec : undefined;
      if (literal !== undefined && !fitsLevel(level, literal))
        env.problem(componentPath, `"${literal}" has characters syntax level ${level} does not allow`);
      return { value: compileValue(spec, childEnv, componentPath), literal, at };
    };
    const compileElement = (element: EdifactElement, e: number): CompiledComponent[] =>
      Array.isArray(element)
        ? element.map((component, c) =>
            compileComponent(
              component,
              [...path, 'elements', e, c],
              ` element ${e + 1}${element.length > 1 ? `.${c + 1}` : ''}`,
            ),
          )
        : [compileComponent(element, [...path, 'elements', e], ` element ${e + 1}`)];
    return {
      label: node.segment !== undefined ? `segment ${node.segment}` : `group ${node.group ?? ''}`.trim(),
      tag: node.segment,
      elements: (node.elements ?? []).map(compileElement),
      children: (node.segments ?? []).map((child, i) => compileNode(child, [...path, 'segments', i], childEnv)),
      table,
      noRows: node.no_rows ?? 'omit',
      when: node.when ? compileCondition(node.when, childEnv, [...path, 'when']) : undefined,
    };
  };
  const party = (key: 'sender' | 'recipient'): CompiledParty => ({
    id: compileValue(config[key].id, env, ['edifact', key, 'id']),
    qualifier:
      config[key].qualifier === undefined
        ? undefined
        : compileValue(config[key].qualifier, env, ['edifact', key, 'qualifier']),
  });
  return {
    config,
    sender: party('sender'),
    recipient: party('recipient'),
    interchangeReference: compileValue(config.interchange_reference, env, ['edifact', 'interchange_reference']),
    applicationReference:
      config.application_reference === undefined
        ? undefined
        : compileValue(config.application_reference, env, ['edifact', 'application_reference']),
    messageReference: compileValue(config.message_reference, env, ['edifact', 'message_reference']),
    nodes: config.segments.map((node, i) => compileNode(node, ['edifact', 'segments', i], env)),
  };
}

/** The format's character rules for the Emitter: every value is made to fit the syntax level before the encoding sees it. */
export function edifactCharFilter(
  edifact: CompiledEdifact,
  policy: UnencodablePolicy,
  replacement: string,
): (text: string, scope: Scope) => string {
  const level = edifact.config.syntax;
  return (text, scope) => {
    if (fitsLevel(level, text)) return text;
    const what = () =>
      scope.datapoint
        ? `${scope.at} (from ${scope.datapoint.schemaId}, datapoint ${scope.datapoint.id})`
        : String(scope.at);
    return fitToLevel(text, level, policy, replacement, what, scope.datapoint?.id, (detail) =>
      warnAbout(scope.doc, scope, detail),
    );
  };
}

/** Which segments are written, in order: a node and its row at each index (two arrays, no object per segment). */
interface Plan {
  nodes: CompiledNode[];
  rows: Array<RowScope | undefined>;
  /** Where a condition is evaluated, spelled out only if a message names it. */
  conditionAt: ConditionLocation;
}

class ConditionLocation {
  label = '';
  row: RowScope | undefined;

  toString(): string {
    return `${this.label}${this.row ? ` (${this.row.label})` : ''}`;
  }
}

/** Which segments are written, in order (repeats and conditions resolved), before any value is evaluated. */
function plan(nodes: CompiledNode[], scope: Scope, into: Plan): void {
  for (const node of nodes) {
    if (!node.table) {
      planOne(node, scope, into);
      continue;
    }
    const rows = rowsOf(scope.doc, node.table);
    if (rows.length === 0 && node.noRows === 'error') {
      throw mappingError(
        'MAPPING_NO_ROWS',
        `The EDIFACT ${node.label} needs at least one row of "${node.table.from}", but the annotation has none. Add the line items in Rossum.`,
      );
    }
    const outer = scope.row;
    for (const row of rows) {
      scope.row = row;
      planOne(node, scope, into);
    }
    scope.row = outer;
  }
}

/** The node once, in the scope's row: its segment, or its group's segments, unless its condition says no. */
function planOne(node: CompiledNode, scope: Scope, into: Plan): void {
  if (node.when) {
    // Only a condition reads the location here; every value sets its own.
    into.conditionAt.label = node.label;
    into.conditionAt.row = scope.row;
    scope.at = into.conditionAt;
    if (!node.when(scope)) return;
  }
  if (node.tag === undefined) {
    plan(node.children, scope, into);
    return;
  }
  into.nodes.push(node);
  into.rows.push(scope.row);
}

/** Where a value goes; spelled out only when a message or --explain asks for it (most values never need it). */
class SegmentLocation {
  segment = 0;
  tag = '';
  row: RowScope | undefined;
  component = '';

  toString(): string {
    return `segment ${this.segment} ${this.tag}${this.row ? ` (${this.row.label})` : ''}${this.component}`;
  }
}

function reference(emitter: Emitter, value: CompiledValue, scope: Scope, at: string): string {
  const text = emitter.value(value, scope, at) ?? '';
  if (text === '')
    throw mappingError(
      'MAPPING_REQUIRED_FIELD',
      `${at} is empty; EDIFACT needs a control reference there.`,
      scope.datapoint?.id,
    );
  if (text.length > MAX_REFERENCE)
    throw mappingError(
      'MAPPING_VALUE_TOO_LONG',
      `${at}: "${text}" is ${text.length} characters; a control reference holds at most ${MAX_REFERENCE}.`,
      scope.datapoint?.id,
    );
  return text;
}

/**
 * The interchange, written in file order: the envelope's head (its values evaluated first), the planned segments, then
 * UNT (the plan knows the count) and UNZ. `settle`, as for XML, takes the text at points it is final (after each segment).
 */
export function renderEdifact(
  edifact: CompiledEdifact,
  emitter: Emitter,
  eol: string,
  finalNewline: boolean,
  settle?: (text: string) => string,
): string {
  const { config } = edifact;
  const scope = newScope(emitter.doc);
  const planned: Plan = { nodes: [], rows: [], conditionAt: new ConditionLocation() };
  plan(edifact.nodes, scope, planned);
  const count = planned.nodes.length;
  emitter.doc.recordCount = count + 2;
  const newline = config.segment_newline ? eol : '';
  const { head, tail } = envelopeOf(edifact, emitter, scope, count, newline);

  const explaining = emitter.trace !== null;
  let out = head;
  const location = new SegmentLocation();
  const writer = new SegmentWriter();
  for (let i = 0; i < count; i++) {
    const node = planned.nodes[i] as CompiledNode;
    const row = planned.rows[i];
    scope.row = row;
    location.segment = i + 2;
    location.tag = node.tag as string;
    location.row = row;
    writer.start(node.tag as string);
    for (const components of node.elements) {
      writer.nextElement();
      for (const component of components) {
        if (component.literal !== undefined && !explaining) {
          writer.component(component.literal);
          continue;
        }
        location.component = component.at;
        writer.component(emitter.value(component.value, scope, location) ?? '');
      }
    }
    out += newline + writer.finish();
    if (settle) out = settle(out);
  }
  return out + newline + tail + (finalNewline ? eol : '');
}

function envelopeOf(
  edifact: CompiledEdifact,
  emitter: Emitter,
  scope: Scope,
  segmentCount: number,
  newline: string,
): { head: string; tail: string } {
  const { config } = edifact;
  const party = (compiled: CompiledParty, at: string): string[] => {
    const id = emitter.value(compiled.id, scope, at) ?? '';
    if (id === '') throw mappingError('MAPPING_REQUIRED_FIELD', `${at} is empty; UNB needs it.`, scope.datapoint?.id);
    return compiled.qualifier ? [id, emitter.value(compiled.qualifier, scope, `${at} qualifier`) ?? ''] : [id];
  };
  const now = parseIsoDate(emitter.doc.now) ?? new Date(emitter.doc.now);
  const { message } = config;
  return messageEnvelope(
    {
      una: config.una,
      syntax: [config.syntax, String(config.syntax_version)],
      sender: party(edifact.sender, 'UNB sender'),
      recipient: party(edifact.recipient, 'UNB recipient'),
      prepared: [formatUtc(now, config.syntax_version === 3 ? 'yyMMdd' : 'yyyyMMdd'), formatUtc(now, 'HHmm')],
      reference: reference(emitter, edifact.interchangeReference, scope, 'UNB interchange reference'),
      applicationReference: edifact.applicationReference
        ? emitter.value(edifact.applicationReference, scope, 'UNB application reference')
        : undefined,
      testIndicator: config.test_indicator,
    },
    {
      reference: reference(emitter, edifact.messageReference, scope, 'UNH message reference'),
      identifier: [
        message.type,
        message.version,
        message.release,
        message.agency,
        ...(message.association ? [message.association] : []),
      ],
      segmentCount,
    },
    newline,
  );
}
