/**
 * The Kim et al. study runner (issue 4): on a small synthetic analytic testbed, the replay pass
 * reproduces pass 1 exactly (deterministic sampling), the first-step k(T; s) predicted from one
 * scale's branches equals the k(T) measured in the run at another scale (SPEC §3.2, exact affine
 * form), the per-prompt score equals an independent computation, a run that fails midway resumes
 * from its finished batches with identical results, and the report directory is complete.
 */
import { cosine } from '../helpers/linalg.ts';
import { runCli } from '../helpers/cli.ts';
import { describe, it, expect, vi, afterEach } from 'vitest';
import { mkdtemp, readdir, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Denoiser } from '../../src/denoisers/denoiser.ts';
import { stableDiffusionConfig } from '../../src/schedules/config.ts';
import { runKimStudy, kimClaims, KIM_DEFAULTS, type KimSettings } from '../../src/study/kim.ts';
import { writeKimReport } from '../../src/study/kim-report.ts';
import type { StudySource } from '../../src/study/source.ts';
import { pixelDescriptor } from '../../src/metrics/descriptor.ts';
import { syntheticImages, syntheticSource, SYNTHETIC_D } from '../helpers/synthetic.ts';
import { useTempCache } from '../helpers/cache.ts';
import { MemoryStore } from '../../src/engine/memory-store.ts';

useTempCache('memscope-kim-study-');

const d = SYNTHETIC_D;
const { images } = syntheticImages(5);

async function source(failAfter?: number): Promise<StudySource> {
  let calls = 0;
  const wrap =
    failAfter === undefined
      ? undefined
      : (tb: Denoiser): Denoiser => ({
          ...tb,
          name: tb.name,
          shape: tb.shape,
          conditions: tb.conditions,
          predict: (x, l, c) => {
            if (++calls > failAfter) throw new Error('simulated crash');
            return tb.predict(x, l, c);
          },
        });
  return (await syntheticSource(5, [13, 57], wrap)).src;
}

const settings = (prompts: number[]): KimSettings => ({
  ...KIM_DEFAULTS,
  prompts,
  seeds: [0, 1, 2, 3, 4, 5],
  scales: [1, 3],
  steps: 12,
  config: stableDiffusionConfig(),
  promptsPerBatch: 2,
  fanPrompts: 1,
});

describe('runKimStudy', () => {
  it('replays identically, predicts k(T; s) across scales exactly, and scores independently', async () => {
    const src = await source();
    const caps = [10, 11];
    const s = settings([...caps, 2, 5]);
    const study = await runKimStudy(src, s, pixelDescriptor());
    expect(study.results).toHaveLength(8);
    for (const r of study.results) {
      expect(r.memorized).toBe(caps.includes(r.cond));
      expect(r.unknown).not.toBeNull();
      // the replay pass saw the same trajectories: target-free statistics agree exactly
      const st1 = r.known ?? null;
      if (st1) {
        expect(r.unknown!.trace).toEqual(st1.trace);
        expect(r.unknown!.pc1).toEqual(st1.pc1);
      }
      // target unknown: at the last step x_t·(own sample) decomposition is well defined
      expect(r.unknown!.w0.mean.every(Number.isFinite)).toBe(true);
    }
    // k(T; s=3) measured in the s=3 run equals kU + 3(kC − kU) from the s=1 run's first-step branches
    for (const c of caps) {
      const a = study.results.find((r) => r.cond === c && r.scale === 1)!.known!;
      const b = study.results.find((r) => r.cond === c && r.scale === 3)!.known!;
      const predicted = a.kU.mean[0]! + 3 * (a.kC.mean[0]! - a.kU.mean[0]!);
      expect(b.firstStep.k).toBeCloseTo(predicted, 4);
      const fk = study.firstStepK.find((k) => k.cond === c)!;
      expect(fk.k[s.kScales.indexOf(2)]).toBeCloseTo(a.kU.mean[0]! + 2 * (a.kC.mean[0]! - a.kU.mean[0]!), 10);
    }
    // the memorized caption's score with the pixel descriptor, recomputed from its preview samples (all 6 seeds)
    const r = study.results.find((x) => x.cond === 10 && x.scale === 1)!;
    expect(r.preview.length).toBe(4 * d);
    const cos = cosine;
    // s = 1 on a memorized caption of the analytic testbed returns the training image, up to the
    // last DDIM step's residual noise √(1−ᾱ_0)·ε̂ (ᾱ_0 = 0.99915: set_alpha_to_one is false)
    const target = images.slice(13 * d, 14 * d);
    const cosines = [0, 1, 2, 3].map((k) => cos(r.preview.slice(k * d, (k + 1) * d), target));
    for (const c of cosines) expect(c).toBeGreaterThan(0.99);
    expect(r.score.simTrain).toBeGreaterThan(0.99);
    // sim_train over the first 4 seeds is the mean of these cosines (pixel descriptor, no centring)
    expect(Math.abs(r.score.simTrain - cosines.reduce((a, b) => a + b, 0) / 4)).toBeLessThan(2e-3);
    expect(r.score.memorized).toBe(true);
    // forward-noised loss: a memorized caption of the analytic testbed is the empirical denoiser of
    // its one image, so x̂0 = x exactly at every level when s = 1 (closed form: L_x0 = 0)
    expect(r.forward).not.toBeNull();
    expect(r.forward!.steps).toEqual([0, 5, 10]);
    for (const v of r.forward!.lossX0.mean) expect(v).toBeLessThan(1e-6);
    expect(study.results.filter((x) => !x.memorized).every((x) => x.forward === null)).toBe(true);
    expect(study.correlations.length).toBeGreaterThan(0);
    expect(study.fans).toHaveLength(2);
    expect(study.fans[0]!.trajectories.length).toBe(6 * 13 * d);
  }, 120_000);

  it('resumes after a crash from the store without redoing finished units, with identical results; a rerun makes no model call', async () => {
    const store = new MemoryStore();
    const s = { ...settings([10, 2, 11, 5]), scales: [3], fanPrompts: 0 };
    const full = await runKimStudy(await source(), s, pixelDescriptor());
    // each batch of 2 prompts: 2 passes × 12 steps + the forward loss of its memorized prompt; crash in the second batch
    await expect(runKimStudy(await source(30), s, pixelDescriptor(), { store })).rejects.toThrow(/simulated crash/);
    const resumed = await runKimStudy(await source(), s, pixelDescriptor(), { store });
    expect(resumed.timing.cachedBatches).toBe(2); // the first batch's 2 units came from the store
    expect(resumed.results.map((r) => r.score.score)).toEqual(full.results.map((r) => r.score.score));
    expect(resumed.results.map((r) => r.known?.deviation.dTotal ?? null)).toEqual(full.results.map((r) => r.known?.deviation.dTotal ?? null));
    // a rerun of the finished study: every unit from the store, no model call
    let calls = 0;
    const counting = await source();
    const d0 = counting.denoiser;
    const again = await runKimStudy({ ...counting, denoiser: { ...d0, name: d0.name, shape: d0.shape, conditions: d0.conditions, predict: (x, l, c) => (calls++, d0.predict(x, l, c)) } }, s, pixelDescriptor(), { store });
    expect(calls).toBe(0);
    expect(again.timing.cachedBatches).toBe(4);
    expect(again.results.map((r) => r.score.score)).toEqual(full.results.map((r) => r.score.score));
  }, 120_000);

  it('writes the results directory with every figure and the claims table', async () => {
    const src = await source();
    const study = await runKimStudy(src, settings([10, 11, 2, 5]), pixelDescriptor());
    const dir = await mkdtemp(join(tmpdir(), 'memscope-kim-report-'));
    const claims = await writeKimReport(dir, study);
    expect(claims.length).toBeGreaterThan(8);
    const files = await readdir(dir);
    for (const f of ['kim.json', 'prompts.csv', 'first-step.csv', 'correlations.csv', 'claims.md', 'report.html']) expect(files).toContain(f);
    const figs = await readdir(join(dir, 'figures'));
    for (const f of ['loss-x0', 'loss-eps', 'cos', 'k', 'k-first-step', 'trace', 'pc1', 'decomposition-s3', 'deviation-D_total-s3']) {
      expect(figs).toContain(`${f}.svg`);
      expect(figs).toContain(`${f}.png`);
    }
    expect(figs.some((f) => f.startsWith('fan-'))).toBe(true);
    const csv = (await readFile(join(dir, 'prompts.csv'), 'utf8')).trim().split('\n');
    expect(csv).toHaveLength(1 + 8);
    const html = await readFile(join(dir, 'report.html'), 'utf8');
    expect(html).not.toMatch(/>NaN<|="NaN|NaN \[/);
    // 2 memorized + 2 normal prompts: far below the minimum n, so no claim may hold or fail
    for (const c of claims) expect(['inconclusive', 'not measured']).toContain(c.verdict.verdict);
    const md = await readFile(join(dir, 'claims.md'), 'utf8');
    expect(md).toContain('inconclusive (prompts = 2 < 10)');
    expect(md).toContain('inconclusive (prompts = 4 < 10)'); // the correlations over all 4 prompts
    expect(md).not.toMatch(/\| (holds|does not hold)/);
    // an unmeasured statistic reads "not measured", never "does not hold"
    const noCorr = kimClaims({ ...study, correlations: [] });
    for (const c of noCorr.filter((x) => x.section === '3.7' || x.section === '3.4')) {
      expect(c.verdict.verdict).toBe('not measured');
      expect(c.verdict.text).toMatch(/^not measured/);
    }
    // the same study with a constructed correlation: judged by its Fisher-z interval, with its n
    const corr = (r: number, n: number) => study.correlations.map((c) => ({ ...c, pearson: { ...c.pearson, r, n } }));
    const d37 = (r: number, n: number) => kimClaims({ ...study, correlations: corr(r, n) }).filter((c) => c.section === '3.7').map((c) => c.verdict.verdict);
    expect(d37(0.95, 30)).toEqual(['holds', 'holds', 'holds']); // Fisher z: [0.896, 0.976] > 0.7
    expect(d37(0.8, 30)).toEqual(['inconclusive', 'inconclusive', 'inconclusive']); // [0.617, 0.901] straddles 0.7
    expect(d37(0.1, 30)).toEqual(['does not hold', 'does not hold', 'does not hold']); // [−0.27, 0.45] < 0.7
    expect(d37(0.996, 9)).toEqual(['inconclusive', 'inconclusive', 'inconclusive']); // below 10 prompts
  }, 120_000);
});

describe('memscope analyze: bad input', () => {
  afterEach(() => vi.restoreAllMocks());
  const run = runCli;
  it.each([
    [['analyze'], /expected a suite name: kim/],
    [['analyze', 'kimm'], /expected a suite name: kim \(got "kimm"\)/],
    [['analyze', 'kim', '--scales', '1,x'], /--scales: expected comma-separated numbers/],
    [['analyze', 'kim', '--model', '/nonexistent/model'], /--model: expected 'testbed', a trained model directory with model.json or a Stable Diffusion ONNX export directory/],
    [['analyze', 'kim', '--model', 'testbed', '--prompts', 'caption:99'], /--prompts.*no condition caption:99/],
    [['analyze', 'kim', '--model', 'testbed', '--prompts', 'uncond'], /--prompts: uncond has no prompt/],
    [['analyze', 'kim', '--model', 'testbed', '--descriptor', 'sscd:/nope.onnx'], /--descriptor/],
  ])('%j exits 2 naming the argument', async (argv, re) => {
    const r = await run(argv);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(re);
  }, 60_000);
});
