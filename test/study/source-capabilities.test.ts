/**
 * Capabilities by loader (issue 15 §5): each source loader states what its model can do and, for
 * each missing capability, why — the analytic testbed none, a trained text model text, attention
 * and embeddingGradient, a Stable Diffusion export text and attention (no embeddingGradient), a
 * bare ONNX U-Net none. The bare-ONNX loader samples exactly what the same graph gives through the
 * trained loader; the registry error names every loader's reason.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CAPABILITIES } from '../../src/mitigate/capabilities.ts';
import { SOURCE_LOADERS, loadStudySource, type StudySource } from '../../src/study/source.ts';
import { loadCliSource } from '../../src/cli/source-flags.ts';
import { embedTexts } from '../../src/mitigate/prompt-noise.ts';
import { loadTrainedModel } from '../../src/denoisers/trained.ts';
import { writeNpy } from '../../src/io/npy.ts';
import { runSampling } from '../../src/study/sampling.ts';
import { constant } from '../../src/guidance/schedules.ts';
import { stableDiffusionConfig } from '../../src/schedules/config.ts';
import { TorchGenerator } from '../../src/random/torch.ts';
import { writeTinySdExport } from '../helpers/tiny-sd-export.ts';
import type { Tensor } from '../../src/tensor/tensor.ts';

const maxAbs = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
};

/** σ_max of SD 1.x's scaled-linear schedule computed here in float64 (β_t = (√β_0 + t·(√β_1 − √β_0)/999)²). */
function sdSigmaMax(): number {
  let ab = 1;
  for (let t = 0; t < 1000; t++) {
    const b = (Math.sqrt(0.00085) + (t * (Math.sqrt(0.012) - Math.sqrt(0.00085))) / 999) ** 2;
    ab *= 1 - b;
  }
  return Math.sqrt((1 - ab) / ab);
}

let root: string;
beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'memscope-caps-'));
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('capabilities by loader', () => {
  it('the analytic testbed: none, each with the reason; identity codec; SD 1.x schedule', async () => {
    const src = await loadStudySource('testbed');
    for (const c of CAPABILITIES) {
      expect(src.capabilities[c]).toBeUndefined();
      expect(src.capabilityReason(c)).toBe('need a trained text-conditioned model; the analytic testbed (docs/methods.md §6) has none');
    }
    expect(src.codec.kind).toBe('identity');
    expect(src.schedule.range.sigmaMax).toBeCloseTo(sdSigmaMax(), 3);
    expect(src.defaults.descriptor).toBe('learned');
    expect(src.data.heldOut?.load().dims.slice(1)).toEqual([1, 28, 28]);
  }, 120_000);

  it('a trained text model: text, attention and embeddingGradient; its attention U-Net with no adjustment is the plain U-Net', async () => {
    const src = await loadStudySource('models/duplication');
    try {
      for (const c of CAPABILITIES) expect(src.capabilityReason(c)).toBeNull();
      const { text, attention, embeddingGradient } = src.capabilities;
      expect(embeddingGradient).toBeDefined();
      expect(text!.texts).toHaveLength(src.denoiser.conditions.length);
      expect(text!.texts[0]).toBe(src.denoiser.conditions[0]!.label);
      expect(src.codec.kind).toBe('pad-crop');
      expect(src.toModelSpace(0).dims).toEqual([1, ...src.denoiser.shape]);
      // the codec: 28×28 images padded into the 32×32 model space with −1 (background), cropped back
      const two: Tensor = { dims: [2, 1, 28, 28], data: src.trainImages.data.slice(3 * 784, 5 * 784) };
      const enc = await src.codec.encode(two);
      expect(enc.dims).toEqual([2, 1, 32, 32]);
      expect(maxAbs(enc.data.subarray(1024, 2048), src.toModelSpace(4).data)).toBe(0);
      expect(enc.data[0]).toBe(-1);
      expect(enc.data[2 * 32 + 2]).toBe(two.data[0]);
      expect(maxAbs((await src.toImageSpace(enc)).data, two.data)).toBe(0);
      const att = await attention!.open();
      try {
        expect(att.layers).toHaveLength(7);
        const B = 2;
        const xt: Tensor = { dims: [B, ...src.denoiser.shape], data: new TorchGenerator(3).randn([B, ...src.denoiser.shape]) };
        const level = { t: 501, alphaBar: 0.3 };
        const plain = await src.denoiser.predict(xt, level, [4, null]);
        const out = await att.run(xt, level, [4, null]);
        expect(maxAbs(out.eps.data, plain.data)).toBeLessThan(1e-5);
      } finally {
        await att.dispose();
      }
    } finally {
      await src.denoiser.dispose?.();
    }
  }, 120_000);

  it('a tiny Stable Diffusion export: text, attention and embeddingGradient (float32); an fp16 export lacks embeddingGradient, with the reason', async () => {
    const dir = join(root, 'sd');
    writeTinySdExport(dir, { seed: 4 });
    const src = await loadStudySource(dir, { sd: { texts: ['a cat on the beach', 'photo of the dog'] } });
    try {
      expect(src.capabilityReason('text')).toBeNull();
      expect(src.capabilityReason('attention')).toBeNull();
      // Wen et al. through the export's own U-Net file (issue 19 §2): every op of the tiny U-Net has a gradient rule
      expect(src.capabilityReason('embeddingGradient')).toBeNull();
      expect(src.capabilities.embeddingGradient).toBeDefined();
      const half = join(root, 'sd-fp16');
      writeTinySdExport(half, { seed: 4, dtype: 'float16' });
      const src16 = await loadStudySource(half, { sd: { texts: ['a cat'] } });
      try {
        expect(src16.capabilityReason('embeddingGradient')).toMatch(/is a float16 U-Net \(memscope differentiates float32 U-Nets/);
      } finally {
        await src16.denoiser.dispose?.();
      }
      expect(src.capabilities.text!.texts).toEqual(['a cat on the beach', 'photo of the dog']);
      expect(src.capabilities.provider).toBe('cpu');
      expect(src.codec.kind).toBe('vae');
      expect(src.defaults.descriptor).toBe('pixel');
      expect(src.data.heldOut).toBeNull();
      const att = await src.capabilities.attention!.open();
      try {
        expect(att.tokens(1).slice(0, 4)).toEqual(['<|startoftext|>', 'photo</w>', 'of</w>', 'the</w>']);
        expect(att.layers.length).toBeGreaterThan(0);
      } finally {
        await att.dispose();
      }
    } finally {
      await src.denoiser.dispose?.();
    }
  }, 120_000);
});

describe('the bare ONNX U-Net loader', () => {
  let onnxPath: string;
  let onnxSrc: StudySource;
  beforeAll(async () => {
    // the trained model's own U-Net graph and its prompt embeddings, as a file and two .npy files
    const tm = await loadTrainedModel('models/duplication');
    const texts = tm.prompts.slice(0, 3).map((p) => p.text);
    const emb = await embedTexts(tm, [...texts, '']);
    const per = emb.data.length / 4;
    onnxPath = join(root, 'unet.onnx');
    await writeFile(onnxPath, tm.unetBytes);
    await writeNpy(join(root, 'cond.npy'), { dims: [3, ...emb.dims.slice(1)], data: emb.data.slice(0, 3 * per) });
    await writeNpy(join(root, 'uncond.npy'), { dims: [1, ...emb.dims.slice(1)], data: emb.data.slice(3 * per) });
    await tm.denoiser.dispose?.();
    onnxSrc = await loadStudySource(onnxPath, { onnx: { cond: join(root, 'cond.npy'), uncond: join(root, 'uncond.npy') } });
  }, 120_000);
  afterAll(async () => {
    await onnxSrc?.denoiser.dispose?.();
  });

  it('samples what the same graph samples through the trained loader (same seeds, same numbers)', async () => {
    const trained = await loadStudySource('models/duplication');
    try {
      const run = (src: StudySource) => runSampling({ denoiser: src.denoiser, conds: [0, 2, null], seeds: [0, 1], sampler: 'ddim', steps: 4, config: stableDiffusionConfig(), guidance: constant(7.5) });
      const a = await run(onnxSrc);
      const b = await run(trained);
      expect(a.samples.dims).toEqual(b.samples.dims);
      expect(maxAbs(a.samples.data, b.samples.data)).toBe(0);
    } finally {
      await trained.denoiser.dispose?.();
    }
  }, 120_000);

  it('has no capabilities (each with a reason), no training images; the study commands refuse it, naming --model', async () => {
    expect(onnxSrc.denoiser.conditions).toHaveLength(3);
    expect(onnxSrc.trainImages.dims[0]).toBe(0);
    expect(onnxSrc.defaults.samplePrompts).toBe('all');
    expect(onnxSrc.info).toMatchObject({ kind: 'onnx', path: onnxPath, predictionType: 'epsilon' });
    for (const c of CAPABILITIES) {
      expect(onnxSrc.capabilities[c]).toBeUndefined();
      expect(onnxSrc.capabilityReason(c)).toMatch(new RegExp(`the ONNX model ${onnxPath.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
    }
    expect(() => onnxSrc.toModelSpace(0)).toThrow(/comes without training images \(it can only sample\)/);
    await expect(loadCliSource(onnxPath, {}, { onnx: { cond: join(root, 'cond.npy'), uncond: join(root, 'uncond.npy') } })).rejects.toThrow(/^--model: the ONNX model .*unet\.onnx comes without training images, and this study measures copies of them; memscope sample runs on it/);
  }, 60_000);

  it('refuses its options on another kind of model, and other kinds\' options on it, naming the flag', async () => {
    await expect(loadStudySource('testbed', { onnx: { cond: 'c.npy' } })).rejects.toThrow(/^--cond: only for --model PATH\.onnx \(an ONNX noise-prediction model\); "testbed" is not one/);
    await expect(loadStudySource(onnxPath, { sd: { promptSet: 'p.csv' } })).rejects.toThrow(/^--prompt-set: only for a Stable Diffusion export/);
    await expect(loadStudySource(onnxPath, { testbed: { captions: 3 } })).rejects.toThrow(/^--captions: only for --model testbed/);
  });
});

describe('the registry', () => {
  it('names every registered loader with its reason when none takes the value', async () => {
    const err = await loadStudySource(join(root, 'nothing.onnx')).then(
      () => null,
      (e: Error) => e.message,
    );
    expect(err).not.toBeNull();
    expect(err).toMatch(/^--model: expected 'testbed', a trained model directory with model\.json or a Stable Diffusion ONNX export directory \(model_index\.json, unet\/, …\), diffusers pipeline folder or single-file \.safetensors checkpoint \(with --pipeline-config\) or an ONNX U-Net file \(PATH\.onnx\), got ".*nothing\.onnx"/);
    const reasons = err!.slice(err!.indexOf(' (testbed:') + 2, -1).split('; ');
    expect(reasons.map((r) => r.slice(0, r.indexOf(':')))).toEqual(SOURCE_LOADERS.map((l) => l.name));
    expect(reasons[3]).toBe(`onnx: ${join(root, 'nothing.onnx')} does not exist or is not a file`);
  });
});
