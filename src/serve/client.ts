/**
 * The dashboard's browser code (plain ES2020, no framework): draws every `.vega` element's spec
 * with vega-embed (tooltips, zoom, legend selection; no link to an online editor), and on the
 * studies page polls `/api/studies` so that the progress of running studies updates live.
 */

/** The page script served as /assets/dashboard.js. */
export const DASHBOARD_JS = `'use strict';
(function () {
  const opts = { actions: { export: true, source: false, compiled: false, editor: false }, renderer: 'svg' };
  async function draw(el) {
    const r = await fetch(el.dataset.spec);
    if (!r.ok) { el.textContent = 'figure unavailable (' + r.status + ')'; return; }
    await vegaEmbed(el, await r.json(), opts);
    el.dataset.drawn = 'true';
  }
  function drawAll() {
    return Promise.all(Array.from(document.querySelectorAll('.vega[data-spec]')).map(draw));
  }
  async function poll() {
    const body = document.querySelector('tbody[data-live]');
    if (!body) return;
    try {
      const r = await fetch('/api/studies');
      if (r.ok) {
        for (const s of await r.json()) {
          const row = body.querySelector('tr[data-run="' + s.runId + '"]');
          if (!row) continue;
          row.querySelector('.stored').textContent = s.stored + '/' + s.units;
          row.querySelector('progress').value = s.units ? s.stored / s.units : 0;
          row.querySelector('.status').textContent = s.stored >= s.units ? 'done' : 'running';
        }
      }
    } catch (e) { /* the server stopped: keep the last state */ }
    setTimeout(poll, 2000);
  }
  window.memscopeReady = drawAll().then(() => { document.body.dataset.ready = 'true'; });
  poll();
})();
`;

/** The stylesheet served as /assets/dashboard.css. */
export const DASHBOARD_CSS = `body { font-family: system-ui, sans-serif; margin: 1.5rem auto; max-width: 1300px; color: #222; line-height: 1.45; }
nav a { margin-right: 1rem; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.2rem; margin-top: 1.6rem; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.5rem 0; font-size: 0.88rem; }
th, td { border: 1px solid #ccc; padding: 0.2rem 0.5rem; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
.grid { display: flex; flex-wrap: wrap; gap: 1rem; } figure { margin: 0; }
figcaption, .note { font-size: 0.8rem; color: #555; }
.compare { display: grid; grid-template-columns: 1fr 1fr; gap: 1.5rem; } .compare > div { min-width: 0; overflow-x: auto; }
img.px { image-rendering: pixelated; }
.explorer label { margin-right: 1rem; } .explorer fieldset { margin: 0.6rem 0; } .explorer .slider input { width: 28rem; vertical-align: middle; }
.explore-out { display: flex; flex-wrap: wrap; gap: 1.5rem; align-items: flex-start; margin-top: 0.8rem; }
#sample { width: 160px; height: 160px; image-rendering: pixelated; border: 1px solid #ccc; }
`;
