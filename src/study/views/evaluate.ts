/**
 * The evaluation table of Jain et al.'s mitigation study (Tables 1–4): similarity quantiles, copy
 * and memorization rates with their intervals, strict copies, alignment, Fréchet distance, time
 * per image, the margin of each method against CFG and the DTP never-switched lines — shared by
 * `memscope evaluate` and the store views (`report --store`, the dashboard), which read the table
 * the command kept in the store (`SqliteStore.putRunTable`).
 */
import { marginVerdict, type EvaluateResult, type MethodRow } from '../evaluate.ts';
import type { Verdict } from '../../analysis/verdict.ts';
import { escapeHtml, fmt, table } from '../../report/html.ts';
import type { Section } from '../../report/section.ts';

/** An evaluation result without its samples and per-sample similarities (what the store keeps). */
export type EvaluateSummary = Omit<EvaluateResult, 'samples' | 'similarities' | 'targetSimilarities'>;

/** The run table `memscope evaluate` keeps in the store: the summary and the sentence describing the setting. */
export interface EvaluateTable {
  readonly intro: string;
  readonly summary: EvaluateSummary;
}

const pct = (v: number | null): string => (v === null || Number.isNaN(v) ? '—' : `${(100 * v).toFixed(1)} %`);
const f3 = (v: number | null): string => (v === null || Number.isNaN(v) ? '—' : v.toFixed(3));
/** The alignment column in its unit: a rate in %, or a score (CLIP score, 0–100) with two decimals. */
const alignFmt = (r: EvaluateSummary, v: number | null): string => (r.alignmentUnit === 'score' ? (v === null || Number.isNaN(v) ? '—' : v.toFixed(2)) : pct(v));

/** The Markdown evaluation table (and the DTP never-switched lines) of a result. */
export function evaluateMarkdown(r: EvaluateSummary): string {
  const head = '| method | similarity p95 | similarity mean ± std | own-image similarity p95 | own-image mean ± std | memorization rate | strict copies (pixel d1/d2 < 1/3) | alignment | Fréchet distance | s / image |';
  const sep = '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|';
  const lines = r.rows.map(
    (x) =>
      `| ${x.method} | ${f3(x.similarity.p95)} | ${f3(x.similarity.mean)} ± ${f3(x.similarity.std)} | ${f3(x.targetSimilarity?.p95 ?? null)} | ${x.targetSimilarity ? `${f3(x.targetSimilarity.mean)} ± ${f3(x.targetSimilarity.std)}` : '—'} | ${x.memorization.text} | ${x.strict?.text ?? '—'} | ${alignFmt(r, x.alignment)} | ${x.frechet === null ? '—' : x.frechet.toFixed(2)} | ${x.secondsPerImage.toFixed(3)} |`,
  );
  const notes = [`memorization rate: ${r.memorization.text}; 95 % Wilson intervals at the prompt-cluster effective n`, ...marginLines(r), ...r.rows.filter((x) => x.switching).map((x) => switchingLine(r, x)), ...r.rows.filter((x) => x.gate).map((x) => x.gate!.text), ...protocolLines(r)];
  return [head, sep, ...lines, '', ...notes.map((n) => `- ${n}`)].join('\n') + '\n';
}

const signed = (v: number): string => `${v >= 0 ? '+' : '−'}${Math.abs(v).toFixed(3)}`;

/** A verdict in a few words: the word, and the n when it is below the minimum. */
const verdictWord = (v: Verdict): string => (v.n < v.minN && v.verdict === 'inconclusive' ? v.text : v.verdict);

/** One line per method: Δ p95 against CFG with its prompt-bootstrap interval. */
export function marginLines(r: EvaluateSummary): string[] {
  return r.rows
    .filter((x) => x.vsCfg)
    .map((x) => {
      const m = x.vsCfg!;
      const t = m.targetSimilarityP95;
      return (
        `${x.method} vs cfg: Δ p95 similarity ${signed(m.similarityP95.delta)} [${signed(m.similarityP95.lo)}, ${signed(m.similarityP95.hi)}]` +
        (t ? `, Δ p95 own-image similarity ${signed(t.delta)} [${signed(t.lo)}, ${signed(t.hi)}]` : '') +
        ` (95 % prompt-bootstrap intervals); lowers the p95 similarity: ${verdictWord(marginVerdict('p95 similarity', m.similarityP95))}`
      );
    });
}

/** The protocol's header line and one line per method (none without `--protocol`). */
export function protocolLines(r: EvaluateSummary): string[] {
  const p = r.protocol;
  if (p === null || p === undefined) return [];
  return [
    `protocol ${p.name} (${p.reproduces}; expects ${p.checkpoint ?? 'any SSCD checkpoint'}; ${p.aggregation})`,
    ...r.rows.filter((x) => x.protocol).map((x) => `${x.method} [${p.name}]: ${x.protocol!.text}`),
  ];
}

function switchingLine(r: EvaluateSummary, x: MethodRow): string {
  const s = x.switching!;
  return (
    `${x.method}: ${pct(s.neverFraction)} of samples never switched to λ (${s.never.count}; similarity mean ${f3(s.never.similarityMean)}, alignment ${alignFmt(r, s.never.alignment)}); ` +
    `switched ${s.switched.count} (similarity mean ${f3(s.switched.similarityMean)}, alignment ${alignFmt(r, s.switched.alignment)}, mean switch step ${s.meanSwitchStep === null ? '—' : s.meanSwitchStep.toFixed(1)})`
  );
}

/** The HTML table of a result with its margin and never-switched lines. */
export function evaluateTableHtml(r: EvaluateSummary): string {
  return [
    table(
      ['method', 'similarity p95', 'mean ± std', 'own-image p95', 'own-image mean ± std', 'copy rate', 'memorization rate', 'strict copies (pixel d1/d2 < 1/3)', 'alignment', 'Fréchet distance', 's / image'],
      r.rows.map((x) => [
        x.method,
        fmt(x.similarity.p95),
        `${fmt(x.similarity.mean)} ± ${fmt(x.similarity.std)}`,
        x.targetSimilarity ? fmt(x.targetSimilarity.p95) : '—',
        x.targetSimilarity ? `${fmt(x.targetSimilarity.mean)} ± ${fmt(x.targetSimilarity.std)}` : '—',
        x.copy.text,
        x.memorization.text,
        x.strict?.text ?? '—',
        alignFmt(r, x.alignment),
        x.frechet === null ? '—' : fmt(x.frechet),
        fmt(x.secondsPerImage),
      ]),
    ),
    ...marginLines(r).map((l) => `<p class="note">${escapeHtml(l)}</p>`),
    ...r.rows.filter((x) => x.switching).map((x) => `<p class="note">${escapeHtml(switchingLine(r, x))}</p>`),
    ...r.rows.filter((x) => x.gate).map((x) => `<p class="note">${escapeHtml(x.gate!.text)}</p>`),
    ...protocolLines(r).map((l) => `<p class="note">${escapeHtml(l)}</p>`),
  ].join('\n');
}

/** The store view of an evaluation: the table as the command reduced it (no figures; the sample grids live in the command's folder). */
export function evaluateSection(t: EvaluateTable): Section {
  return { head: [`<p>${escapeHtml(t.intro)}</p>`, evaluateTableHtml(t.summary)].join('\n'), figures: [] };
}
