/**
 * `memscope geometry` on the results store: the per-σ curves are units (D* with D_lin; one per added
 * model), so `--dry-run` counts them, a rerun computes nothing and rewrites the same files (timing
 * included: it is stored with the units), a new regime threshold recomputes nothing, and the
 * numbers equal `runGeometry` run directly on the same data.
 */
import { describe, it, expect } from 'vitest';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from '../helpers/cli.ts';
import { loadFashionMnist } from '../../src/data/fashion-mnist.ts';
import { takeRows } from '../../src/data/indices.ts';
import { denoiserFn, logSigmaGrid, regimeMap } from '../../src/analysis/geometry.ts';
import { runGeometry, paddedDenoiseFn, type GeometryResult } from '../../src/study/geometry.ts';
import { loadTrainedModel } from '../../src/denoisers/trained.ts';
import { parseSchedulerConfig } from '../../src/schedules/config.ts';
import { alphaBars, betas } from '../../src/schedules/betas.ts';
import { useTempCache } from '../helpers/cache.ts';

useTempCache('memscope-geometry-store-');

/** geometry.json's form of a result (D*'s per-image ratios and nearest images as arrays), without the timing fields. */
function untimed(r: GeometryResult | Record<string, unknown>): unknown {
  const g = r as GeometryResult;
  const asJson = ArrayBuffer.isView(g.memorization.ratio[0]) ? { ...g, memorization: { ...g.memorization, ratio: g.memorization.ratio.map((a) => Array.from(a)), nearest: g.memorization.nearest.map((a) => Array.from(a)) } } : g;
  const j = JSON.parse(JSON.stringify(asJson)) as Record<string, unknown> & { models: Record<string, unknown>[] };
  delete j['seconds'];
  for (const m of j.models) delete m['seconds'];
  return j;
}

const files = async (dir: string): Promise<string[]> => (await readdir(dir)).filter((f) => f !== 'run.json' && !f.startsWith('.')).sort();

describe('memscope geometry on the results store', () => {
  it('dry-run counts the D* unit; a rerun computes nothing and rewrites every file byte for byte; a new threshold reuses it; the numbers equal runGeometry', async () => {
    const root = await mkdtemp(join(tmpdir(), 'memscope-geometry-store-'));
    try {
      const store = join(root, 'store');
      const args = ['geometry', '--train', '40', '--test', '8', '--sigmas', '5', '--seed', '3', '--store', store];
      const dry1 = await runCli([...args, '--dry-run']);
      expect(dry1.code, dry1.err).toBe(0);
      expect(dry1.out).toMatch(/units: 1 \(0 already in the store, 1 to compute\)/);
      const a = await runCli([...args, '--out', join(root, 'a')]);
      expect(a.code, a.err).toBe(0);
      const runA = JSON.parse(await readFile(join(root, 'a', 'run.json'), 'utf8'));
      expect([runA.command, runA.study, runA.units.length, runA.computed, runA.reused]).toEqual(['geometry', 'geometry', 1, 1, 0]);
      expect(runA.spec).toMatchObject({ seed: 3, kappa: 3, train: 40, test: 8, models: [] });
      expect((await runCli([...args, '--dry-run'])).out).toMatch(/units: 1 \(1 already in the store, 0 to compute\)/);

      const b = await runCli([...args, '--out', join(root, 'b')]);
      expect(b.code, b.err).toBe(0);
      const runB = JSON.parse(await readFile(join(root, 'b', 'run.json'), 'utf8'));
      expect([runB.computed, runB.reused]).toEqual([0, 1]);
      expect(runB.units).toEqual(runA.units);
      expect(await files(join(root, 'b'))).toEqual(await files(join(root, 'a')));
      for (const f of await files(join(root, 'a'))) expect(Buffer.compare(await readFile(join(root, 'a', f)), await readFile(join(root, 'b', f))), f).toBe(0);

      // the regime thresholds are applied when reducing: another one recomputes nothing
      const c = await runCli([...args, '--coverage-min', '0.3', '--out', join(root, 'c')]);
      expect(c.code, c.err).toBe(0);
      const runC = JSON.parse(await readFile(join(root, 'c', 'run.json'), 'utf8'));
      expect([runC.computed, runC.reused]).toEqual([0, 1]);
      const gc = JSON.parse(await readFile(join(root, 'c', 'geometry.json'), 'utf8'));
      expect(gc.regimes).toEqual(JSON.parse(JSON.stringify(regimeMap(gc.sigma, gc.coverage.coverage, gc.posteriorTest.mSigma, { coverageMin: 0.3 }))));

      // the same study run directly
      const ga = JSON.parse(await readFile(join(root, 'a', 'geometry.json'), 'utf8'));
      const ref = await runGeometry({ train: loadFashionMnist({ split: 'train', limit: 40 }).images, test: loadFashionMnist({ split: 'test', limit: 8 }).images, sigmas: logSigmaGrid(0.002, 80, 5), seed: 3, kappa: 3, coverageMin: 0.5, concentrationMin: 0.5, ratio: 1 / 3 });
      expect(untimed(ga)).toEqual(untimed(ref));
      expect(ga.models.map((m: { name: string }) => m.name)).toEqual(['D_lin']);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  }, 120_000);

  it('--model: one unit per model; a rerun computes no curve and no swap row; the model curves equal runGeometry with the padded model', async () => {
    const root = await mkdtemp(join(tmpdir(), 'memscope-geometry-store-model-'));
    try {
      const store = join(root, 'store');
      const args = ['geometry', '--model', 'models/edm-small', '--test', '6', '--sigmas', '4', '--seeds', '0-1', '--steps', '3', '--band', '0.5-3', '--store', store];
      const dry = await runCli([...args, '--dry-run']);
      expect(dry.code, dry.err).toBe(0);
      expect(dry.out).toMatch(/units: 2 \(0 already in the store, 2 to compute\)/);
      const a = await runCli([...args, '--out', join(root, 'a')]);
      expect(a.code, a.err).toBe(0);
      const runA = JSON.parse(await readFile(join(root, 'a', 'run.json'), 'utf8'));
      // 2 curve units + 4 swap rows (edm-small, D_lin, the swap, … as the swap table lists them)
      const sw = JSON.parse(await readFile(join(root, 'a', 'swap.json'), 'utf8'));
      expect(runA.units).toHaveLength(2 + sw.study.rows.length);
      expect([runA.computed, runA.reused]).toEqual([runA.units.length, 0]);
      const b = await runCli([...args, '--out', join(root, 'b')]);
      expect(b.code, b.err).toBe(0);
      const runB = JSON.parse(await readFile(join(root, 'b', 'run.json'), 'utf8'));
      expect([runB.computed, runB.reused]).toEqual([0, runA.units.length]);
      expect(runB.units).toEqual(runA.units);
      for (const f of ['geometry.json', 'swap.json', 'settings.json', 'report.html', 'memorization.svg', 'memorization.vl.json']) expect(Buffer.compare(await readFile(join(root, 'a', f)), await readFile(join(root, 'b', f))), f).toBe(0);

      // report --store shows the run's regimes and the swap table the command kept in the store, row for row
      const rep = await runCli(['report', '--store', store, '--out', join(root, 'rep')]);
      expect(rep.code, rep.err).toBe(0);
      const html = await readFile(join(root, 'rep', 'report.html'), 'utf8');
      expect(html).toContain('The swap table as <code>memscope geometry</code> scored it');
      for (const row of sw.study.rows as { name: string; samples: number; rate: number }[]) expect(html).toContain(`<td>${row.name.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')}</td>`);
      expect(html).not.toContain('could not be reduced');

      // directly: D* over the model's image pool, the model through the 28 → 32 padding, σ ≤ its σ_max
      const ga = JSON.parse(await readFile(join(root, 'a', 'geometry.json'), 'utf8'));
      const tm = await loadTrainedModel('models/edm-small');
      const schedule = parseSchedulerConfig(tm.meta['schedule'] ?? {}, 'schedule');
      const full = loadFashionMnist({ split: 'train' }).images;
      const pool = tm.imagePool === 'all' ? Array.from({ length: full.dims[0]! }, (_, i) => i) : [...tm.imagePool];
      // σ of the last training timestep, √((1 − ᾱ_T)/ᾱ_T), from the schedule's own β's
      const ab = alphaBars(betas(schedule.beta_schedule, { numTrainTimesteps: schedule.num_train_timesteps, betaStart: schedule.beta_start, betaEnd: schedule.beta_end, trainedBetas: schedule.trained_betas }));
      const aT = ab[ab.length - 1]!;
      const ref = await runGeometry({
        train: takeRows(full, pool),
        test: loadFashionMnist({ split: 'test', limit: 6 }).images,
        sigmas: logSigmaGrid(0.002, 80, 4),
        seed: 0,
        models: [{ name: 'edm-small', denoise: paddedDenoiseFn(denoiserFn(tm.denoiser, { config: schedule }), { seed: 0 }), sigmaMax: Math.sqrt((1 - aT) / aT) }],
      });
      await tm.denoiser.dispose?.();
      expect(untimed(ga)).toEqual(untimed(ref));
      expect(ga.models.map((m: { name: string }) => m.name)).toEqual(['D_lin', 'edm-small']);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  }, 240_000);
});
