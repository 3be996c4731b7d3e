import { describeChar, mappingError } from './errors.ts';
import type { Emitter } from './emit.ts';
import type { EmptyPolicy, XmlConfig, XmlNode } from './schema.ts';
import { compileCondition } from './conditions.ts';
import {
  newScope,
  type CompileEnv,
  type CompiledCondition,
  type CompiledTable,
  type CompiledValue,
  type Scope,
} from './scope.ts';
import { rowsOf, tableFor } from './tables.ts';
import { compileValue } from './values.ts';

/**
 * Our own serializer rather than fast-xml-parser's builder: the builder groups same-named siblings
 * (A, B, A becomes A, A, B), has one empty-element setting for the whole document, and escapes neither
 * CR nor TAB/LF in attributes, so values would not survive a parse. Here every element keeps its place,
 * its own empty policy, and every value round-trips.
 */

const FORBIDDEN =
  /[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;
const HAS_FORBIDDEN = new RegExp(FORBIDDEN.source);
const NAME = /^[\p{L}_][\p{L}\p{N}_.-]*(?::[\p{L}_][\p{L}\p{N}_.-]*)?$/u;
const TEXT_ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '\r': '&#13;' };
const ATTRIBUTE_ESCAPES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&apos;',
  '\t': '&#9;',
  '\n': '&#10;',
  '\r': '&#13;',
};

export function escapeText(text: string): string {
  return text.replace(/[&<>\r]/g, (ch) => TEXT_ESCAPES[ch] as string);
}

export function escapeAttribute(text: string): string {
  return text.replace(/[&<>"'\t\n\r]/g, (ch) => ATTRIBUTE_ESCAPES[ch] as string);
}

interface CompiledNode {
  name: string;
  path: string;
  value: CompiledValue | undefined;
  attributes: Array<{ name: string; value: CompiledValue }>;
  children: CompiledNode[];
  repeat: CompiledTable | undefined;
  /** With `repeat`: refuse a document without rows instead of leaving the element out. */
  requireRows: boolean;
  when: CompiledCondition | undefined;
  empty: EmptyPolicy;
}

export interface CompiledXml {
  config: XmlConfig;
  root: CompiledNode;
}

/** A filter for values: removes or replaces characters XML 1.0 cannot hold, per mapping, and says so. */
export function xmlCharFilter(
  config: XmlConfig,
  warn: (detail: string, scope: Scope) => void,
): (text: string, scope: Scope) => string {
  return (text, scope) => {
    if (!HAS_FORBIDDEN.test(text)) return text;
    const found = new Set<string>();
    const cleaned = text.replace(FORBIDDEN, (ch) => {
      found.add(describeChar(ch));
      return config.invalid_chars === 'replace' ? config.invalid_char_replacement : '';
    });
    const list = [...found].join(', ');
    const source = scope.datapoint ? ` (from ${scope.datapoint.schemaId}, datapoint ${scope.datapoint.id})` : '';
    if (config.invalid_chars === 'error') {
      throw mappingError(
        'MAPPING_INVALID_XML_CHAR',
        `${scope.at}${source} contains ${list}, which XML 1.0 does not allow. Remove it in Rossum, or set xml.invalid_chars to drop or replace.`,
        scope.datapoint?.id,
      );
    }
    warn(`${config.invalid_chars === 'drop' ? 'removed' : 'replaced'} ${list} (not allowed in XML 1.0)`, scope);
    return cleaned;
  };
}

export function compileXml(config: XmlConfig, env: CompileEnv): CompiledXml {
  const prefixes = new Set(['xml', ...Object.keys(config.namespaces ?? {}).filter((p) => p !== '')]);
  const checkName = (name: string, path: ReadonlyArray<PropertyKey>, kind: string): void => {
    if (!NAME.test(name))
      env.problem(
        path,
        `"${name}" is not a valid XML ${kind} name`,
        'names start with a letter or "_" and contain letters, digits, "-", "_", "." and at most one ":" after a prefix',
      );
    const colon = name.indexOf(':');
    if (colon > 0) {
      const prefix = name.slice(0, colon);
      if (prefix !== 'xmlns' && !prefixes.has(prefix))
        env.problem(
          path,
          `namespace prefix "${prefix}" is not declared`,
          `add it under xml.namespaces (declared: ${[...prefixes].join(', ')})`,
        );
    }
  };
  for (const [prefix, uri] of Object.entries(config.namespaces ?? {})) {
    if (prefix !== '' && !/^[\p{L}_][\p{L}\p{N}_.-]*$/u.test(prefix))
      env.problem(['xml', 'namespaces', prefix], `"${prefix}" is not a valid namespace prefix`);
    if (uri === '' && prefix !== '') env.problem(['xml', 'namespaces', prefix], 'a prefixed namespace needs a URI');
  }

  const compileNode = (node: XmlNode, path: PropertyKey[], parentPath: string, nodeEnv: CompileEnv): CompiledNode => {
    checkName(node.element, [...path, 'element'], 'element');
    let childEnv = nodeEnv;
    let repeat: CompiledTable | undefined;
    if (node.repeat) {
      repeat = tableFor(nodeEnv, node.repeat, [...path, 'repeat']);
      childEnv = { ...nodeEnv, rowTable: repeat, declaredRowVars: new Set(repeat.vars.keys()) };
    } else if (node.no_rows)
      env.problem([...path, 'no_rows'], 'no_rows only applies to a repeated element', 'add repeat: or remove no_rows');
    if (node.value !== undefined && node.children?.length)
      env.problem(path, `element "${node.element}" has both a value and children`, 'put the text in a child element');
    const elementPath = parentPath ? `${parentPath}/${node.element}` : node.element;
    const attributes = Object.entries(node.attributes ?? {}).map(([name, spec]) => {
      checkName(name, [...path, 'attributes', name], 'attribute');
      return { name, value: compileValue(spec, childEnv, [...path, 'attributes', name]) };
    });
    return {
      name: node.element,
      path: elementPath,
      value: node.value === undefined ? undefined : compileValue(node.value, childEnv, [...path, 'value']),
      attributes,
      children: (node.children ?? []).map((child, i) =>
        compileNode(child, [...path, 'children', i], elementPath, childEnv),
      ),
      repeat,
      requireRows: node.no_rows === 'error',
      when: node.when ? compileCondition(node.when, childEnv, [...path, 'when']) : undefined,
      empty: node.empty ?? config.empty_elements,
    };
  };
  return { config, root: compileNode(config.root, ['xml', 'root'], '', env) };
}

/** The namespace declarations of the root (a batch declares them on its own root instead). */
export function namespaceAttributesOf(xml: CompiledXml): string {
  return Object.entries(xml.config.namespaces ?? {})
    .map(([prefix, uri]) => ` ${prefix === '' ? 'xmlns' : `xmlns:${prefix}`}="${escapeAttribute(uri)}"`)
    .join('');
}

export function xmlDeclaration(xml: CompiledXml, eol: string, declarationEncoding: string): string {
  const { config } = xml;
  if (!config.declaration) return '';
  const standalone = config.standalone === undefined ? '' : ` standalone="${config.standalone ? 'yes' : 'no'}"`;
  return `<?xml version="1.0" encoding="${declarationEncoding}"${standalone}?>${eol}`;
}

/** `asBatchEntry`: the root element alone, one level deep, for a batch root to hold (no declaration, no namespaces). */
export function renderXml(
  xml: CompiledXml,
  emitter: Emitter,
  eol: string,
  declarationEncoding: string,
  asBatchEntry = false,
): string {
  const { config } = xml;
  const pretty = config.pretty;
  const scope = newScope(emitter.doc);
  const namespaceAttributes = asBatchEntry ? '' : namespaceAttributesOf(xml);

  const renderOne = (node: CompiledNode, depth: number, at: string, extraAttributes: string): string | undefined => {
    let attributes = extraAttributes;
    for (const attribute of node.attributes) {
      const value = emitter.value(attribute.value, scope, `${at}/@${attribute.name}`);
      if (value !== undefined) attributes += ` ${attribute.name}="${escapeAttribute(value)}"`;
    }
    const indent = pretty ? config.indent.repeat(depth) : '';
    const open = `${indent}<${node.name}${attributes}`;
    if (node.value) {
      const text = emitter.value(node.value, scope, at);
      if (text !== undefined && text !== '') return `${open}>${escapeText(text)}</${node.name}>`;
    } else if (node.children.length > 0) {
      const parts: string[] = [];
      for (const child of node.children) renderNode(child, depth + 1, at, parts);
      if (parts.length > 0) {
        const separator = pretty ? eol : '';
        return `${open}>${separator}${parts.join(separator)}${separator}${indent}</${node.name}>`;
      }
    }
    const policy = attributes !== '' && node.empty === 'omit' ? 'self_closing' : node.empty;
    if (policy === 'omit') return undefined;
    return policy === 'self_closing' ? `${open}/>` : `${open}></${node.name}>`;
  };

  const renderNode = (node: CompiledNode, depth: number, parentAt: string, into: string[]): void => {
    const at = parentAt ? `${parentAt}/${node.name}` : node.name;
    if (!node.repeat) {
      scope.at = at;
      if (node.when && !node.when(scope)) return;
      const out = renderOne(node, depth, at, '');
      if (out !== undefined) into.push(out);
      return;
    }
    const outer = scope.row;
    const rows = rowsOf(emitter.doc, node.repeat);
    if (rows.length === 0 && node.requireRows) {
      throw mappingError(
        'MAPPING_NO_ROWS',
        `${at} needs at least one row of "${node.repeat.from}", but the annotation has none. Add the line items in Rossum (or have the mapping write a summary line for such documents).`,
      );
    }
    for (const row of rows) {
      scope.row = row;
      const rowAt = `${at}[${row.lineNumber}]`;
      scope.at = rowAt;
      if (node.when && !node.when(scope)) continue;
      const out = renderOne(node, depth, rowAt, '');
      if (out !== undefined) into.push(out);
    }
    scope.row = outer;
  };

  const root = renderOne(
    { ...xml.root, empty: xml.root.empty === 'omit' ? 'self_closing' : xml.root.empty },
    asBatchEntry ? 1 : 0,
    xml.root.name,
    namespaceAttributes,
  ) as string;
  return asBatchEntry ? root : xmlDeclaration(xml, eol, declarationEncoding) + root;
}
