import { lineChart } from './src/report/line.ts';
import { renderSvg } from './src/report/vega.ts';
const o = { title: 't', xLabel: 'x', yLabel: 'y', logY: true, reverseX: true,
      series: [{ label: 'm', x: [1, 2, 3], y: [1, 10, 100], band: { lo: [-1, 5, 50], hi: [2, 20, 200] } }, { label: 'z', x: [1, 2], y: [0, 3] }] };
const svg = await renderSvg(lineChart(o));
console.log(svg.match(/aria-roledescription="(area|line) mark" d="[^"]*"/g));
console.log(svg.match(/<text[^>]*>[^<]*<\/text>/g)?.map(s=>s.replace(/<[^>]*>/g,'')).join('|'));
