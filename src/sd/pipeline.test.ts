/**
 * The latent text-to-image pipeline on tiny SD exports (SPEC §1, §7): end to end for both
 * exporter variants (same images), initial latents = torch draws per seed, CFG at λ = 1 / λ = 0
 * against the cond / uncond branch alone, VAE encode (mean half × scaling factor) and decode
 * shapes, and a v-prediction export end to end.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { disposeAll } from '../graph/session.ts';
import { unguided } from '../guidance/cfg.ts';
import { constant } from '../guidance/schedules.ts';
import { TorchGenerator } from '../random/torch.ts';
import { sample } from '../samplers/index.ts';
import type { Tensor } from '../tensor/tensor.ts';
import { type SdExport, encodePrompts, loadSdExport, sdUnetDenoiser } from './export.ts';
import { generate, initialLatents, vaeDecode, vaeEncode } from './pipeline.ts';
import { type TinySdTimestep, writeTinySdExport } from '../../test/helpers/tiny-sd-export.ts';

const tmp = mkdtempSync(join(tmpdir(), 'memscope-sd-pipeline-'));
let legacy: SdExport;
let optimum: SdExport;
let vpred: SdExport;

const PROMPTS = ['a photo of a cat', 'a dog'];
const SEEDS = [0, 7];
const STEPS = 4;

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

function expectImages(t: Tensor, B: number): void {
  expect(t.dims).toEqual([B, 3, 64, 64]);
  let lo = Infinity;
  let hi = -Infinity;
  let interior = 0;
  for (const v of t.data) {
    if (!Number.isFinite(v)) throw new Error(`non-finite image value ${v}`);
    lo = Math.min(lo, v);
    hi = Math.max(hi, v);
    if (v > 0 && v < 1) interior++;
  }
  expect(lo).toBeGreaterThanOrEqual(0);
  expect(hi).toBeLessThanOrEqual(1);
  // not a saturated image: most pixels lie strictly inside (0, 1)
  expect(interior).toBeGreaterThan(t.data.length / 2);
}

beforeAll(async () => {
  writeTinySdExport(join(tmp, 'legacy'), { variant: 'legacy', seed: 5, imageSize: 64 });
  writeTinySdExport(join(tmp, 'optimum'), { variant: 'optimum', seed: 5, imageSize: 64 });
  writeTinySdExport(join(tmp, 'vpred'), { variant: 'optimum', seed: 5, imageSize: 64, predictionType: 'v_prediction' });
  legacy = await loadSdExport(join(tmp, 'legacy'), { threads: 1 });
  optimum = await loadSdExport(join(tmp, 'optimum'), { threads: 1 });
  vpred = await loadSdExport(join(tmp, 'vpred'), { threads: 1 });
});
afterAll(async () => {
  await Promise.all([legacy, optimum, vpred].map((e) => e?.dispose()));
  await disposeAll();
  rmSync(tmp, { recursive: true, force: true });
});

describe('generate', () => {
  it('prompt → latents → image in both exporter variants, and the two give the same images', async () => {
    const xt0: Tensor[] = [];
    const out = [];
    for (const exp of [legacy, optimum]) {
      out.push(
        await generate(exp, {
          prompts: PROMPTS,
          seeds: SEEDS,
          steps: STEPS,
          recordX0: true,
          onStep: (e) => {
            if (e.step === 0) xt0.push(e.xt);
          },
        }),
      );
    }
    const [a, b] = out as [Awaited<ReturnType<typeof generate>>, Awaited<ReturnType<typeof generate>>];
    for (const r of out) {
      expect(r.latents.dims).toEqual([2, 4, 8, 8]);
      expectImages(r.images, 2);
      expect(r.x0Latents?.dims).toEqual([STEPS, 2, 4, 8, 8]);
    }
    expect(maxAbsDiff(a.images.data, b.images.data)).toBeLessThan(1e-5);
    expect(maxAbsDiff(a.latents.data, b.latents.data)).toBeLessThan(1e-5);
    // the sampler started from initialLatents (DDIM: init_noise_sigma = 1)
    expect(maxAbsDiff(xt0[0]!.data, initialLatents(legacy, SEEDS, { height: 64, width: 64 }).data)).toBe(0);
    // the two images differ (different prompts and seeds)
    expect(maxAbsDiff(a.images.data.subarray(0, 3 * 64 * 64), a.images.data.subarray(3 * 64 * 64))).toBeGreaterThan(1e-4);
  });

  it('CFG at λ = 1 equals the cond branch alone and λ = 0 the uncond branch alone', async () => {
    const exp = optimum;
    const cond = await encodePrompts(exp, PROMPTS);
    const uncond = await encodePrompts(exp, ['']);
    const d = sdUnetDenoiser(exp, { conditions: cond.hiddenStates, uncond: uncond.hiddenStates });
    const noise = initialLatents(exp, SEEDS, { height: 64, width: 64 });
    for (const [lambda, rows] of [
      [1, [0, 1]],
      [0, [null, null]],
    ] as const) {
      const direct = await sample('dpmpp2m', unguided(d, rows), noise, exp.scheduler, { steps: STEPS });
      const g = await generate(exp, { prompts: PROMPTS, seeds: SEEDS, steps: STEPS, sampler: 'dpmpp2m', guidance: constant(lambda) });
      expect(maxAbsDiff(g.latents.data, direct.data)).toBeLessThan(1e-4);
      expect(maxAbsDiff(g.images.data, (await vaeDecode(exp, direct)).data)).toBeLessThan(1e-4);
    }
    // and guidance matters: λ = 7.5 differs from λ = 1
    const g1 = await generate(exp, { prompts: PROMPTS, seeds: SEEDS, steps: STEPS, sampler: 'dpmpp2m', guidance: constant(1) });
    const g7 = await generate(exp, { prompts: PROMPTS, seeds: SEEDS, steps: STEPS, sampler: 'dpmpp2m' });
    expect(maxAbsDiff(g1.latents.data, g7.latents.data)).toBeGreaterThan(1e-4);
  });

  it('a v_prediction export runs end to end (euler), and differs from the epsilon export with the same weights', async () => {
    expect(vpred.predictionType).toBe('v_prediction');
    const v = await generate(vpred, { prompts: ['a cat'], seeds: [1, 2], steps: STEPS, sampler: 'euler' });
    expectImages(v.images, 2);
    const e = await generate(optimum, { prompts: ['a cat'], seeds: [1, 2], steps: STEPS, sampler: 'euler' });
    expect(maxAbsDiff(v.latents.data, e.latents.data)).toBeGreaterThan(1e-4);
  });
});

describe('the schedulers SD users run, on an export', () => {
  it('pndm (its own PLMS config) and euler-ancestral (the pipeline\'s generators go on drawing per-step noise) run end to end; a seed reproduces, another seed differs', async () => {
    const exp = optimum;
    const p1 = await generate(exp, { prompts: ['a cat'], seeds: [1], steps: STEPS, sampler: 'pndm' });
    expectImages(p1.images, 1);
    const a1 = await generate(exp, { prompts: ['a cat'], seeds: [1, 2], steps: STEPS, sampler: 'euler-ancestral' });
    const a2 = await generate(exp, { prompts: ['a cat'], seeds: [1, 2], steps: STEPS, sampler: 'euler-ancestral' });
    expect(maxAbsDiff(a1.latents.data, a2.latents.data)).toBe(0);
    // row 0 (seed 1) of the ancestral run is the same with seed 1 alone: each row draws from its own generator
    const a3 = await generate(exp, { prompts: ['a cat'], seeds: [1], steps: STEPS, sampler: 'euler-ancestral' });
    const per = a3.latents.data.length;
    expect(maxAbsDiff(a1.latents.data.subarray(0, per), a3.latents.data)).toBeLessThan(1e-5);
    const eu = await generate(exp, { prompts: ['a cat'], seeds: [1], steps: STEPS, sampler: 'euler' });
    expect(maxAbsDiff(eu.latents.data, a3.latents.data)).toBeGreaterThan(1e-3);
  });
});

describe('U-Net timestep layouts', () => {
  const LAYOUTS: ReadonlyArray<[TinySdTimestep, { type: string; layout: string }]> = [
    ['int64-batch', { type: 'int64', layout: 'batch' }],
    ['float32-batch', { type: 'float32', layout: 'batch' }],
    ['float32-one', { type: 'float32', layout: 'one' }],
    ['float32-scalar', { type: 'float32', layout: 'scalar' }],
  ];
  for (const [timestep, layout] of LAYOUTS) {
    for (const variant of ['legacy', 'optimum'] as const) {
      it(`${variant} with timestep '${timestep}': reported as ${layout.type} ${layout.layout}, and generate gives the default legacy export's images`, async () => {
        const dir = join(tmp, `ts-${variant}-${timestep}`);
        const info = writeTinySdExport(dir, { variant, seed: 5, imageSize: 64, timestep });
        expect(info.timestep).toBe(timestep);
        const exp = await loadSdExport(dir, { threads: 1 });
        try {
          expect(exp.unet.timestep).toEqual(layout);
          expect(exp.unet.timestepRank).toBe(layout.layout === 'scalar' ? 0 : 1);
          // CFG doubles the U-Net batch (4 rows): [1] and [] are broadcast to it inside the graph
          const opts = { prompts: PROMPTS, seeds: SEEDS, steps: STEPS };
          const [a, b] = [await generate(exp, opts), await generate(legacy, opts)];
          expect(maxAbsDiff(a.images.data, b.images.data)).toBeLessThan(1e-6);
          expect(maxAbsDiff(a.latents.data, b.latents.data)).toBeLessThan(1e-6);
          // fractional timesteps (euler) reach the float layouts unrounded: a float export matches the float32 default
          if (layout.type === 'float32') {
            const eu = { ...opts, sampler: 'euler' as const };
            expect(maxAbsDiff((await generate(exp, eu)).images.data, (await generate(optimum, eu)).images.data)).toBeLessThan(1e-6);
          }
        } finally {
          await exp.dispose();
        }
      });
    }
  }

  it('rejects an unknown timestep layout or dtype', () => {
    expect(() => writeTinySdExport(join(tmp, 'bad-ts'), { timestep: 'int32-batch' as TinySdTimestep })).toThrow(/timestep must be one of 'int64-batch', 'float32-scalar', 'float32-batch', 'float32-one', got 'int32-batch'/);
    expect(() => writeTinySdExport(join(tmp, 'bad-dt'), { dtype: 'bfloat16' as 'float16' })).toThrow(/dtype must be 'float32' or 'float16'/);
  });
});

describe('initialLatents', () => {
  it('row b is TorchGenerator(seeds[b]).randn([1,4,h,w]), and seeds differ', () => {
    const x = initialLatents(legacy, [3, 11, 3], { height: 64, width: 128 });
    expect(x.dims).toEqual([3, 4, 8, 16]);
    const per = 4 * 8 * 16;
    for (const [b, seed] of [3, 11, 3].entries()) {
      const ref = new TorchGenerator(seed).randn([1, 4, 8, 16]);
      expect(Array.from(x.data.subarray(b * per, (b + 1) * per))).toEqual(Array.from(ref));
    }
    expect(maxAbsDiff(x.data.subarray(0, per), x.data.subarray(per, 2 * per))).toBeGreaterThan(0.1);
    expect(() => initialLatents(legacy, [0], { height: 60, width: 64 })).toThrow(/multiples of 8/);
  });
});

describe('VAE', () => {
  const img: Tensor = (() => {
    const r = new TorchGenerator(9).randn([2, 3, 64, 64]);
    return { dims: [2, 3, 64, 64], data: r.map((v) => Math.tanh(v)) };
  })();

  it('latent_parameters: vaeEncode = scaling_factor × the first 4 channels of the raw encoder output', async () => {
    expect(optimum.vaeEncoder?.outputKind).toBe('latent_parameters');
    const raw = (await optimum.sessions.vaeEncoder!.run({ sample: img }))['latent_parameters']!;
    expect(raw.dims).toEqual([2, 8, 8, 8]);
    const x = await vaeEncode(optimum, img);
    expect(x.dims).toEqual([2, 4, 8, 8]);
    const sf = optimum.scalingFactor;
    const ref = new Float32Array(2 * 256);
    for (let b = 0; b < 2; b++) for (let i = 0; i < 256; i++) ref[b * 256 + i] = sf * raw.data[b * 512 + i]!;
    expect(maxAbsDiff(x.data, ref)).toBeLessThan(1e-7);
    // deterministic
    expect(Array.from((await vaeEncode(optimum, img)).data)).toEqual(Array.from(x.data));
  });

  it('vaeDecode(vaeEncode(x)) has the image shape and lies in [0, 1] (both variants)', async () => {
    for (const exp of [optimum, legacy]) {
      const z = await vaeEncode(exp, img);
      expect(z.dims).toEqual([2, 4, 8, 8]);
      expectImages(await vaeDecode(exp, z), 2);
    }
  });
});
