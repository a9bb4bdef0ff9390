/** A tiny well-formedness check for the SVG (XML subset) that the report charts emit. */

const NAME = /[A-Za-z_][\w:.-]*/y;
const ATTR = /\s+([A-Za-z_][\w:.-]*)\s*=\s*"([^"]*)"/y;
const END = /\s*(\/?)>/y;
const ENTITY = /&(?:[A-Za-z]+|#\d+|#x[0-9A-Fa-f]+);/y;

/**
 * Problems found in `xml` (empty when fine): unbalanced or mismatched tags, not exactly one root
 * element, malformed tags or attributes (double-quoted values only), duplicate attributes, a raw `<`
 * or a bare `&` in text or attribute values, and `NaN` / `Infinity` in any attribute value.
 * Comments, `<?…?>` and `<!…>` declarations are skipped. Not a full XML parser.
 */
export function xmlProblems(xml: string): string[] {
  const problems: string[] = [];
  const stack: string[] = [];
  let roots = 0;
  let i = 0;
  const checkText = (text: string, where: string): void => {
    for (let k = text.indexOf('&'); k >= 0; k = text.indexOf('&', k + 1)) {
      ENTITY.lastIndex = k;
      if (!ENTITY.test(text)) problems.push(`bare '&' in ${where} at ${k}`);
    }
  };
  while (i < xml.length) {
    const lt = xml.indexOf('<', i);
    const text = xml.slice(i, lt < 0 ? xml.length : lt);
    checkText(text, 'text');
    if (stack.length === 0 && text.trim() !== '') problems.push(`text outside the root element: ${JSON.stringify(text.trim().slice(0, 40))}`);
    if (lt < 0) break;
    if (xml.startsWith('<!--', lt)) {
      const end = xml.indexOf('-->', lt + 4);
      if (end < 0) {
        problems.push(`unterminated comment at ${lt}`);
        break;
      }
      i = end + 3;
      continue;
    }
    if (xml.startsWith('<?', lt) || xml.startsWith('<!', lt)) {
      const end = xml.indexOf('>', lt);
      if (end < 0) {
        problems.push(`unterminated declaration at ${lt}`);
        break;
      }
      i = end + 1;
      continue;
    }
    const closing = xml[lt + 1] === '/';
    let p = lt + (closing ? 2 : 1);
    NAME.lastIndex = p;
    const nm = NAME.exec(xml);
    if (!nm) {
      problems.push(`raw '<' or malformed tag at ${lt}`);
      i = lt + 1;
      continue;
    }
    const name = nm[0];
    p += name.length;
    const seen = new Set<string>();
    for (;;) {
      ATTR.lastIndex = p;
      const a = closing ? null : ATTR.exec(xml);
      if (!a) break;
      const [whole, an, av] = a as unknown as [string, string, string];
      if (seen.has(an)) problems.push(`duplicate attribute ${an} on <${name}> at ${lt}`);
      seen.add(an);
      if (av.includes('<')) problems.push(`raw '<' in attribute ${an} of <${name}> at ${lt}`);
      if (/\bNaN\b|\bInfinity\b/.test(av)) problems.push(`non-finite number in attribute ${an} of <${name}> at ${lt}`);
      checkText(av, `attribute ${an} of <${name}>`);
      p += whole.length;
    }
    END.lastIndex = p;
    const rest = END.exec(xml);
    if (!rest) {
      problems.push(`malformed tag <${closing ? '/' : ''}${name}> at ${lt}`);
      const gt = xml.indexOf('>', p);
      i = gt < 0 ? xml.length : gt + 1;
      continue;
    }
    const selfClosing = rest[1] === '/';
    i = p + rest[0].length;
    if (closing) {
      if (selfClosing) problems.push(`malformed closing tag </${name}/> at ${lt}`);
      const open = stack.pop();
      if (open !== name) problems.push(`</${name}> at ${lt} closes <${open ?? '(nothing)'}>`);
    } else {
      if (stack.length === 0) roots++;
      if (!selfClosing) stack.push(name);
    }
  }
  if (stack.length) problems.push(`unclosed: ${stack.map((s) => `<${s}>`).join(' ')}`);
  if (roots !== 1) problems.push(`expected exactly one root element, found ${roots}`);
  return problems;
}
