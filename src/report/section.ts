/**
 * A study's report as data: trusted HTML (assembled from escaped parts) and its figures as Vega-Lite
 * specs. A command writes it as a results folder (figures as files beside `report.html`); the
 * cross-study report (`memscope report --store`) inlines the same sections into one page.
 */
import { join } from 'node:path';
import { writeFileAtomic } from '../io/atomic.ts';
import { writeFigure } from './figure.ts';
import { renderSvg, type FigureSpec } from './vega.ts';
import { escapeHtml, page } from './html.ts';

/** One figure of a section. */
export interface SectionFigure {
  /** File stem (`d`, `roc`, …): plain, no separators. */
  readonly name: string;
  readonly spec: FigureSpec;
  /** Alt text and caption. */
  readonly caption: string;
  /** Display width in the page (default 640). */
  readonly width?: number;
}

/** A study's report: HTML blocks before and after the figures, and the figures. */
export interface Section {
  /** Trusted HTML above the figures (settings line, tables). */
  readonly head: string;
  readonly figures: readonly SectionFigure[];
  /** Trusted HTML below the figures (long tables). Default none. */
  readonly tail?: string;
}

/** `<img>` references to the figures written beside the page. */
function figureRefs(figs: readonly SectionFigure[], prefix: string): string {
  return figs.length
    ? `<div class="grid">${figs.map((f) => `<figure><img src="${escapeHtml(prefix + f.name)}.svg" width="${f.width ?? 640}" alt="${escapeHtml(f.caption)}"><figcaption>${escapeHtml(f.caption)}</figcaption></figure>`).join('')}</div>`
    : '';
}

/** Write a section's figures (`NAME.vl.json|svg|png`) into `dir` (or `dir/sub`) and its `report.html` page. */
export async function writeSection(dir: string, title: string, s: Section, opts: { figuresDir?: string } = {}): Promise<void> {
  const sub = opts.figuresDir;
  for (const f of s.figures) await writeFigure(sub === undefined ? dir : join(dir, sub), f.name, f.spec);
  const body = [s.head, figureRefs(s.figures, sub === undefined ? '' : `${sub}/`), s.tail ?? ''].filter((x) => x).join('\n');
  await writeFileAtomic(join(dir, 'report.html'), page(title, body));
}

/** A section as self-contained HTML: every figure rendered to SVG and inlined. */
export async function inlineSection(s: Section): Promise<string> {
  const figs: string[] = [];
  for (const f of s.figures) {
    const svg = await renderSvg(f.spec);
    figs.push(`<figure>${svg}<figcaption>${escapeHtml(f.caption)}</figcaption></figure>`);
  }
  return [s.head, figs.length ? `<div class="grid">${figs.join('')}</div>` : '', s.tail ?? ''].filter((x) => x).join('\n');
}
