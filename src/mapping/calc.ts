/**
 * The one expression escape hatch: decimal arithmetic (+ - * / and parentheses) over references.
 * Parsed once when the mapping loads; evaluation is a tree walk with decimal.js.
 */
export type CalcNode =
  | { kind: 'number'; text: string }
  | { kind: 'ref'; name: string }
  | { kind: 'neg'; operand: CalcNode }
  | { kind: 'binary'; op: '+' | '-' | '*' | '/'; left: CalcNode; right: CalcNode };

const TOKEN = /\s*(?:(\d+(?:\.\d+)?|\.\d+)|([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)?)|([-+*/()]))/y;

export function parseCalc(source: string): CalcNode {
  const tokens: Array<{ type: 'num' | 'ref' | 'op'; text: string; at: number }> = [];
  TOKEN.lastIndex = 0;
  let position = 0;
  while (position < source.length) {
    if (/^\s*$/.test(source.slice(position))) break;
    TOKEN.lastIndex = position;
    const m = TOKEN.exec(source);
    if (!m)
      throw new Error(
        `cannot read "${source.slice(position).trim()}" at character ${position + 1}; use numbers, field names, + - * / and parentheses`,
      );
    const at = position;
    position = TOKEN.lastIndex;
    if (m[1] !== undefined) tokens.push({ type: 'num', text: m[1], at });
    else if (m[2] !== undefined) tokens.push({ type: 'ref', text: m[2], at });
    else tokens.push({ type: 'op', text: m[3] as string, at });
  }
  let index = 0;
  const peek = () => tokens[index];
  const expression = (): CalcNode => {
    let left = term();
    for (let t = peek(); t && t.type === 'op' && (t.text === '+' || t.text === '-'); t = peek()) {
      index++;
      left = { kind: 'binary', op: t.text, left, right: term() };
    }
    return left;
  };
  const term = (): CalcNode => {
    let left = factor();
    for (let t = peek(); t && t.type === 'op' && (t.text === '*' || t.text === '/'); t = peek()) {
      index++;
      left = { kind: 'binary', op: t.text, left, right: factor() };
    }
    return left;
  };
  const factor = (): CalcNode => {
    const t = tokens[index++];
    if (!t) throw new Error('the expression ends too early');
    if (t.type === 'num') return { kind: 'number', text: t.text };
    if (t.type === 'ref') return { kind: 'ref', name: t.text };
    if (t.text === '-') return { kind: 'neg', operand: factor() };
    if (t.text === '+') return factor();
    if (t.text === '(') {
      const inner = expression();
      const close = tokens[index++];
      if (close?.text !== ')') throw new Error(`missing ")" for the "(" at character ${t.at + 1}`);
      return inner;
    }
    throw new Error(`unexpected "${t.text}" at character ${t.at + 1}`);
  };
  const tree = expression();
  const rest = peek();
  if (rest) throw new Error(`unexpected "${rest.text}" at character ${rest.at + 1}`);
  return tree;
}
