/**
 * `--model EXPORT_DIR` (issue 7): every study command on a tiny Stable Diffusion export the project
 * writes itself, with a prompt set and training images on disk. Independent expectations: the
 * latents and images of `sample` and `evaluate` equal the latent pipeline's `generate` (prompt →
 * torch-seeded latents → CFG sampling on the export's scheduler → VAE decode), the target latents
 * equal `vaeEncode` of the images, the memorized flags follow the set's labels.
 */
import { mkdtempSync, mkdirSync, rmSync, writeFileSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeTinySdExport } from '../helpers/tiny-sd-export.ts';
import { loadSdExport } from '../../src/sd/export.ts';
import { generate, vaeEncode } from '../../src/sd/pipeline.ts';
import { loadSdStudySource } from '../../src/study/sd-source.ts';
import { loadImageFiles } from '../../src/data/folder.ts';
import { readNpy } from '../../src/io/npy.ts';
import { runCli } from '../helpers/cli.ts';
import type { Tensor } from '../../src/tensor/tensor.ts';
import { writeTinyMetricModels } from '../helpers/sd-fixtures.ts';
import { loadClip, clipPathsFromDir } from '../../src/metrics/clip.ts';
import { loadInceptionFeatures } from '../../src/metrics/inception.ts';
import { frechetDistance, gaussianStats } from '../../src/metrics/frechet.ts';
import { loadImageFolder } from '../../src/data/folder.ts';

let root: string;
let exportDir: string;
const CAPTIONS = ['a cat on <i>the</i> mat', 'the “cafe” sign', 'a red car', 'the cat'];

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'memscope-sdcli-'));
  exportDir = join(root, 'export');
  writeTinySdExport(exportDir, { variant: 'optimum', seed: 3 });
  mkdirSync(join(root, 'images'));
  mkdirSync(join(root, 'heldout'));
  let s = 7;
  const rnd = (): number => (s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32;
  for (let i = 0; i < 7; i++) {
    const px = Buffer.alloc(64 * 64 * 3);
    for (let k = 0; k < px.length; k++) px[k] = Math.floor(rnd() * 256);
    await sharp(px, { raw: { width: 64, height: 64, channels: 3 } }).png().toFile(i < 4 ? join(root, 'images', `img${i}.png`) : join(root, 'heldout', `h${i}.png`));
  }
  const q = (x: string): string => `"${x.replace(/"/g, '""')}"`;
  writeFileSync(join(root, 'prompts.csv'), `caption,image,label\n${CAPTIONS.map((c, i) => `${q(c)},images/img${i}.png,${['MV', 'TV', 'N', 'N'][i]}`).join('\n')}\n`);
  writeFileSync(join(root, 'urls.csv'), 'caption,url\n"a cat",https://example.com/cat.png\n');
}, 60_000);

afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('SD export as a study source', () => {
  it('maps the prompt set to conditions, targets and VAE latents', async () => {
    const src = await loadSdStudySource(exportDir, { promptSet: join(root, 'prompts.csv') });
    try {
      expect(src.denoiser.space).toBe('latent');
      expect(src.denoiser.shape).toEqual([4, 8, 8]);
      expect(src.denoiser.conditions.map((c) => c.label)).toEqual(CAPTIONS);
      // MV → verbatim and TV → template are memorized (tied to their image); N is not
      expect(src.denoiser.conditions.map((c) => c.targets ?? null)).toEqual([[0], [1], null, null]);
      expect(src.trainImages.dims).toEqual([4, 3, 64, 64]);
      expect(src.config.steps_offset).toBe(1); // the export's PNDM config, not a default
      // target latent = scaling_factor × VAE mean of the image, as vaeEncode computes it on its own
      const exp = await loadSdExport(exportDir);
      const imgs = await loadImageFiles([join(root, 'images', 'img2.png')], { size: 64 });
      const ref = await vaeEncode(exp, imgs);
      await exp.dispose();
      expect(maxAbsDiff(src.toModelSpace(2).data, ref.data)).toBeLessThan(1e-6);
      expect(() => src.toModelSpace(4)).toThrow(/out of range/);
    } finally {
      await src.denoiser.dispose?.();
    }
  });

  it('splits U-Net calls into --unet-batch rows without changing ε̂ (5 rows: 2 + 2 + 1 vs one call)', async () => {
    const small = await loadSdStudySource(exportDir, { promptSet: join(root, 'prompts.csv'), unetBatch: 2 });
    const big = await loadSdStudySource(exportDir, { promptSet: join(root, 'prompts.csv'), unetBatch: 100 });
    try {
      const xt = { dims: [5, 4, 8, 8], data: Float32Array.from({ length: 5 * 256 }, (_, i) => Math.sin(0.37 * i)) };
      const cond = [0, null, 1, 3, null];
      const level = { t: 501, alphaBar: 0.3 };
      const a = await small.denoiser.predict(xt, level, cond);
      const b = await big.denoiser.predict(xt, level, cond);
      expect(a.dims).toEqual([5, 4, 8, 8]);
      expect(maxAbsDiff(a.data, b.data)).toBeLessThan(1e-6);
      await expect(loadSdStudySource(exportDir, { promptSet: join(root, 'prompts.csv'), unetBatch: 0 })).rejects.toThrow(/--unet-batch: expected a positive integer/);
    } finally {
      await small.denoiser.dispose?.();
      await big.denoiser.dispose?.();
    }
  });

  it('gives clear errors for a missing prompt set, URL images and a bad model', async () => {
    await expect(loadSdStudySource(exportDir, {})).rejects.toThrow(/--prompt-set: required/);
    await expect(loadSdStudySource(exportDir, { promptSet: join(root, 'urls.csv') })).rejects.toThrow(/--prompt-set: prompt 0 \(id 0\) names its image by URL .*downloads nothing/);
    await expect(loadSdStudySource(join(root, 'images'), { promptSet: join(root, 'prompts.csv') })).rejects.toThrow(/--model: .* is not a Stable Diffusion ONNX export/);
    const r = await runCli(['analyze', 'kim', '--model', 'testbed', '--prompt-set', join(root, 'prompts.csv')]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/--prompt-set: only for a Stable Diffusion export/);
  });
});

describe('memscope commands with --model EXPORT_DIR', () => {
  it('sample: latents and decoded images equal the pipeline generate() for the same prompt and seeds', async () => {
    const out = join(root, 'runs', 'sample');
    const r = await runCli(['sample', '--model', exportDir, '--prompt-set', join(root, 'prompts.csv'), '--prompts', 'caption:1', '--seeds', '0-1', '--steps', '8', '--guidance', 'constant:5', '--out', out]);
    expect(r.code, r.err).toBe(0);
    const exp = await loadSdExport(exportDir);
    const { constant } = await import('../../src/guidance/schedules.ts');
    const ref = await generate(exp, { prompts: [CAPTIONS[1]!], seeds: [0, 1], steps: 8, guidance: constant(5) });
    await exp.dispose();
    const lat = await readNpy(join(out, 'samples.npy'));
    const img = await readNpy(join(out, 'images.npy'));
    expect(lat.dims).toEqual([2, 4, 8, 8]);
    expect(maxAbsDiff(lat.data, ref.latents.data)).toBeLessThan(1e-5);
    expect(img.dims).toEqual([2, 3, 64, 64]);
    // images.npy is in memscope's [−1, 1] image convention; generate() returns [0, 1]
    expect(maxAbsDiff(img.data, Array.from(ref.images.data, (v) => 2 * v - 1))).toBeLessThan(1e-5);
    const cfg = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'));
    expect(cfg.model.kind).toBe('stable-diffusion');
    expect(cfg.schedulerConfig.steps_offset).toBe(1);
    // --prompt TEXT samples a prompt without a prompt set
    const r2 = await runCli(['sample', '--model', exportDir, '--prompt', CAPTIONS[1]!, '--seeds', '0-1', '--steps', '8', '--guidance', 'constant:5', '--out', join(root, 'runs', 'sample2')]);
    expect(r2.code, r2.err).toBe(0);
    expect(maxAbsDiff((await readNpy(join(root, 'runs', 'sample2', 'samples.npy'))).data, lat.data)).toBe(0);
  }, 60_000);

  it('analyze kim, sweep, curves and detect run on the export with its labels', async () => {
    const S = ['--model', exportDir, '--prompt-set', join(root, 'prompts.csv'), '--steps', '6'];
    const k = await runCli(['analyze', 'kim', ...S, '--seeds', '0-2', '--out', join(root, 'runs', 'kim')]);
    expect(k.code, k.err).toBe(0);
    const kim = JSON.parse(readFileSync(join(root, 'runs', 'kim', 'kim.json'), 'utf8'));
    const flags = new Map<string, boolean>(kim.results.map((x: { id: string; memorized: boolean }) => [x.id, x.memorized]));
    expect([...flags.entries()].sort()).toEqual([['caption:0', true], ['caption:1', true], ['caption:2', false], ['caption:3', false]]);
    const settings = JSON.parse(readFileSync(join(root, 'runs', 'kim', 'settings.json'), 'utf8'));
    expect(settings.descriptor).toBe('pixel');
    expect(settings.config.steps_offset).toBe(1);
    const sw = await runCli(['sweep', ...S, '--prompts', 'caption:0', '--every', '3', '--out', join(root, 'runs', 'sweep')]);
    expect(sw.code, sw.err).toBe(0);
    const sweep = JSON.parse(readFileSync(join(root, 'runs', 'sweep', 'sweep.json'), 'utf8'));
    expect(sweep.variants[0].rows.map((x: { k: number }) => x.k)).toEqual([0, 3, 6]);
    const bad = await runCli(['sweep', ...S, '--prompts', 'caption:2', '--out', join(root, 'runs', 'sweep-bad')]);
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/caption:2 has no training image to copy/);
    const cu = await runCli(['curves', ...S, '--seeds', '0-1', '--out', join(root, 'runs', 'curves')]);
    expect(cu.code, cu.err).toBe(0);
    const de = await runCli(['detect', ...S, '--seeds', '0-1', '--out', join(root, 'runs', 'detect')]);
    expect(de.code, de.err).toBe(0);
    const det = JSON.parse(readFileSync(join(root, 'runs', 'detect', 'detect.json'), 'utf8'));
    expect(det.prompts.map((p: { memorized: boolean }) => p.memorized)).toEqual([true, true, false, false]);
    // Ren et al.'s attention entropy, by graph surgery on the export's attn2 softmax nodes: one finite score per prompt, −E ∈ [−ln 77, 0]
    const ren = det.detectors.find((x: { name: string }) => x.name === 'ren-entropy');
    expect(ren, JSON.stringify(det.detectors.map((x: { name: string }) => x.name))).toBeDefined();
    expect(ren.scores).toHaveLength(4);
    for (const v of ren.scores) expect(v <= 0 && v >= -Math.log(77)).toBe(true);
  }, 120_000);

  it('evaluate: needs --held-out or --threshold; its cfg samples are the pipeline images', async () => {
    const S = ['--model', exportDir, '--prompt-set', join(root, 'prompts.csv'), '--steps', '6', '--seeds', '0-1'];
    const miss = await runCli(['evaluate', ...S, '--out', join(root, 'runs', 'ev0')]);
    expect(miss.code).toBe(2);
    expect(miss.err).toMatch(/--held-out: a Stable Diffusion export needs held-out real images/);
    // Wen et al. through the export's own U-Net file (issue 19 §2): l_target 0.01 forces the 10 AdamW steps; the loss must fall
    const wen = await runCli(['evaluate', ...S, '--threshold', '0.5', '--methods', 'cfg,wen:0.01', '--out', join(root, 'runs', 'ev1')]);
    expect(wen.code, wen.err).toBe(0);
    const wenRow = JSON.parse(readFileSync(join(root, 'runs', 'ev1', 'evaluate.json'), 'utf8')).rows.find((m: { method: string }) => m.method === 'wen:0.01');
    for (const o of wenRow.details.optimisation) {
      expect(o.iterations).toBe(10);
      expect(o.lastLoss).toBeLessThan(o.firstLoss);
    }
    const out = join(root, 'runs', 'ev');
    const r = await runCli(['evaluate', ...S, '--held-out', join(root, 'heldout'), '--methods', 'cfg,og+stp', '--out', out]);
    expect(r.code, r.err).toBe(0);
    const ev = JSON.parse(readFileSync(join(out, 'evaluate.json'), 'utf8'));
    expect(ev.threshold.calibrated).toBe(true);
    expect(ev.threshold.heldOut).toBe(3);
    expect(ev.prompts.map((p: { target: number | null }) => p.target)).toEqual([0, 1]); // memorized prompts only
    const samples = await readNpy(join(out, 'samples-cfg.npy'));
    expect(samples.dims).toEqual([4, 3, 64, 64]);
    const exp = await loadSdExport(exportDir);
    const ref = await generate(exp, { prompts: [CAPTIONS[0]!, CAPTIONS[0]!, CAPTIONS[1]!, CAPTIONS[1]!], seeds: [0, 1, 0, 1], steps: 6, sampler: 'dpmpp2m' });
    await exp.dispose();
    expect(maxAbsDiff(samples.data, Array.from(ref.images.data, (v) => 2 * v - 1))).toBeLessThan(1e-5);
  }, 120_000);

  it('evaluate on an export: the memorization rate is similarity to the prompt\'s own image above the threshold, stated, and a random-weight export does not score high by chance', async () => {
    // a random-weight export memorizes nothing. Under the old rule (the nearest of the list's 4 images is the
    // prompt's own) chance alone counts 1 sample in 4 as a copy (5 of these 16 did)
    const S = ['--model', exportDir, '--prompt-set', join(root, 'prompts.csv'), '--steps', '4', '--seeds', '0-7'];
    const out = join(root, 'runs', 'ev-chance');
    const r = await runCli(['evaluate', ...S, '--held-out', join(root, 'heldout'), '--methods', 'cfg', '--out', out]);
    expect(r.code, r.err).toBe(0);
    const ev = JSON.parse(readFileSync(join(out, 'evaluate.json'), 'utf8'));
    expect(ev.poolSize).toBe(4);
    expect(ev.memorization.rule).toBe('own-similarity');
    expect(ev.memorization.thresholdSource).toBe('calibrated');
    expect(ev.memorization.adequate).toBe(false); // 3 held-out images < ⌈1/(1 − 0.99)⌉ = 100
    const row = ev.rows[0];
    const own: number[] = ev.targetSimilarities.cfg;
    const near: number[] = ev.similarities.cfg;
    expect(own).toHaveLength(16);
    // the old rule (nearest image is the own one ⇔ own similarity = nearest similarity, to float32 round-off)
    const oldRule = own.filter((v, i) => Math.abs(v - near[i]!) < 1e-4).length / 16;
    expect(oldRule).toBeGreaterThanOrEqual(0.25);
    // the new rule, counted independently from the per-sample similarities and the stated threshold
    expect(row.memorizationRate).toBeCloseTo(own.filter((v) => v > ev.memorization.threshold).length / 16, 12);
    expect(row.memorizationRate).toBeLessThanOrEqual(0.125);
    expect(row.memorizationRate).toBeLessThan(oldRule);
    expect(row.memorization.text).toMatch(/: inconclusive \(threshold from n_heldout = 3 < 100\)$/);
    const md = readFileSync(join(out, 'evaluate.md'), 'utf8');
    expect(md).toContain("memorization rate: a sample is memorized when its descriptor similarity to its prompt's own training image exceeds");
    expect(md).toContain('inconclusive (n_heldout = 3 < 100)');
  }, 180_000);

  it('evaluate and detect on a results store: --dry-run counts the units, run.json lists them, a rerun reuses every unit and gives the same numbers', async () => {
    const store = join(root, 'store-reuse');
    const S = ['--model', exportDir, '--prompt-set', join(root, 'prompts.csv'), '--steps', '4', '--seeds', '0-1', '--store', store];
    const E = ['evaluate', ...S, '--threshold', '0.5', '--methods', 'cfg,og+stp'];
    const dry = await runCli([...E, '--dry-run', '--out', join(root, 'runs', 'ev-dry')]);
    expect(dry.code, dry.err).toBe(0);
    expect(dry.out).toMatch(/units: 4 \(0 already in the store, 4 to compute\)/); // 2 memorized prompts × 2 methods
    expect(existsSync(join(root, 'runs', 'ev-dry'))).toBe(false);
    const outs = [join(root, 'runs', 'ev-store-1'), join(root, 'runs', 'ev-store-2')];
    for (const out of outs) expect((await runCli([...E, '--out', out])).code).toBe(0);
    const runs = outs.map((o) => JSON.parse(readFileSync(join(o, 'run.json'), 'utf8')));
    expect(runs.map((r) => [r.study, r.units.length, r.computed, r.reused])).toEqual([['evaluate', 4, 4, 0], ['evaluate', 4, 0, 4]]);
    expect(runs[1].units).toEqual(runs[0].units);
    const evs = outs.map((o) => JSON.parse(readFileSync(join(o, 'evaluate.json'), 'utf8')));
    expect(evs[1].similarities).toEqual(evs[0].similarities);
    expect(evs[1].rows.map((x: { memorizationRate: number }) => x.memorizationRate)).toEqual(evs[0].rows.map((x: { memorizationRate: number }) => x.memorizationRate));
    expect(readFileSync(join(outs[1]!, 'samples-cfg.npy'))).toEqual(readFileSync(join(outs[0]!, 'samples-cfg.npy')));
    const again = await runCli([...E, '--dry-run', '--out', join(root, 'runs', 'ev-dry')]);
    expect(again.out).toMatch(/units: 4 \(4 already in the store, 0 to compute\)/);
    // detect: one unit per prompt
    const dOuts = [join(root, 'runs', 'det-store-1'), join(root, 'runs', 'det-store-2')];
    for (const out of dOuts) expect((await runCli(['detect', ...S, '--out', out])).code).toBe(0);
    const dRuns = dOuts.map((o) => JSON.parse(readFileSync(join(o, 'run.json'), 'utf8')));
    const n = dRuns[0].units.length;
    expect(dRuns.map((r) => [r.study, r.computed, r.reused])).toEqual([['detect', n, 0], ['detect', 0, n]]);
    const dets = dOuts.map((o) => JSON.parse(readFileSync(join(o, 'detect.json'), 'utf8')));
    expect(dets[1].detectors.map((x: { scores: number[] }) => x.scores)).toEqual(dets[0].detectors.map((x: { scores: number[] }) => x.scores));
    // evaluate's cfg row with detect's settings (ddim, all prompts) in another store: detect reuses its CFG sampling units (one per prompt)
    const S2 = S.map((a) => (a === store ? join(root, 'store-share') : a));
    expect((await runCli(['evaluate', ...S2, '--threshold', '0.5', '--methods', 'cfg', '--sampler', 'ddim', '--prompts', 'all', '--out', join(root, 'runs', 'ev-share')])).code).toBe(0);
    const shareOut = join(root, 'runs', 'det-share');
    expect((await runCli(['detect', ...S2, '--out', shareOut])).code).toBe(0);
    const shareRun = JSON.parse(readFileSync(join(shareOut, 'run.json'), 'utf8'));
    expect([shareRun.units.length, shareRun.computed, shareRun.reused]).toEqual([n, CAPTIONS.length, CAPTIONS.length]);
    const shareDet = JSON.parse(readFileSync(join(shareOut, 'detect.json'), 'utf8'));
    expect(shareDet.detectors.map((x: { name: string; scores: number[] }) => [x.name, x.scores])).toEqual(dets[0].detectors.map((x: { name: string; scores: number[] }) => [x.name, x.scores]));
  }, 240_000);

  it('evaluate --methods cfg,ren on an export: Ren et al. by graph surgery changes the samples', async () => {
    const out = join(root, 'runs', 'ev-ren');
    const S = ['--model', exportDir, '--prompt-set', join(root, 'prompts.csv'), '--steps', '4', '--seeds', '0-1', '--threshold', '0.5'];
    const r = await runCli(['evaluate', ...S, '--methods', 'cfg,ren', '--out', out]);
    expect(r.code, r.err).toBe(0);
    const ev = JSON.parse(readFileSync(join(out, 'evaluate.json'), 'utf8'));
    const row = ev.rows.find((x: { method: string }) => x.method === 'ren:1.25');
    expect(row.details.startScale).toBe(1.25);
    expect(row.details.layers).toBe(4);
    const cfg = await readNpy(join(out, 'samples-cfg.npy'));
    const ren = await readNpy(join(out, 'samples-ren_1.25.npy'));
    expect(ren.dims).toEqual(cfg.dims);
    expect(maxAbsDiff(ren.data, cfg.data)).toBeGreaterThan(1e-4);
  }, 120_000);

  it('evaluate --clip and --inception: CLIP score and FID columns equal the extractors run on the saved samples', async () => {
    const { clipDir, inception } = writeTinyMetricModels(join(root, 'metrics'), join(exportDir, 'tokenizer'));
    const S = ['--model', exportDir, '--prompt-set', join(root, 'prompts.csv'), '--steps', '4', '--seeds', '0-1'];
    const out = join(root, 'runs', 'ev-metrics');
    const r = await runCli(['evaluate', ...S, '--held-out', join(root, 'heldout'), '--methods', 'cfg', '--clip', clipDir, '--inception', inception, '--out', out]);
    expect(r.code, r.err).toBe(0);
    const ev = JSON.parse(readFileSync(join(out, 'evaluate.json'), 'utf8'));
    expect(ev.alignmentUnit).toBe('score');
    expect(ev.alignmentName).toMatch(/CLIP score/);
    const samples = await readNpy(join(out, 'samples-cfg.npy'));
    const clip = await loadClip(clipPathsFromDir(clipDir));
    const scores = await clip.scores(samples, [CAPTIONS[0]!, CAPTIONS[0]!, CAPTIONS[1]!, CAPTIONS[1]!]);
    await clip.dispose();
    const meanScore = scores.reduce((a, b) => a + b, 0) / scores.length;
    expect(meanScore).toBeGreaterThan(1); // a real score, not the clamp's 0
    expect(ev.rows[0].alignment).toBeCloseTo(meanScore, 6);
    const inc = await loadInceptionFeatures(inception);
    const f = await inc.features(samples);
    const held = (await loadImageFolder({ dir: join(root, 'heldout'), size: 64 })).images;
    const fr = await inc.features(held);
    await inc.dispose();
    const fd = frechetDistance(gaussianStats(f.data, 4, 2), gaussianStats(fr.data, 3, 2));
    expect(ev.rows[0].frechet).toBeCloseTo(fd, 6);
    expect(readFileSync(join(out, 'evaluate.md'), 'utf8')).toContain(meanScore.toFixed(2));
    const bad = await runCli(['evaluate', ...S, '--threshold', '0.5', '--clip', join(root, 'nope'), '--out', join(root, 'runs', 'ev-bad')]);
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/--clip: /);
    const bad2 = await runCli(['evaluate', ...S, '--threshold', '0.5', '--inception-convention', 'torchvision', '--out', join(root, 'runs', 'ev-bad')]);
    expect(bad2.code).toBe(2);
    expect(bad2.err).toMatch(/--inception-convention: only with --inception/);
  }, 120_000);

  it('geometry: D* over the VAE latents of the prompt set, the held-out latents as test inputs, the U-Net up to its σ_max', async () => {
    const out = join(root, 'runs', 'geo');
    const S = ['--model', exportDir, '--prompt-set', join(root, 'prompts.csv'), '--held-out', join(root, 'heldout'), '--sigmas', '6', '--sigma-max', '40'];
    const r = await runCli(['geometry', ...S, '--out', out]);
    expect(r.code, r.err).toBe(0);
    const geo = JSON.parse(readFileSync(join(out, 'geometry.json'), 'utf8'));
    // the same study run directly on latents encoded here
    const exp = await loadSdExport(exportDir);
    const enc = async (paths: string[]): Promise<Tensor> => vaeEncode(exp, await loadImageFiles(paths, { size: 64 }));
    const train = await enc([0, 1, 2, 3].map((i) => join(root, 'images', `img${i}.png`)));
    const test = await enc([4, 5, 6].map((i) => join(root, 'heldout', `h${i}.png`)));
    await exp.dispose();
    const { runGeometry } = await import('../../src/study/geometry.ts');
    const { logSigmaGrid } = await import('../../src/analysis/geometry.ts');
    const ref = await runGeometry({ train, test, sigmas: logSigmaGrid(0.002, 40, 6), seed: 0, kappa: 3, coverageMin: 0.5, concentrationMin: 0.5, ratio: 1 / 3, models: [] });
    expect(geo.n).toBe(4);
    expect(geo.m).toBe(3);
    expect(maxAbsDiff(geo.posteriorTest.mSigma, ref.posteriorTest.mSigma)).toBeLessThan(1e-9);
    expect(maxAbsDiff(geo.coverage.coverage, ref.coverage.coverage)).toBeLessThan(1e-9);
    expect(maxAbsDiff(geo.gap.testMse, ref.gap.testMse)).toBeLessThan(1e-9);
    // SD's scaled-linear schedule ends at ᾱ_T ≈ 0.0047, σ_max = √((1 − ᾱ_T)/ᾱ_T) ≈ 14.6: the U-Net curve stops below it
    const sdCurve = geo.models.find((m: { name: string }) => m.name.startsWith('sd:'));
    expect(sdCurve.sigma.length).toBe(geo.sigma.filter((v: number) => v <= 14.62).length);
    expect(sdCurve.sigma.length).toBeLessThan(geo.sigma.length);
    const bad = await runCli(['geometry', ...S, '--compare', 'models/edm-large', '--out', join(root, 'runs', 'geo-bad')]);
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/--compare: the swap table needs memscope's trained models/);
  }, 120_000);

  it('evaluate random-word / random-number on an export: the perturbed prompts re-encoded by its text encoder give the pipeline images of the perturbed text', async () => {
    const out = join(root, 'runs', 'ev-rw');
    const S = ['--model', exportDir, '--prompt-set', join(root, 'prompts.csv'), '--steps', '4', '--seeds', '0-1', '--threshold', '0.5'];
    const r = await runCli(['evaluate', ...S, '--methods', 'cfg,random-word,random-number:2', '--out', out]);
    expect(r.code, r.err).toBe(0);
    const ev = JSON.parse(readFileSync(join(out, 'evaluate.json'), 'utf8'));
    const rw = ev.rows.find((x: { method: string }) => x.method === 'random-word');
    const perturbed: Record<string, string> = rw.details.perturbed;
    const p0 = perturbed[CAPTIONS[0]!]!;
    const p1 = perturbed[CAPTIONS[1]!]!;
    // one whole word inserted, the original words kept in order
    for (const [orig, pert] of [[CAPTIONS[0]!, p0], [CAPTIONS[1]!, p1]] as const) {
      const a = orig.split(' ');
      const b = pert.split(' ');
      expect(b.length).toBe(a.length + 1);
      expect(b.filter((w, i) => i !== b.findIndex((_, j) => a[j] !== b[j])).join(' ')).toBe(orig);
    }
    const rn = ev.rows.find((x: { method: string }) => x.method === 'random-number:2');
    for (const c of [CAPTIONS[0]!, CAPTIONS[1]!]) expect(rn.details.perturbed[c].split(' ').length).toBe(c.split(' ').length + 2);
    const samples = await readNpy(join(out, 'samples-random-word.npy'));
    const exp = await loadSdExport(exportDir);
    const ref = await generate(exp, { prompts: [p0, p0, p1, p1], seeds: [0, 1, 0, 1], steps: 4, sampler: 'dpmpp2m' });
    const plain = await generate(exp, { prompts: [CAPTIONS[0]!, CAPTIONS[0]!, CAPTIONS[1]!, CAPTIONS[1]!], seeds: [0, 1, 0, 1], steps: 4, sampler: 'dpmpp2m' });
    await exp.dispose();
    expect(maxAbsDiff(samples.data, Array.from(ref.images.data, (v) => 2 * v - 1))).toBeLessThan(1e-5);
    expect(maxAbsDiff(samples.data, Array.from(plain.images.data, (v) => 2 * v - 1))).toBeGreaterThan(1e-4); // the perturbation changed the images
  }, 120_000);

  it.each([
    ['legacy, v_prediction, SD 2.x pad "!"', { variant: 'legacy', predictionType: 'v_prediction', padToken: '!' }],
    ['optimum, fp16, float32 [B] timestep', { variant: 'optimum', dtype: 'float16', timestep: 'float32-batch' }],
  ] as const)('sample on every export kind (%s) equals generate()', async (_label, opts) => {
    const dir = join(root, `export-${opts.variant}-${'dtype' in opts ? opts.dtype : opts.predictionType}`);
    writeTinySdExport(dir, { seed: 5, ...opts });
    const out = join(root, 'runs', `sample-${opts.variant}`);
    const prompt = 'wow!! a cat on <i>the</i> mat';
    const r = await runCli(['sample', '--model', dir, '--prompt', prompt, '--seeds', '3-4', '--steps', '5', '--sampler', 'euler', '--out', out]);
    expect(r.code, r.err).toBe(0);
    const exp = await loadSdExport(dir);
    const ref = await generate(exp, { prompts: [prompt], seeds: [3, 4], steps: 5, sampler: 'euler' });
    await exp.dispose();
    expect(maxAbsDiff((await readNpy(join(out, 'samples.npy'))).data, ref.latents.data)).toBeLessThan(1e-5);
    const cfg = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'));
    expect(cfg.model.predictionType).toBe('predictionType' in opts ? opts.predictionType : 'epsilon');
  }, 60_000);

  it('--negative-prompt replaces the empty prompt as e_∅ (diffusers negative_prompt); refused on other models', async () => {
    const out = join(root, 'runs', 'sample-neg');
    const r = await runCli(['sample', '--model', exportDir, '--prompt', CAPTIONS[0]!, '--negative-prompt', 'a red car', '--seeds', '0', '--steps', '5', '--out', out]);
    expect(r.code, r.err).toBe(0);
    const exp = await loadSdExport(exportDir);
    const ref = await generate(exp, { prompts: [CAPTIONS[0]!], seeds: [0], steps: 5, negativePrompt: 'a red car' });
    const plain = await generate(exp, { prompts: [CAPTIONS[0]!], seeds: [0], steps: 5 });
    await exp.dispose();
    const lat = (await readNpy(join(out, 'samples.npy'))).data;
    expect(maxAbsDiff(lat, ref.latents.data)).toBeLessThan(1e-5);
    expect(maxAbsDiff(lat, plain.latents.data)).toBeGreaterThan(1e-4);
    for (const argv of [['sample', '--model', 'testbed', '--negative-prompt', 'x'], ['curves', '--model', 'testbed', '--negative-prompt', 'x']]) {
      const bad = await runCli([...argv, '--out', join(root, 'runs', 'neg-bad')]);
      expect(bad.code).toBe(2);
      expect(bad.err).toMatch(/--negative-prompt: only for a Stable Diffusion export/);
    }
  }, 60_000);
});
