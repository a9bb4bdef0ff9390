/**
 * What a figure is: a self-contained Vega-Lite spec. Types and constants only, so the chart
 * builders (line, scatter, fan) run in the browser too (the explorer draws its d_t curve with
 * `lineChart`); rendering to SVG in Node is `vega.ts`.
 */
import type { TopLevelSpec } from 'vega-lite';

/** A figure: a self-contained Vega-Lite spec (its data inline, no URL, no external resource). */
export type FigureSpec = TopLevelSpec;

/** The Vega-Lite schema URL written into every spec (informational; nothing is fetched). */
export const VEGA_LITE_SCHEMA = 'https://vega.github.io/schema/vega-lite/v5.json';
