/**
 * Figures as Vega-Lite specs (data inline) and their headless rendering to SVG in Node: the same
 * spec is drawn statically in every `report.html` and interactively by the dashboard (vega-embed).
 */
import { compile } from 'vega-lite';
import { parse, View } from 'vega';
import { createHash } from 'node:crypto';
import type { FigureSpec } from './spec.ts';

export { VEGA_LITE_SCHEMA, type FigureSpec } from './spec.ts';

/**
 * Render a figure to a standalone SVG string with Vega's headless SVG renderer (no browser, no
 * canvas: text widths are estimated, so the output is the same on every machine). Every text
 * from data is escaped by the renderer. The same spec gives the same bytes (`stableIds`).
 */
export async function renderSvg(spec: FigureSpec): Promise<string> {
  const vg = compile(spec).spec;
  const view = new View(parse(vg), { renderer: 'none', logLevel: 0 });
  try {
    return stableIds(await view.toSVG());
  } finally {
    view.finalize();
  }
}

/**
 * Replace Vega's process-wide clip-path counter (`clip1`, `clip9`, …) by ids derived from the
 * figure's content (`c<8 hex>-<k>`): deterministic across renders, and distinct between different
 * figures inlined in one HTML page.
 */
export function stableIds(svg: string): string {
  const ids = [...new Set([...svg.matchAll(/\bid="(clip\d+)"/g)].map((m) => m[1]!))];
  if (!ids.length) return svg;
  const tag = createHash('sha256').update(svg.replace(/clip\d+/g, 'clip')).digest('hex').slice(0, 8);
  const to = new Map(ids.map((id, k) => [id, `c${tag}-${k + 1}`]));
  return svg.replace(/\b(clip\d+)\b/g, (m) => to.get(m) ?? m);
}
