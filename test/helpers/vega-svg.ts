/**
 * Reading Vega's headless SVG in tests: the marks of a role (`line mark`, `area mark`, `symbol
 * mark`, …) with their attributes, and a path's `d` split into its subpaths of points. Vega writes
 * absolute `M`/`L` commands for line and area marks, so these parse without a general path parser.
 */

/** One drawn mark item: its tag's attributes. */
export interface MarkItem {
  readonly attrs: Record<string, string>;
}

/** Every element whose `aria-roledescription` is `role` (e.g. "line mark"), in document order. */
export function marks(svg: string, role: string): MarkItem[] {
  const out: MarkItem[] = [];
  for (const m of svg.matchAll(/<(path|line|text|circle)\b([^>]*)>/g)) {
    const attrs: Record<string, string> = {};
    for (const a of m[2]!.matchAll(/([\w:-]+)="([^"]*)"/g)) attrs[a[1]!] = a[2]!;
    if (attrs['aria-roledescription'] === role) out.push({ attrs });
  }
  return out;
}

/** The subpaths of an SVG path `d` of absolute M/L(/Z) commands, as point lists. */
export function subpaths(d: string): [number, number][][] {
  const out: [number, number][][] = [];
  for (const m of d.matchAll(/([ML])\s*(-?[\d.e+-]+)\s*,\s*(-?[\d.e+-]+)/g)) {
    const p: [number, number] = [Number(m[2]), Number(m[3])];
    if (m[1] === 'M' || !out.length) out.push([p]);
    else out[out.length - 1]!.push(p);
  }
  return out;
}

/** Point counts of the subpaths of every mark of `role`, per mark. */
export function runLengths(svg: string, role: string): number[][] {
  return marks(svg, role).map((m) => subpaths(m.attrs['d'] ?? '').map((s) => s.length));
}
