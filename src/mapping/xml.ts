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
/** A cheap first look without look-arounds: no control character, surrogate or U+FFFE/U+FFFF at all. */
const MAYBE_FORBIDDEN = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\uD800-\uDFFF\uFFFE\uFFFF]/;
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

const NEEDS_TEXT_ESCAPE = /[&<>\r]/;
const NEEDS_ATTRIBUTE_ESCAPE = /[&<>"'\t\n\r]/;

export function escapeText(text: string): string {
  return NEEDS_TEXT_ESCAPE.test(text) ? escapeEach(text, TEXT_ESCAPES) : text;
}

export function escapeAttribute(text: string): string {
  return NEEDS_ATTRIBUTE_ESCAPE.test(text) ? escapeEach(text, ATTRIBUTE_ESCAPES) : text;
}

/** One pass, copying the runs between escaped characters (a replace callback per character is far slower). */
function escapeEach(text: string, escapes: Record<string, string>): string {
  let out = '';
  let from = 0;
  for (let i = 0; i < text.length; i++) {
    // Every escaped character is below "?" (63).
    if (text.charCodeAt(i) > 62) continue;
    const escaped = escapes[text[i] as string];
    if (escaped === undefined) continue;
    out += text.slice(from, i) + escaped;
    from = i + 1;
  }
  return out + text.slice(from);
}

interface CompiledNode {
  name: string;
  /** `<name`, `</name>` and `/name` (its step in an output location), put together once. */
  openTag: string;
  closeTag: string;
  atStep: string;
  path: string;
  value: CompiledValue | undefined;
  /** `opening` is ` name="`, `atStep` is `/@name`. */
  attributes: Array<{ name: string; value: CompiledValue; opening: string; atStep: string }>;
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
    if (!MAYBE_FORBIDDEN.test(text) || !HAS_FORBIDDEN.test(text)) return text;
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
      return {
        name,
        value: compileValue(spec, childEnv, [...path, 'attributes', name]),
        opening: ` ${name}="`,
        atStep: `/@${name}`,
      };
    });
    return {
      name: node.element,
      openTag: `<${node.element}`,
      closeTag: `</${node.element}>`,
      atStep: `/${node.element}`,
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

/**
 * `asBatchEntry`: the root element alone, one level deep, for a batch root to hold (no declaration, no namespaces).
 * `settle`: takes the text written so far at points it is final (after each repeated element), and returns
 * what to go on appending to; the result is then only the text after the last settled point.
 */
export function renderXml(
  xml: CompiledXml,
  emitter: Emitter,
  eol: string,
  declarationEncoding: string,
  asBatchEntry = false,
  settle?: (text: string) => string,
): string {
  const { config } = xml;
  const pretty = config.pretty;
  const separator = pretty ? eol : '';
  const indents: string[] = [];
  const indentOf = (depth: number): string => {
    let indent = indents[depth];
    if (indent === undefined) indents[depth] = indent = pretty ? config.indent.repeat(depth) : '';
    return indent;
  };
  const scope = newScope(emitter.doc);
  const namespaceAttributes = asBatchEntry ? '' : namespaceAttributesOf(xml);

  // One growing string, written in document order: an element whose children all turn out empty is taken
  // back by returning to the text before it (strings are immutable, so that costs nothing).
  let out = asBatchEntry ? '' : xmlDeclaration(xml, eol, declarationEncoding);

  /** Appends the element; false (nothing appended) when it is left out. */
  const renderOne = (node: CompiledNode, depth: number, at: string, extraAttributes: string): boolean => {
    let attributes = extraAttributes;
    for (const attribute of node.attributes) {
      const value = emitter.value(attribute.value, scope, at + attribute.atStep);
      if (value !== undefined) attributes += `${attribute.opening}${escapeAttribute(value)}"`;
    }
    const indent = indentOf(depth);
    const open = indent + node.openTag + attributes;
    if (node.value) {
      const text = emitter.value(node.value, scope, at);
      if (text !== undefined && text !== '') {
        out += `${open}>${escapeText(text)}${node.closeTag}`;
        return true;
      }
    } else if (node.children.length > 0) {
      const before = out;
      out += `${open}>`;
      let written = false;
      for (const child of node.children) if (renderNode(child, depth + 1, at)) written = true;
      if (written) {
        out += separator + indent + node.closeTag;
        return true;
      }
      out = before;
    }
    const policy = attributes !== '' && node.empty === 'omit' ? 'self_closing' : node.empty;
    if (policy === 'omit') return false;
    out += policy === 'self_closing' ? `${open}/>` : `${open}>${node.closeTag}`;
    return true;
  };

  /** Appends the element (each preceded by the separator) once, or per row; true when anything was written. */
  const renderNode = (node: CompiledNode, depth: number, parentAt: string): boolean => {
    const at = parentAt ? parentAt + node.atStep : node.name;
    if (!node.repeat) {
      scope.at = at;
      if (node.when && !node.when(scope)) return false;
      return renderSeparated(node, depth, at);
    }
    const outer = scope.row;
    const rows = rowsOf(emitter.doc, node.repeat);
    if (rows.length === 0 && node.requireRows) {
      throw mappingError(
        'MAPPING_NO_ROWS',
        `${at} needs at least one row of "${node.repeat.from}", but the annotation has none. Add the line items in Rossum (or have the mapping write a summary line for such documents).`,
      );
    }
    let written = false;
    for (const row of rows) {
      scope.row = row;
      const rowAt = `${at}[${row.lineNumber}]`;
      scope.at = rowAt;
      if (node.when && !node.when(scope)) continue;
      if (!renderSeparated(node, depth, rowAt)) continue;
      written = true;
      // Written for good: every element around it now has content, so none of them takes its text back.
      if (settle) out = settle(out);
    }
    scope.row = outer;
    return written;
  };

  const renderSeparated = (node: CompiledNode, depth: number, at: string): boolean => {
    const before = out;
    out += separator;
    if (renderOne(node, depth, at, '')) return true;
    out = before;
    return false;
  };

  renderOne(
    { ...xml.root, empty: xml.root.empty === 'omit' ? 'self_closing' : xml.root.empty },
    asBatchEntry ? 1 : 0,
    xml.root.name,
    namespaceAttributes,
  );
  return out;
}
