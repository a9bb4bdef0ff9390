/**
 * The transition study (Jain et al. Fig. 2) as an engine study on the shipped duplication model:
 * each unit's sweep transition equals `runSweep` run directly, its DTP switch equals Algorithm 1's
 * rule (`dtpSwitchIndex`) applied to the zero-CFG d_t it recorded, and that d_t equals an
 * independent s = 0 sampling run; a rerun on the same store computes nothing; the table and the
 * figure carry every unit; the CLI refuses bad input naming the flag.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadStudySource, type StudySource } from '../../src/study/source.ts';
import { pixelDescriptor } from '../../src/metrics/descriptor.ts';
import { transitionStudy, transitionCsv, transitionFigure, writeTransitionReport, type TransitionSource, type TransitionSummary } from '../../src/study/transition.ts';
import { InProcessRunner } from '../../src/engine/runner.ts';
import { MemoryStore } from '../../src/engine/memory-store.ts';
import { runSweep } from '../../src/study/sweep.ts';
import { runSampling } from '../../src/study/sampling.ts';
import { constant, dtpSwitchIndex } from '../../src/guidance/schedules.ts';
import { runCli } from '../helpers/cli.ts';
import { renderSvg } from '../../src/report/vega.ts';

describe('transition study', () => {
  let src: StudySource;
  let source: TransitionSource;
  let summary: TransitionSummary;
  const store = new MemoryStore();
  let spec: ReturnType<typeof transitionStudy.schema.parse>;
  let mem: number[];
  beforeAll(async () => {
    src = await loadStudySource('models/duplication');
    // two memorized captions, far apart in the list
    const all = src.denoiser.conditions.map((c, i) => (c.targets?.length ? i : -1)).filter((i) => i >= 0);
    mem = [all[0]!, all[3]!];
    spec = transitionStudy.schema.parse({ prompts: mem, seeds: [0, 1, 2], steps: 16, every: 2, threshold: 0.9 });
    source = { src, config: src.schedule.config, descriptor: pixelDescriptor() };
    const units = await transitionStudy.plan(spec, source);
    const out = await new InProcessRunner().run(transitionStudy, units, source, store);
    expect(out.computed).toBe(6);
    summary = await transitionStudy.reduce(out.units, store, spec);
  }, 240_000);
  afterAll(async () => {
    await src.denoiser.dispose?.();
  });

  it('plans one keyed unit per prompt and seed; keys follow what determines the result', async () => {
    const units = await transitionStudy.plan(spec, source);
    expect(units.map((u) => [u.spec.cond, u.spec.seed])).toEqual(mem.flatMap((c) => [0, 1, 2].map((s) => [c, s])));
    expect(new Set(units.map((u) => u.key)).size).toBe(6);
    expect((await transitionStudy.plan(spec, source)).map((u) => u.key)).toEqual(units.map((u) => u.key));
    const other = await transitionStudy.plan({ ...spec, lambda: 5 }, source);
    expect(other.some((u, i) => u.key === units[i]!.key)).toBe(false);
    expect(() => transitionStudy.plan({ ...spec, prompts: [src.denoiser.conditions.findIndex((c) => c.targets === undefined)] }, source)).toThrow(/has no training image to copy/);
  });

  it('the sweep transition of each unit is what runSweep gives for that prompt and seed', async () => {
    for (const r of summary.rows) {
      const direct = await runSweep(src, { cond: r.cond, seed: r.seed, lambda: spec.lambda, og: false, ogLambda: spec.lambda, sampler: spec.sampler, steps: spec.steps, config: source.config, every: spec.every, threshold: spec.threshold }, source.descriptor);
      const v = direct.variants[0]!;
      expect(r.sweepTransition, `${r.condId} seed ${r.seed}`).toBe(v.transition);
      expect(r.sweep.map((x) => x.k)).toEqual(v.rows.map((x) => x.k));
      expect(r.sweep.map((x) => x.similarity)).toEqual(v.rows.map((x) => x.similarity));
      expect(r.timesteps).toEqual([...direct.timesteps]);
    }
    expect(summary.rows.some((r) => r.sweepTransition !== null)).toBe(true);
  }, 240_000);

  it("the DTP switch is Algorithm 1's rule on the recorded zero-CFG d_t, which an independent s = 0 run reproduces", async () => {
    let switched = 0;
    for (const r of summary.rows) {
      const zero = await runSampling({ denoiser: src.denoiser, conds: [r.cond], seeds: [r.seed], sampler: spec.sampler, steps: spec.steps, config: source.config, guidance: constant(0) });
      expect(r.dZero).toEqual(zero.d.map((row) => row[0]!));
      expect(r.dZero).toHaveLength(spec.steps);
      expect(r.dtpSwitch, `${r.condId} seed ${r.seed}`).toBe(dtpSwitchIndex(r.dZero));
      // DTP samples with s = 0 up to its switch: its d_t there is the zero-CFG curve
      const upto = r.dtpSwitch ?? spec.steps - 1;
      for (let i = 0; i <= upto; i++) expect(r.dDtp[i]).toBeCloseTo(r.dZero[i]!, 5);
      if (r.dtpSwitch !== null) switched++;
    }
    expect(switched).toBeGreaterThan(0);
    const both = summary.rows.filter((r) => r.sweepTransition !== null && r.dtpSwitch !== null);
    const diffs = both.map((r) => r.sweepTransition! - r.dtpSwitch!);
    expect(summary.agreement.n).toBe(both.length);
    if (both.length) expect(summary.agreement.meanAbsDiff).toBeCloseTo(diffs.reduce((a, b) => a + Math.abs(b), 0) / both.length, 12);
  }, 240_000);

  it('a rerun on the same store computes nothing and gives the same summary', async () => {
    let calls = 0;
    const counted: TransitionSource = { ...source, src: { ...src, denoiser: { ...src.denoiser, predict: (...a) => (calls++, src.denoiser.predict(...a)) } } };
    const units = await transitionStudy.plan(spec, counted);
    const out = await new InProcessRunner().run(transitionStudy, units, counted, store);
    expect([out.computed, out.reused, calls]).toEqual([0, 6, 0]);
    expect(JSON.stringify(await transitionStudy.reduce(out.units, store, spec))).toBe(JSON.stringify(summary));
  });

  it('one CSV row and one curve per unit, both steps marked in the figure; report files written', async () => {
    const csv = transitionCsv(summary).trim().split('\n');
    expect(csv[0]).toBe('prompt_id,seed,target,sweep_transition_k,sweep_transition_t,dtp_switch_k,dtp_switch_t,steps');
    expect(csv).toHaveLength(1 + summary.rows.length);
    summary.rows.forEach((r, i) => {
      const f = csv[i + 1]!.split(',');
      expect(f[0]).toBe(r.condId);
      expect(Number(f[1])).toBe(r.seed);
      expect(f[3]).toBe(r.sweepTransition === null ? '' : String(r.sweepTransition));
      expect(f[5]).toBe(r.dtpSwitch === null ? '' : String(r.dtpSwitch));
      expect(f[6]).toBe(r.dtpSwitch === null ? '' : String(r.timesteps[r.dtpSwitch]));
      expect(Number(f[7])).toBe(spec.steps);
    });
    const svg = await renderSvg(transitionFigure(summary));
    for (const r of summary.rows) {
      expect(svg).toContain(`${r.condId} seed ${r.seed}`);
      if (r.dtpSwitch !== null) expect(svg).toContain(`◆ ${r.dtpSwitch}`);
      if (r.sweepTransition !== null) expect(svg).toContain(`● ${r.sweepTransition}`);
    }
    const dir = await mkdtemp(join(tmpdir(), 'memscope-transition-'));
    try {
      await writeTransitionReport(summary, dir);
      expect((await readFile(join(dir, 'transition.csv'), 'utf8')).trim().split('\n')).toEqual(csv);
      expect(JSON.parse(await readFile(join(dir, 'transition.json'), 'utf8')).rows).toHaveLength(6);
      expect((await readFile(join(dir, 'transition.png'))).subarray(1, 4).toString()).toBe('PNG');
      expect(await readFile(join(dir, 'report.html'), 'utf8')).toContain('transition.svg');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 60_000);
});

describe('memscope transition: bad input', () => {
  it.each([
    [['transition', '--guidance', '5'], /--guidance: renamed to --scale \(the guidance scale λ\); write --scale 5/],
    [['transition', '--prompts', 'class:0'], /--prompts "class:0": class:0 has no training image to copy; pick memorized prompts/],
    [['transition', '--steps', '1'], /--steps: the transition study needs at least 2 steps, got 1/],
    [['transition', '--every', '0'], /--every/],
  ])('%j exits 2 naming the flag', async (argv, re) => {
    const { code, err } = await runCli(argv);
    expect(code).toBe(2);
    expect(err).toMatch(re);
  }, 60_000);
  it('--help lists the flags and examples', async () => {
    const { code, out } = await runCli(['transition', '--help']);
    expect(code).toBe(0);
    expect(out).toMatch(/memscope transition --model models\/duplication --prompts caption:0-1 --seeds 0-3/);
    const main = await runCli(['--help']);
    expect(main.out).toMatch(/ {2}transition +per prompt and seed/);
  });
});
