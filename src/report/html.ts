/** Self-contained HTML reports: every text that comes from data is escaped. */

/** Escape text for HTML element content and attribute values. */
export function escapeHtml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');
}

/** A PNG as an inline `<img>` (data URI), with escaped alt text. */
export function imgTag(png: Uint8Array, alt: string, width?: number): string {
  const w = width === undefined ? '' : ` width="${width}"`;
  return `<img alt="${escapeHtml(alt)}"${w} style="image-rendering: pixelated" src="data:image/png;base64,${Buffer.from(png).toString('base64')}">`;
}

/** A simple table: header cells and rows of cells (all escaped). */
export function table(header: readonly string[], rows: readonly (readonly (string | number)[])[]): string {
  const th = header.map((h) => `<th>${escapeHtml(h)}</th>`).join('');
  const trs = rows.map((r) => `<tr>${r.map((c) => `<td>${escapeHtml(typeof c === 'number' ? fmt(c) : c)}</td>`).join('')}</tr>`).join('\n');
  return `<table><thead><tr>${th}</tr></thead><tbody>${trs}</tbody></table>`;
}

/** Format a number for tables: integers as is, others with 4 significant digits. */
export function fmt(v: number): string {
  if (Number.isNaN(v)) return '—';
  if (Number.isInteger(v)) return String(v);
  return Math.abs(v) >= 1e4 || Math.abs(v) < 1e-3 ? v.toExponential(3) : v.toPrecision(4);
}

/** A whole page: `title` is escaped; `body` is trusted HTML assembled from escaped parts. */
export function page(title: string, body: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(title)}</title>
<style>
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; color: #222; line-height: 1.45; }
h1 { font-size: 1.6rem; } h2 { font-size: 1.25rem; margin-top: 2rem; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.5rem 0; font-size: 0.9rem; }
th, td { border: 1px solid #ccc; padding: 0.2rem 0.5rem; text-align: right; }
th { background: #f3f3f3; } td:first-child, th:first-child { text-align: left; }
.grid { display: flex; flex-wrap: wrap; gap: 1rem; } .grid figure { margin: 0; }
figcaption { font-size: 0.8rem; color: #555; max-width: 360px; }
code { background: #f5f5f5; padding: 0 0.2rem; }
.note { color: #555; font-size: 0.9rem; }
</style></head><body>
<h1>${escapeHtml(title)}</h1>
${body}
</body></html>
`;
}
