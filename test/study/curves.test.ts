/**
 * Guidance-magnitude curves (Jain et al., SPEC §4.1) on a small synthetic analytic testbed: the
 * per-group mean of ‖ε_c − ε_u‖ equals √d_t averaged over that group's rows of an independent
 * sampling run, for every step and mode; as an engine study a rerun on the same store makes no
 * model call; the CLI writes run.json and refuses the old --guidance spelling.
 */
import { describe, it, expect } from 'vitest';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { curvesStudy, type CurvesSource } from '../../src/study/curves.ts';
import { InProcessRunner } from '../../src/engine/runner.ts';
import { MemoryStore } from '../../src/engine/memory-store.ts';
import { runCli } from '../helpers/cli.ts';
import { stableDiffusionConfig } from '../../src/schedules/config.ts';
import { runCurves } from '../../src/study/curves.ts';
import { runSampling } from '../../src/study/sampling.ts';
import { constant } from '../../src/guidance/schedules.ts';
import { syntheticSource } from '../helpers/synthetic.ts';
import { useTempCache } from '../helpers/cache.ts';

useTempCache('memscope-curves-');

describe('runCurves', () => {
  it('averages ‖ε_c − ε_u‖ over each group of rows, per step and mode', async () => {
    const { src } = await syntheticSource(31, [13]);
    const tb = src.denoiser;
    const prompts = [10, 3, 5];
    const seeds = [0, 1, 2];
    const r = await runCurves(src, { prompts, seeds, lambda: 2, modes: ['cfg', 'og'], sampler: 'ddim', steps: 6, config: stableDiffusionConfig(), fraction: 0.1 });
    expect(r.t).toHaveLength(6);
    for (const m of r.modes) {
      const run = await runSampling({ denoiser: tb, conds: prompts, seeds, sampler: 'ddim', steps: 6, config: stableDiffusionConfig(), guidance: constant(m.scale) });
      expect(m.memorized!.rows).toBe(3);
      expect(m.normal!.rows).toBe(6);
      for (let st = 0; st < 6; st++) {
        const mem = [0, 1, 2].map((r2) => Math.sqrt(run.d[st]![r2]!));
        const nor = [3, 4, 5, 6, 7, 8].map((r2) => Math.sqrt(run.d[st]![r2]!));
        expect(m.memorized!.diff.mean[st]).toBeCloseTo(mem.reduce((a, b) => a + b, 0) / 3, 5);
        expect(m.normal!.diff.mean[st]).toBeCloseTo(nor.reduce((a, b) => a + b, 0) / 6, 5);
      }
    }
  }, 120_000);
});

describe('curves study', () => {
  it('plans one keyed unit per mode, prompt and seed; a rerun on the same store makes no model call and gives the same curves', async () => {
    const { src } = await syntheticSource(31, [13]);
    let calls = 0;
    const counted: CurvesSource = { src: { ...src, denoiser: { ...src.denoiser, predict: (...a) => (calls++, src.denoiser.predict(...a)) } }, config: stableDiffusionConfig() };
    const spec = curvesStudy.schema.parse({ prompts: [10, 3], seeds: [0, 1], lambda: 2, modes: ['zero', 'og'], steps: 5 });
    const units = await curvesStudy.plan(spec, counted);
    expect(units.map((u) => [u.spec.mode, u.spec.cond, u.spec.seed])).toEqual(['zero', 'og'].flatMap((m) => [10, 3].flatMap((c) => [0, 1].map((sd) => [m, c, sd]))));
    expect(new Set(units.map((u) => u.key)).size).toBe(8);
    expect(new Set(units.map((u) => u.batch)).size).toBe(2);
    const other = await curvesStudy.plan({ ...spec, lambda: 3 }, counted);
    expect(other.filter((u, i) => u.key === units[i]!.key)).toHaveLength(4); // zero mode does not depend on λ
    const store = new MemoryStore();
    const first = await new InProcessRunner().run(curvesStudy, units, counted, store);
    expect(first.computed).toBe(8);
    expect(calls).toBeGreaterThan(0);
    const a = await curvesStudy.reduce(first.units, store, spec);
    calls = 0;
    const again = await new InProcessRunner().run(curvesStudy, await curvesStudy.plan(spec, counted), counted, store);
    expect([again.computed, again.reused, calls]).toEqual([0, 8, 0]);
    const b = await curvesStudy.reduce(again.units, store, spec);
    expect(JSON.stringify(b.modes)).toBe(JSON.stringify(a.modes));
    expect(b.modes.map((m) => m.scale)).toEqual([0, -2]);
  }, 120_000);
});

describe('memscope curves', () => {
  it('--guidance is refused naming --scale; --modes twice is refused', async () => {
    const r = await runCli(['curves', '--guidance', '3']);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/--guidance is now --scale/);
    const m = await runCli(['curves', '--modes', 'cfg,cfg']);
    expect(m.code).toBe(2);
    expect(m.err).toMatch(/--modes: "cfg,cfg" names a mode twice/);
  });

  it('writes run.json with the unit keys; a rerun reuses every unit; --dry-run counts them', async () => {
    const root = await mkdtemp(join(tmpdir(), 'memscope-curves-cli-'));
    try {
      const args = ['curves', '--model', 'testbed', '--prompts', 'caption:0,class:0', '--seeds', '0-1', '--steps', '4', '--scale', '3', '--store', join(root, 'store')];
      const r1 = await runCli([...args, '--out', join(root, 'a')]);
      expect(r1.code, r1.err).toBe(0);
      const run1 = JSON.parse(await readFile(join(root, 'a', 'run.json'), 'utf8'));
      expect(run1.units).toHaveLength(3 * 2 * 2);
      expect([run1.computed, run1.reused]).toEqual([12, 0]);
      const cur1 = JSON.parse(await readFile(join(root, 'a', 'curves.json'), 'utf8'));
      expect(cur1.modes.map((m: { scale: number }) => m.scale)).toEqual([0, 3, -3]);
      const dry = await runCli([...args, '--dry-run']);
      expect(dry.out).toMatch(/units: 12 \(12 already in the store, 0 to compute\)/);
      const r2 = await runCli([...args, '--out', join(root, 'b')]);
      expect(r2.code, r2.err).toBe(0);
      const run2 = JSON.parse(await readFile(join(root, 'b', 'run.json'), 'utf8'));
      expect([run2.computed, run2.reused]).toEqual([0, 12]);
      expect(run2.units).toEqual(run1.units);
      const cur2 = JSON.parse(await readFile(join(root, 'b', 'curves.json'), 'utf8'));
      expect(JSON.stringify(cur2.modes)).toBe(JSON.stringify(cur1.modes));
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  }, 120_000);
});
