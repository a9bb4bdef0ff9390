/**
 * The results directory of a Kim study (issue 4 §3): per-prompt JSON/CSV, the figures of SPEC §3
 * as SVG + PNG, the claims table, and a self-contained `report.html`. Memorized prompts are drawn in
 * red and normal prompts in blue, as in the paper.
 */
import { join } from 'node:path';
import { writeFileAtomic, writeJsonAtomic } from '../io/atomic.ts';
import { lineChart, type Series } from '../report/line.ts';
import { scatterChart } from '../report/scatter.ts';
import { trajectoryFan } from '../report/fan.ts';
import { projectPaths } from '../analysis/pca.ts';
import { writeFigure, labelledStrip } from '../report/figure.ts';
import type { FigureSpec } from '../report/vega.ts';
import type { Section, SectionFigure } from '../report/section.ts';
import { gridPng } from '../report/png.ts';
import { page, table, imgTag, fmt, escapeHtml } from '../report/html.ts';
import { MIN_N, fisherZInterval } from '../analysis/verdict.ts';
import { kimClaims, promptStatistic, type KimClaim, type KimPromptResult, type KimStudy, type KimStats } from './kim.ts';

const MEM = '#d62728';
const NOR = '#1f77b4';

/** Mean and mean ± std across prompts of a per-step curve. */
function acrossPrompts(rs: readonly KimPromptResult[], pick: (r: KimPromptResult) => readonly number[] | undefined): { mean: number[]; lo: number[]; hi: number[] } {
  const curves = rs.map(pick).filter((c): c is readonly number[] => c !== undefined);
  const L = Math.max(0, ...curves.map((c) => c.length));
  const mean: number[] = [];
  const lo: number[] = [];
  const hi: number[] = [];
  for (let i = 0; i < L; i++) {
    const v = curves.map((c) => c[i]!).filter(Number.isFinite);
    const m = v.length ? v.reduce((a, b) => a + b, 0) / v.length : NaN;
    const sd = v.length > 1 ? Math.sqrt(v.reduce((a, b) => a + (b - m) ** 2, 0) / (v.length - 1)) : 0;
    mean.push(m);
    lo.push(m - sd);
    hi.push(m + sd);
  }
  return { mean, lo, hi };
}

const steps = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

/** Series for memorized (x = target) and normal (x = own sample) prompts at each scale. */
function groupSeries(study: KimStudy, pick: (st: KimStats) => readonly number[], opts: { memVariant?: 'known' | 'unknown'; band?: boolean } = {}): Series[] {
  const out: Series[] = [];
  const scales = study.settings.scales;
  scales.forEach((sc, j) => {
    const dashed = j < scales.length - 1;
    for (const mem of [true, false]) {
      const rs = study.results.filter((r) => r.scale === sc && r.memorized === mem);
      if (!rs.length) continue;
      const variant = mem ? (opts.memVariant ?? 'known') : 'unknown';
      const c = acrossPrompts(rs, (r) => {
        const st = variant === 'known' ? (r.known ?? r.unknown) : (r.unknown ?? r.known);
        return st ? pick(st) : undefined;
      });
      out.push({
        label: `${mem ? 'memorized' : 'normal'}, s=${sc}`,
        x: steps(c.mean.length),
        y: c.mean,
        color: mem ? MEM : NOR,
        dashed,
        ...(opts.band === false ? {} : { band: { lo: c.lo, hi: c.hi } }),
      });
    }
  });
  return out;
}

function csvCell(v: unknown): string {
  const s = typeof v === 'number' ? (Number.isFinite(v) ? String(v) : '') : String(v ?? '');
  return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

function csv(header: readonly string[], rows: readonly (readonly unknown[])[]): string {
  return [header.map(csvCell).join(','), ...rows.map((r) => r.map(csvCell).join(','))].join('\n') + '\n';
}

/** How the claims are judged (printed under the table). */
export const KIM_VERDICT_RULE = `A verdict holds only when the whole 95 % interval lies on the claim's side, does not hold only when it lies wholly on the other side, and is inconclusive otherwise or below ${MIN_N.promptMean} prompts (${MIN_N.correlation} for a correlation, ${MIN_N.proportion} per group for a flag rate); not measured when the statistic is missing.`;

/** The verdict cell of a claim: the verdict text (word, interval, n). */
export function claimVerdictText(c: KimClaim): string {
  return c.verdict.text;
}

/** The claims table as Markdown: claim, the paper's value, what was measured (with intervals and n) and the verdict. */
export function claimsMarkdown(claims: readonly KimClaim[], model: string): string {
  const cell = (t: string): string => t.replace(/\|/g, '\\|');
  const rows = claims.map((c) => `| §${c.section} | ${cell(c.claim)} | ${cell(c.paper)} | ${cell(c.measured)} | ${cell(claimVerdictText(c))} |`);
  return [
    `Claims of Kim et al. (docs/methods.md §3) on ${model}`,
    '',
    '| § | claim | paper | measured | verdict |',
    '|---|---|---|---|---|',
    ...rows,
    '',
    KIM_VERDICT_RULE,
  ].join('\n') + '\n';
}

/** Write the study's results directory (everything but `settings.json`, which the command writes). */
export async function writeKimReport(dir: string, study: KimStudy): Promise<KimClaim[]> {
  const s = study.settings;
  const figs = join(dir, 'figures');
  const claims = kimClaims(study);
  const html: string[] = [];
  const fig = async (name: string, spec: FigureSpec, caption: string): Promise<void> => {
    await writeFigure(figs, name, spec);
    html.push(`<figure><img src="figures/${escapeHtml(name)}.svg" alt="${escapeHtml(caption)}" width="520"><figcaption>${escapeHtml(caption)} (<a href="${escapeHtml('figures/' + name + '.png')}">PNG</a>)</figcaption></figure>`);
  };

  // data files
  const results = study.results;
  await writeJsonAtomic(join(dir, 'kim.json'), {
    model: study.model,
    scoreRecord: study.scoreRecord,
    extraScoreRecords: study.extraScoreRecords,
    timing: study.timing,
    correlations: study.correlations,
    firstStepK: study.firstStepK,
    claims,
    results: results.map((r) => ({ ...r, preview: undefined })),
  });
  const last = (v: readonly number[] | undefined): number => (v && v.length ? v[v.length - 1]! : NaN);
  await writeFileAtomic(
    join(dir, 'prompts.csv'),
    csv(
      ['id', 'label', 'memorized', 'target', 'scale', 'score', 'sim_train', 'sim_gen', 'flagged', ...study.extraScoreRecords.map((r) => `score_${r.descriptor.name}`), 'D_x_known', 'D_noise_known', 'D_total_known', 'D_x_unknown', 'D_noise_unknown', 'D_total_unknown', `trace_step${s.traceStep}`, 'pc1_early', 'k_first', 'cos_last', 'loss_x0_first', 'residual_rel_mean'],
      results.map((r) => {
        const st = r.known ?? r.unknown;
        return [
          r.id,
          r.label,
          r.memorized,
          r.target ?? '',
          r.scale,
          r.score.score,
          r.score.simTrain,
          r.score.simGen,
          r.score.memorized,
          ...study.extraScoreRecords.map((x) => r.extraScores[x.descriptor.name]?.score ?? NaN),
          r.known?.deviation.dX ?? NaN,
          r.known?.deviation.dNoise ?? NaN,
          r.known?.deviation.dTotal ?? NaN,
          r.unknown?.deviation.dX ?? NaN,
          r.unknown?.deviation.dNoise ?? NaN,
          r.unknown?.deviation.dTotal ?? NaN,
          promptStatistic(r, 'trace', 'unknown', s.traceStep),
          promptStatistic(r, 'pc1', 'unknown', s.traceStep),
          st?.firstStep.k ?? NaN,
          last(st?.cos.mean),
          st?.lossX0.mean[0] ?? NaN,
          st ? st.relResidual.mean.reduce((a, b) => a + b, 0) / st.relResidual.mean.length : NaN,
        ];
      }),
    ),
  );
  const fsRows = results.map((r) => {
    const st = r.known ?? r.unknown;
    const f = st?.firstStep;
    return [r.id, r.memorized, r.scale, r.known ? 'target' : 'own sample', f?.cosEpsUxT ?? NaN, f?.cosEpsCxT ?? NaN, f?.sqDistEpsUxT ?? NaN, f?.cosEpsUMinusXTNegX ?? NaN, f?.cosEpsCMinusXTNegX ?? NaN, f?.k ?? NaN];
  });
  const fsHeader = ['id', 'memorized', 'scale', 'x', 'cos(eps_u,x_T)', 'cos(eps_c,x_T)', '|eps_u-x_T|^2', 'cos(eps_u-x_T,-x)', 'cos(eps_c-x_T,-x)', 'k(T)'];
  await writeFileAtomic(join(dir, 'first-step.csv'), csv(fsHeader, fsRows));
  await writeFileAtomic(
    join(dir, 'correlations.csv'),
    csv(
      ['scale', 'statistic', 'prompts', 'pearson', 'pearson_lo', 'pearson_hi', 'pearson_fisher_lo', 'pearson_fisher_hi', 'spearman', 'spearman_lo', 'spearman_hi', 'n'],
      study.correlations.map((c) => {
        const fz = fisherZInterval(c.pearson.r, c.pearson.n);
        return [c.scale, c.statistic, c.prompts, c.pearson.r, c.pearson.lo, c.pearson.hi, fz.lo, fz.hi, c.spearman.r, c.spearman.lo, c.spearman.hi, c.pearson.n];
      }),
    ),
  );
  const claimsMd = claimsMarkdown(claims, study.model);
  await writeFileAtomic(join(dir, 'claims.md'), claimsMd);

  // figures
  html.push(`<h2>Claims (Kim et al., docs/methods.md §3)</h2>`, table(['§', 'claim', 'paper', 'measured', 'verdict'], claims.map((c) => [c.section, c.claim, c.paper, c.measured, claimVerdictText(c)])));
  html.push(`<p class="note">${escapeHtml(KIM_VERDICT_RULE)}</p>`);
  html.push(`<h2>§3.1 Loss along the trajectory</h2>`);
  await fig('loss-x0', lineChart({ title: 'L_x0(t) = ‖x̂0(t) − x‖² (mean over prompts)', xLabel: 'inference step', yLabel: 'L_x0', logY: true, series: groupSeries(study, (st) => st.lossX0.mean, { band: false }) }), 'x0-space loss along denoising; memorized prompts use their training image, normal prompts their own final sample');
  await fig('loss-eps', lineChart({ title: 'L_ε(t) = ᾱ/(1−ᾱ)·‖x̂0(t) − x‖²', xLabel: 'inference step', yLabel: 'L_ε', logY: true, series: groupSeries(study, (st) => st.lossEps.mean, { band: false }) }), 'ε-space loss along denoising');
  const fwdSeries: Series[] = [];
  s.scales.forEach((sc, j) => {
    const rs = study.results.filter((r) => r.scale === sc && r.memorized && r.forward !== null);
    if (!rs.length) return;
    const steps0 = rs[0]!.forward!.steps;
    const fw = acrossPrompts(rs, (r) => r.forward!.lossX0.mean);
    const tr = acrossPrompts(rs, (r) => steps0.map((k) => r.known!.lossX0.mean[k]!));
    const dashed = j < s.scales.length - 1;
    fwdSeries.push({ label: `trajectory, s=${sc}`, x: steps0, y: tr.mean, color: MEM, dashed });
    if (j === 0) fwdSeries.push({ label: 'forward-noised (training loss, s=1)', x: steps0, y: fw.mean, color: '#2ca02c' });
  });
  if (fwdSeries.length) {
    await fig('loss-forward', lineChart({ title: 'memorized prompts: trajectory vs forward-noised L_x0', xLabel: 'inference step', yLabel: 'L_x0', logY: true, series: fwdSeries }), 'the loss along the sampled trajectory against the literal training loss at the same noise levels (x_t drawn from the forward process of the target)');
  }
  html.push(`<h2>§3.2 Overestimation</h2>`);
  await fig('cos', lineChart({ title: 'cos(x̂0(t), x)', xLabel: 'inference step', yLabel: 'cos', series: groupSeries(study, (st) => st.cos.mean) }), 'cosine between the clean estimate and x');
  await fig('k', lineChart({ title: 'k(t) = ⟨x̂0(t), x⟩ / ‖x‖²', xLabel: 'inference step', yLabel: 'k', series: groupSeries(study, (st) => st.k.mean) }), 'scale of the clean estimate along x');
  const kMem = study.firstStepK.filter((k) => k.memorized);
  const kNor = study.firstStepK.filter((k) => !k.memorized);
  const flat = (ks: typeof kMem) => ({ x: ks.flatMap(() => [...s.kScales]), y: ks.flatMap((k) => k.k) });
  await fig(
    'k-first-step',
    scatterChart({
      title: 'k at the first step against the guidance scale s',
      xLabel: 'guidance scale s',
      yLabel: 'k(T)',
      groups: [
        { label: 'memorized', ...flat(kMem), color: MEM },
        { label: 'normal', ...flat(kNor), color: NOR },
      ],
      diagonal: { slope: 1, intercept: 0, label: 'x̂0(T) = s·x' },
    }),
    'k(T) = k_u + s(k_c − k_u) for every prompt (exact affine form; x = the target for memorized prompts, the seed’s own final sample for normal ones); the dashed line is k = s',
  );
  for (const im of study.firstStepImages) {
    const png = await labelledStrip(im.images, s.kScales.map((sc) => `s=${sc}`), { title: `x̂0(T): ${im.label} (${im.memorized ? 'memorized' : 'normal'})` });
    const name = `xhat0-first-step-${im.memorized ? 'memorized' : 'normal'}`;
    await writeFileAtomic(join(figs, `${name}.png`), png);
    html.push(`<figure>${imgTag(png, `x̂0(T) at several s for ${im.label}`)}<figcaption>x̂0(T) = x̂0_u + s·(x̂0_c − x̂0_u), seed ${s.seeds[0]}</figcaption></figure>`);
  }
  html.push(`<h2>§3.3 First-step noise diagnostics</h2>`);
  const fsMean = (mem: boolean, sc: number, k: number): number => {
    const v = fsRows.filter((r) => r[1] === mem && r[2] === sc).map((r) => r[k] as number).filter(Number.isFinite);
    return v.length ? v.reduce((a, b) => a + b, 0) / v.length : NaN;
  };
  html.push(table(['prompts', 's', ...fsHeader.slice(4)], s.scales.flatMap((sc) => [true, false].map((m) => [m ? 'memorized' : 'normal', sc, ...[4, 5, 6, 7, 8, 9].map((k) => fmt(fsMean(m, sc, k)))]))));
  html.push(`<h2>§3.4 Diversity and §3.5 update alignment</h2>`);
  await fig('trace', lineChart({ title: 'trace Cov_n[x_t] over seeds', xLabel: 'inference step', yLabel: 'trace', logY: true, series: groupSeries(study, (st) => st.trace, { band: false }) }), 'seed diversity along denoising');
  await fig('pc1', lineChart({ title: 'explained-variance ratio of PC1 of the updates Δx_t', xLabel: 'inference step', yLabel: 'PC1 ratio', series: groupSeries(study, (st) => st.pc1) }), 'alignment of the seeds’ updates');
  html.push(`<h2>§3.6 Decomposition x_t ≈ w0·x + wT·x_T</h2>`);
  for (const sc of s.scales) {
    const series: Series[] = [];
    for (const mem of [true, false]) {
      const rs = study.results.filter((r) => r.scale === sc && r.memorized === mem);
      if (!rs.length) continue;
      const st = (r: KimPromptResult) => (mem ? (r.known ?? r.unknown) : (r.unknown ?? r.known));
      const w0 = acrossPrompts(rs, (r) => st(r)?.w0.mean);
      const wT = acrossPrompts(rs, (r) => st(r)?.wT.mean);
      series.push({ label: `E[w0] ${mem ? 'memorized' : 'normal'}`, x: steps(w0.mean.length), y: w0.mean, color: mem ? MEM : NOR });
      series.push({ label: `E[wT] ${mem ? 'memorized' : 'normal'}`, x: steps(wT.mean.length), y: wT.mean, color: mem ? MEM : NOR, dashed: true });
    }
    const ab = (study.results.find((r) => r.scale === sc)?.known ?? study.results.find((r) => r.scale === sc)?.unknown)?.alphaBar ?? [];
    series.push({ label: '√ᾱ_t', x: steps(ab.length), y: ab.map((a) => Math.sqrt(a)), color: '#000000', width: 1 });
    series.push({ label: '√(1−ᾱ_t)', x: steps(ab.length), y: ab.map((a) => Math.sqrt(1 - a)), color: '#000000', dashed: true, width: 1 });
    await fig(`decomposition-s${sc}`, lineChart({ title: `w0 and wT against √ᾱ_t and √(1−ᾱ_t), s=${sc}`, xLabel: 'inference step', yLabel: 'weight', series }), `least-squares weights, s=${sc}`);
  }
  html.push(`<h2>§3.7 Deviation sums against the memorization score</h2>`);
  for (const sc of s.scales) {
    for (const name of ['D_x', 'D_noise', 'D_total']) {
      const rs = study.results.filter((r) => r.scale === sc);
      const c = study.correlations.find((k) => k.scale === sc && k.prompts === 'all' && k.statistic.startsWith(`${name} `));
      const pts = (mem: boolean) => {
        const sel = rs.filter((r) => r.memorized === mem);
        return { x: sel.map((r) => promptStatistic(r, name, 'unknown', s.traceStep)), y: sel.map((r) => r.score.score) };
      };
      await fig(
        `deviation-${name}-s${sc}`,
        scatterChart({
          title: `${name} (x = own sample) vs memorization score, s=${sc}`,
          xLabel: name,
          yLabel: 'memorization score',
          groups: [
            { label: 'memorized', ...pts(true), color: MEM },
            { label: 'normal', ...pts(false), color: NOR },
          ],
          fitLine: true,
          ...(c ? { annotation: `Pearson r = ${fmt(c.pearson.r)} [${fmt(c.pearson.lo)}, ${fmt(c.pearson.hi)}], Spearman ρ = ${fmt(c.spearman.r)}` } : {}),
        }),
        `${name} against the score, s=${sc}`,
      );
    }
  }
  html.push(
    table(
      ['s', 'statistic', 'prompts', 'Pearson r [95 % CI]', 'Spearman ρ [95 % CI]', 'n'],
      study.correlations.map((c) => [c.scale, c.statistic, c.prompts, `${fmt(c.pearson.r)} [${fmt(c.pearson.lo)}, ${fmt(c.pearson.hi)}]`, `${fmt(c.spearman.r)} [${fmt(c.spearman.lo)}, ${fmt(c.spearman.hi)}]`, c.pearson.n]),
    ),
  );
  html.push(`<h2>Trajectory fans</h2>`);
  for (const f of study.fans) {
    const proj = projectPaths(f.trajectories, f.paths, f.steps, f.d);
    const svg = trajectoryFan({
      title: `${f.label.length > 38 ? f.label.slice(0, 37) + '…' : f.label} (s=${f.scale})`,
      xLabel: `PC1 (${fmt(100 * proj.explained[0])} % of variance)`,
      yLabel: `PC2 (${fmt(100 * proj.explained[1])} %)`,
      paths: proj.points.map((p) => ({ group: f.memorized ? 'memorized' : 'normal', points: p })),
      groupColors: { memorized: MEM, normal: NOR },
    });
    const cond = study.results.find((r) => r.cond === f.cond);
    await fig(`fan-${(cond?.id ?? String(f.cond)).replace(/[^A-Za-z0-9_-]/g, '-')}`, svg, `x_t of ${f.paths} seeds on the first two principal components of the pooled trajectory`);
  }
  html.push(`<h2>Samples (first seeds, s=${Math.max(...s.scales)})</h2>`);
  const top = study.results.filter((r) => r.scale === Math.max(...s.scales));
  const k = Math.min(4, s.seeds.length);
  const imgPer = study.imageShape.reduce((a, b) => a * b, 1);
  const grid = new Float32Array(top.length * k * imgPer);
  top.forEach((r, i) => grid.set(r.preview.slice(0, k * imgPer), i * k * imgPer));
  if (top.length) {
    const png = await gridPng({ dims: [top.length * k, ...study.imageShape], data: grid }, { cols: k * 4 });
    await writeFileAtomic(join(figs, 'samples.png'), png);
    html.push(imgTag(png, 'samples'));
  }
  const t = study.timing;
  html.push(
    `<h2>Run</h2><p>${escapeHtml(study.model)}; ${s.prompts.length} prompts × ${s.seeds.length} seeds × scales ${s.scales.join(', ')}; ${s.sampler} ${s.steps} steps. ` +
      `Sampling ${fmt(t.samplingSeconds)} s, streaming analyses ${fmt(t.analysisSeconds)} s (${fmt((100 * t.analysisSeconds) / Math.max(t.samplingSeconds, 1e-9))} % of sampling), scoring ${fmt(t.scoringSeconds)} s; ${t.cachedBatches} units reused from the results store. ` +
      `Score: ${escapeHtml(study.scoreRecord.descriptor.name)} descriptor (${escapeHtml(study.scoreRecord.descriptor.preprocessing)}); ${escapeHtml(study.scoreRecord.aggregation)}; threshold ${study.scoreRecord.threshold}.` +
      study.extraScoreRecords.map((r) => ` Also scored with the ${escapeHtml(r.descriptor.name)} descriptor (${escapeHtml(r.descriptor.preprocessing)}).`).join('') +
      `</p>`,
  );
  await writeFileAtomic(join(dir, 'report.html'), page(`memscope — Kim et al. analyses on ${study.model}`, html.join('\n')));
  return claims;
}

/**
 * The Kim et al. section of the cross-study report (`memscope report --store`): the claims table
 * with its verdict rule and the loss, overestimation and diversity figures along the steps.
 */
export function kimSection(study: KimStudy): Section {
  const claims = kimClaims(study);
  const line = (name: string, caption: string, o: Parameters<typeof lineChart>[0]): SectionFigure => ({ name, caption, spec: lineChart(o), width: 520 });
  return {
    head: [
      `<h4>Claims (Kim et al., docs/methods.md §3)</h4>`,
      table(['§', 'claim', 'paper', 'measured', 'verdict'], claims.map((c) => [c.section, c.claim, c.paper, c.measured, claimVerdictText(c)])),
      `<p class="note">${escapeHtml(KIM_VERDICT_RULE)}</p>`,
    ].join('\n'),
    figures: [
      line('loss-x0', 'x0-space loss along denoising (memorized: own training image; normal: own final sample)', { title: 'L_x0(t) = ‖x̂0(t) − x‖² (mean over prompts)', xLabel: 'inference step', yLabel: 'L_x0', logY: true, series: groupSeries(study, (st) => st.lossX0.mean, { band: false }) }),
      line('cos', 'cosine between the clean estimate and x', { title: 'cos(x̂0(t), x)', xLabel: 'inference step', yLabel: 'cos', series: groupSeries(study, (st) => st.cos.mean) }),
      line('k', 'scale of the clean estimate along x', { title: 'k(t) = ⟨x̂0(t), x⟩ / ‖x‖²', xLabel: 'inference step', yLabel: 'k', series: groupSeries(study, (st) => st.k.mean) }),
      line('trace', 'seed diversity along denoising', { title: 'trace Cov_n[x_t] over seeds', xLabel: 'inference step', yLabel: 'trace', logY: true, series: groupSeries(study, (st) => st.trace, { band: false }) }),
      line('pc1', 'alignment of the seeds’ updates', { title: 'explained-variance ratio of PC1 of the updates Δx_t', xLabel: 'inference step', yLabel: 'PC1 ratio', series: groupSeries(study, (st) => st.pc1) }),
    ],
  };
}
