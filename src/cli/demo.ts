/** `memscope demo` (= `npm start`): the main job on the embedded default, written as an HTML report. */
import { rateText } from '../analysis/verdict.ts';
import { z } from 'zod';
import { samplerFor } from './source-flags.ts';
import { commandHelp, flagDocs, SAMPLER_HELP } from './help.ts';
import { join } from 'node:path';
import { positiveInt, UsageError, samplerFlag, asInput } from './args.ts';
import { parseSeeds } from '../random/seeds.ts';
import { parseGuidance } from '../guidance/spec.ts';
import { stableDiffusionConfig } from '../schedules/config.ts';
import { demoConditions, demoFingerprint, demoStudy, scoreDemo, type DemoOutcome, type DemoSettings } from '../study/demo.ts';
import { STORE_FIELDS, STORE_SECTION, storeDirOf, openCliStore, closeCliStore, dryRunText, runStudyUnits, parseCommandFlags } from './study-run.ts';
import { checkResultsTarget, withResultsDir } from '../io/results.ts';
import { writeJsonAtomic, writeFileAtomic } from '../io/atomic.ts';
import { gridPng } from '../report/png.ts';
import { writeFigure } from '../report/figure.ts';
import { lineChart, type Series, type Marker } from '../report/line.ts';
import { page, imgTag, table, escapeHtml, fmt } from '../report/html.ts';
import type { DemoSource } from '../study/demo.ts';
import { loadStudySource, resolveModelSpec } from '../study/source.ts';
import { numel } from '../tensor/tensor.ts';

const Schema = z.object({
  out: z.string().min(1).default('out/demo').register(flagDocs, { value: 'DIR', help: 'results directory' }),
  model: z.string().min(1).default('default').register(flagDocs, {
    value: 'M',
    help: 'testbed | a trained model directory | {default} (the shipped trained graded duplication model, models/graded, when the package has one, else the analytic testbed)',
  }),
  seeds: z.string().optional().register(flagDocs, { value: 'LIST', help: 'seeds per condition (default 0-7)' }),
  memorized: z.string().default('auto').register(flagDocs, { value: 'SPEC', help: 'memorized captions; auto = 4 captions of the highest duplication count (graded: 100×), else caption:0-3' }),
  generalizing: z.string().default('class:0-3').register(flagDocs, { value: 'SPEC', help: 'class prompts' }),
  guidance: z.string().default('constant:7.5;dtp:7.5;og+dtp:7.5').register(flagDocs, { value: 'LIST', help: "';'-separated schedules" }),
  sampler: samplerFlag().default('ddim').register(flagDocs, { value: 'NAME', help: SAMPLER_HELP }),
  steps: positiveInt('steps', 1000).default(50).register(flagDocs, { value: 'N', help: 'inference steps' }),
  ...STORE_FIELDS,
});

/** The help of `memscope demo`, generated from its schema. */
export const DEMO_HELP = commandHelp(Schema, {
  title: 'memscope demo — memorized vs generalizing conditions under CFG, DTP and OG+DTP (= npm start)',
  intro: `On the shipped trained graded duplication model (default, models/graded; captions whose
image is trained on 1, 3, 10, 30 or 100 times, class prompts; the demo's memorized captions are 4
of the 100× ones) or, with --model testbed, on the analytic
testbed (memorized captions = the exact denoiser of one training image each; class prompts and the
unconditional branch = Gaussians that generalize), samples each condition with every guidance
schedule and reports which samples copy their training image, the d_t = ‖ε_c − ε_u‖² curves and
where DTP switched.`,
  usage: 'memscope demo [flags]',
  blocks: [
    { flags: ['model', 'out', 'seeds', 'memorized', 'generalizing', 'guidance', 'sampler', 'steps'] },
    STORE_SECTION,
    `Every (schedule, condition, seed) sample is a unit of the sample study in the results store (keyed
as memscope sample keys it: memscope sample with the same model, schedule, sampler, steps and seeds
reuses the demo's samples and the other way round); a rerun samples nothing.`,
    `Writes run.json (resolved spec, unit keys, store, versions), report.html, config.json, summary.json,
grid-*.png and d_t-*.svg, and prints the report's path.`,
  ],
  examples: ['memscope demo', 'memscope demo --seeds 0-15 --guidance "constant:7.5;stp:7.5@500;og+stp:7.5@500" --out out/stp'],
});

/** Parse and run `memscope demo`. */
export async function demoCommand(argv: string[]): Promise<void> {
  const { o, commandLine } = await parseCommandFlags(argv, Schema, { command: 'demo' });
  const source = await asInput('--model', () => resolveModelSpec(o.model));
  let seeds: number[];
  let guidance: string[];
  try {
    seeds = parseSeeds(o.seeds ?? '0-7', '--seeds');
    guidance = o.guidance.split(';').map((g) => parseGuidance(g).label);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const dryRun = o['dry-run'];
  if (!dryRun) await checkResultsTarget(o.out);
  const started = performance.now();
  const log = (m: string): void => void process.stderr.write(`${m}\n`);
  log(`memscope demo: loading ${o.model === 'default' ? 'the default model' : o.model} (embedded Fashion-MNIST subset)…`);
  const tb = await asInput('--model', () => loadStudySource(source));
  const sampler = samplerFor(o.sampler, stableDiffusionConfig(), o.model, log);
  const settings: DemoSettings = { memorized: o.memorized, generalizing: o.generalizing, seeds, guidance, sampler, steps: o.steps, config: stableDiffusionConfig() };
  const storeDir = storeDirOf(o.store);
  const store = await openCliStore(storeDir, dryRun);
  let outcome: DemoOutcome;
  let runJson: Awaited<ReturnType<typeof runStudyUnits>>['runJson'];
  try {
    const conds = demoUsage(() => demoConditions(tb.denoiser, o.memorized, o.generalizing));
    const spec = demoStudy.schema.parse({ model: source, memorized: o.memorized, generalizing: o.generalizing, seeds: o.seeds ?? '0-7', guidance, sampler, steps: o.steps });
    const studySource = { src: tb, conds, config: settings.config, fingerprint: await demoFingerprint(tb) };
    const units = await demoUsage(() => demoStudy.plan(spec, studySource));
    if (dryRun || store === null) {
      process.stdout.write(dryRunText('demo', spec, units, store, storeDir));
      await tb.denoiser.dispose?.();
      return;
    }
    log(`  ${tb.description} ready in ${((performance.now() - started) / 1000).toFixed(1)} s; sampling`);
    const ran = await runStudyUnits('demo', demoStudy, spec, units, studySource, store, { commandLine });
    runJson = ran.runJson;
    const sampled = await demoStudy.reduce(ran.outcome.units, store, spec);
    for (const r of sampled.runs) log(`  ${r.guidance.padEnd(14)} ${r.result.rows.length} samples in ${r.result.seconds.toFixed(1)} s`);
    outcome = await scoreDemo(tb, conds, sampled.runs);
  } finally {
    closeCliStore(store);
  }
  const seconds = (performance.now() - started) / 1000;
  await withResultsDir(
    o.out,
    async (dir) => {
      await writeDemo(dir, tb, settings, outcome, seconds);
      await writeJsonAtomic(join(dir, 'run.json'), runJson);
    },
    { command: 'demo' },
  );
  await tb.denoiser.dispose?.();
  log(`  done in ${seconds.toFixed(1)} s${ran0(runJson)}`);
  process.stdout.write(`${join(o.out, 'report.html')}\n`);
}

/** ` (n samples from the store)` when the run reused stored units. */
function ran0(r: { computed: number; reused: number }): string {
  return r.reused > 0 ? ` (${r.reused} of ${r.computed + r.reused} samples from the store)` : '';
}

/** Errors of the condition and schedule specs as usage errors naming the flag (`--memorized`, `--generalizing`, `--guidance`). */
function demoUsage<T>(f: () => T): T {
  const wrap = (e: unknown): never => {
    const m = (e as Error).message;
    throw /^(memorized|generalizing|guidance)/.test(m) ? new UsageError(m.replace(/^(memorized|generalizing|guidance)/, '--$1')) : e;
  };
  try {
    const r = f();
    return r instanceof Promise ? (r.catch(wrap) as T) : r;
  } catch (e) {
    return wrap(e);
  }
}

/** How often the demo's captions' images were trained on, as report text. */
function dupText(counts: readonly (number | null)[]): string {
  const known = [...new Set(counts.filter((c): c is number => c !== null))].sort((a, b) => a - b);
  if (known.length === 0 || known.length !== new Set(counts).size) return ', duplicated many times in training';
  return `, trained on ${known.map((k) => `${k}×`).join(' / ')} (the demo's memorized captions)`;
}

/** Write the demo's results folder: config, summary, grids, d_t charts and the report. */
async function writeDemo(dir: string, tb: DemoSource, s: DemoSettings, out: DemoOutcome, seconds: number): Promise<void> {
  const d = tb.denoiser;
  const N = s.seeds.length;
  const condLabel = (c: number | null): string => (c === null ? 'unconditional' : d.conditions[c]!.label);
  await writeJsonAtomic(join(dir, 'config.json'), {
    command: 'demo',
    model: { name: d.name, description: tb.description },
    conditions: out.conds.map((c) => (c === null ? { id: 'uncond' } : d.conditions[c])),
    seeds: s.seeds,
    guidance: s.guidance,
    sampler: s.sampler,
    steps: s.steps,
    schedulerConfig: s.config,
    copyDetection: { descriptor: 'pixel', similarity: 'cosine after subtracting the training mean image', ratioTest: 'd1/d2 < 1/3 (docs/methods.md §5.4)' },
  });
  await writeJsonAtomic(join(dir, 'summary.json'), {
    seconds,
    summary: out.summary,
    runs: out.runs.map((r) => ({ guidance: r.guidance, seconds: r.result.seconds, switchSteps: r.result.switchSteps, t: r.result.t })),
  });

  const parts: string[] = [];
  const analytic = tb.description.startsWith('the analytic');
  parts.push(`<p>${analytic ? `Analytic memorization testbed (docs/methods.md §6) on the embedded Fashion-MNIST subset (12,000 training images):
memorized captions are the exact denoiser of a single training image; class prompts and the unconditional
branch are Gaussians fitted to each class (they generalize).` : `Model: ${escapeHtml(tb.description)}, trained by memscope on the embedded Fashion-MNIST subset; each caption is tied to one training image${dupText(out.conds.flatMap((c) => (c !== null && d.conditions[c]!.kind === 'caption' ? [d.conditions[c]!.duplicates ?? null] : [])))}; class prompts cover the images of their class${tb.data?.imagePool ? ` (copies are tested against the model's ${tb.data.imagePool.length.toLocaleString('en-US')} training images)` : ''}.`} ${s.sampler.toUpperCase()}, ${s.steps} steps, seeds ${escapeHtml(s.seeds.join(', '))}.
Total ${seconds.toFixed(1)} s.</p>`);
  parts.push('<h2>Copies</h2>');
  parts.push(
    table(
      ['guidance', 'conditions', 'samples', 'nearest = own image', 'ratio test d1/d2 < 1/3', 'pixel similarity', 'median switch step', 'never switched'],
      out.summary.map((r) => [r.guidance, r.kind, r.samples, r.nearestIsTarget === null ? '—' : pct(r.nearestIsTarget), pct(r.ratioCopy), fmt(r.similarity), r.medianSwitchStep === null ? '—' : fmt(r.medianSwitchStep), r.neverSwitched === null ? '—' : pct(r.neverSwitched)]),
    ),
  );
  parts.push('<p class="note">"nearest = own image": the nearest training image (pixel L2) of a caption sample is that caption\'s training image. Pixel similarity: cosine to the nearest training image after subtracting the mean training image.</p>');
  parts.push(readingNotes(out, analytic));

  // Targets of the memorized captions.
  const capConds = out.conds.filter((c): c is number => c !== null && d.conditions[c]!.kind === 'caption');
  if (capConds.length) {
    const per = numel(tb.trainImages.dims.slice(1));
    const data = new Float32Array(capConds.length * per);
    capConds.forEach((c, i) => data.set(tb.trainImages.data.subarray(d.conditions[c]!.targets![0]! * per, (d.conditions[c]!.targets![0]! + 1) * per), i * per));
    const png = await gridPng({ dims: [capConds.length, ...tb.trainImages.dims.slice(1)], data }, { cols: capConds.length, zoom: 3 });
    await writeFileAtomic(join(dir, 'targets.png'), png);
    parts.push(`<h2>Training images of the memorized captions</h2><figure>${imgTag(png, 'targets')}<figcaption>${escapeHtml(capConds.map(condLabel).join(' · '))}</figcaption></figure>`);
  }

  parts.push('<h2>Samples</h2><p class="note">One row per condition (memorized captions first, then class prompts), one column per seed; the same seed gives the same x_T in every grid.</p><div class="grid">');
  for (const r of out.runs) {
    const png = await gridPng(r.result.samples, { cols: N, zoom: 2 });
    const name = `grid-${r.guidance.replace(/[^a-z0-9.]+/gi, '_')}.png`;
    await writeFileAtomic(join(dir, name), png);
    parts.push(`<figure>${imgTag(png, r.guidance)}<figcaption>${escapeHtml(r.guidance)}</figcaption></figure>`);
  }
  parts.push('</div>');

  parts.push('<h2>Conditional guidance magnitude d_t</h2><p class="note">Mean over seeds of d_t = ‖ε_c − ε_u‖², per condition; memorized captions solid, class prompts dashed. Vertical lines: median DTP switch timestep.</p><div class="grid">');
  for (const r of out.runs) {
    const res = r.result;
    const series: Series[] = out.conds.map((c, ci) => ({
      label: condLabel(c),
      x: res.t,
      y: res.t.map((_, st) => {
        let a = 0;
        for (let n = 0; n < N; n++) a += res.d[st]![ci * N + n]!;
        return a / N;
      }),
      dashed: !(c !== null && d.conditions[c]!.kind === 'caption'),
    }));
    const markers: Marker[] = [];
    for (const kind of ['caption', 'class'] as const) {
      const steps = res.rows.map((row, i) => [row, res.switchSteps[i]] as const).filter(([row, sw]) => sw !== null && row.cond !== null && d.conditions[row.cond]!.kind === kind).map(([, sw]) => sw!);
      if (steps.length) {
        steps.sort((a, b) => a - b);
        const med = steps[steps.length >> 1]!;
        markers.push({ x: res.t[med]!, label: `${kind} switch`, color: kind === 'caption' ? '#d62728' : '#2ca02c' });
      }
    }
    const spec = lineChart({ title: r.guidance, xLabel: 'timestep t', yLabel: 'd_t', series, markers, logY: true, reverseX: true });
    const name = `d_t-${r.guidance.replace(/[^a-z0-9.]+/gi, '_')}`;
    parts.push(`<figure>${(await writeFigure(dir, name, spec)).markup}</figure>`);
  }
  parts.push('</div>');
  parts.push(`<p class="note">Settings: <code>config.json</code>; numbers: <code>summary.json</code>.</p>`);
  await writeFileAtomic(join(dir, 'report.html'), page('memscope demo — memorization under guidance', parts.join('\n')));
}

/** What the numbers say, written from the numbers (nothing here is a fixed claim). */
function readingNotes(out: DemoOutcome, analytic: boolean): string {
  const row = (g: string, k: string) => out.summary.find((r) => r.guidance.startsWith(g) && r.kind === k);
  const notes: string[] = [];
  const cfgMem = row('constant', 'memorized caption');
  const cfgCls = row('constant', 'class prompt');
  if (cfgMem && cfgCls) {
    notes.push(`Under constant CFG, ${rateText(cfgMem.nearestIsTarget ?? 0, cfgMem.samples)} of memorized-caption samples have their own training image as nearest neighbour (${rateText(cfgMem.ratioCopy, cfgMem.samples)} pass the strict ratio test), against ${rateText(cfgCls.ratioCopy, cfgCls.samples)} ratio-test copies for class prompts (95 % Wilson intervals; seeds of one prompt are not independent, so they are optimistic).`);
  }
  for (const g of ['dtp', 'og+dtp']) {
    const m = row(g, 'memorized caption');
    if (m && m.neverSwitched !== null) {
      notes.push(`${g}: the switch to λ happened for ${rateText(1 - m.neverSwitched, m.samples)} of memorized-caption trajectories${m.medianSwitchStep === null ? '' : ` (median step ${fmt(m.medianSwitchStep)})`}; ${rateText(m.nearestIsTarget ?? 0, m.samples)} of them end nearest their own image.`);
    }
  }
  if (analytic) notes.push(`On this exact testbed ε_c − ε_u = −(D_c − D_u)/σ_t, so d_t = ‖D_c − D_u‖²/σ_t²: a memorized caption's denoiser D_c is its training image whatever x_t is, so d_t only falls when the trajectory itself approaches that image (inside the basin, under CFG) and grows as σ_t → 0 otherwise. Trajectories that are not pulled into the basin (s ≤ 0 before a switch) therefore rarely show the local minimum that Algorithm 1 waits for, and once guidance turns on, the point-mass conditional captures the sample wherever it is. Trained networks (whose conditional prediction follows x_t at low noise) behave differently; compare on a trained model.`);
  return `<h2>Reading the results</h2><ul>${notes.map((n) => `<li>${escapeHtml(n)}</li>`).join('')}</ul>`;
}

function pct(v: number): string {
  return `${(100 * v).toFixed(0)} %`;
}
