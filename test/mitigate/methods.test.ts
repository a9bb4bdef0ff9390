/**
 * The mitigation methods prepared on the shipped duplication model: each transform equals the
 * building block it names (the perturbed prompt through `textDenoiser`, Ren et al.'s denoiser,
 * Wen et al.'s embedding per group of four seeds); the CLI rejects bad input naming the flag.
 */
import { runCli } from '../helpers/cli.ts';
import { describe, it, expect, beforeAll, afterAll, afterEach, vi } from 'vitest';
import { loadTrainedModel, type TrainedModel } from '../../src/denoisers/trained.ts';
import { parseMethod, parseMethods, prepareMethod, perturbationSeed, WEN_GROUP, type MethodContext } from '../../src/mitigate/methods.ts';
import { scaleNotes } from '../../src/cli/evaluate.ts';
import { modelVocabulary, randomNumberInsertion, randomWordInsertion, textDenoiser } from '../../src/mitigate/prompt-noise.ts';
import { renMitigatedDenoiser } from '../../src/mitigate/ren-attention.ts';
import { trainedModelCapabilities } from '../../src/mitigate/capabilities.ts';
import { initialNoise } from '../../src/study/sampling.ts';
import type { Tensor } from '../../src/tensor/tensor.ts';

const maxAbs = (a: Tensor, b: Tensor): number => a.data.reduce((m, v, i) => Math.max(m, Math.abs(v - b.data[i]!)), 0);

describe('prepareMethod on a trained text model', () => {
  let tm: TrainedModel;
  let ctx: MethodContext;
  const level = { t: 801, alphaBar: 0.05 };
  beforeAll(async () => {
    tm = await loadTrainedModel('models/duplication');
    ctx = { denoiser: tm.denoiser, capabilities: trainedModelCapabilities(tm), classOf: (c) => (typeof tm.prompts[c]?.label === 'number' ? tm.prompts[c]!.label! : null), lambda: 7.5, conds: [2, 11, 30], noise: initialNoise(tm.denoiser.shape, [0, 1, 2, 3, 4, 5]), firstTimestep: 999 };
  }, 60_000);
  afterAll(async () => {
    await tm.denoiser.dispose?.();
  });

  it('guidance methods sample the model itself, all seeds in one part', async () => {
    for (const name of ['cfg', 'stp', 'og+dtp/2', 'interval']) {
      const p = await prepareMethod(parseMethod(name), ctx);
      expect(p.parts).toHaveLength(1);
      expect(p.parts[0]!.denoiser).toBe(tm.denoiser);
      expect(p.parts[0]!.seedIndices).toEqual([0, 1, 2, 3, 4, 5]);
      await p.dispose();
    }
  });

  it('random-word / random-number: the seeded perturbed prompt through the model, keeping the condition indices', async () => {
    const x = initialNoise(tm.denoiser.shape, [7, 8]);
    for (const name of ['random-word:2', 'random-number']) {
      const m = parseMethod(name);
      const p = await prepareMethod(m, ctx);
      const text = tm.prompts[11]!.text;
      const expected =
        m.kind === 'random-word'
          ? randomWordInsertion(text, { seed: perturbationSeed(11, 0), count: 2, vocabulary: modelVocabulary(tm) })
          : randomNumberInsertion(text, { seed: perturbationSeed(11, 0), count: 1 });
      expect((p.details['perturbed'] as Record<string, string>)[text]).toBe(expected);
      expect(expected).not.toBe(text);
      const ref = await textDenoiser(tm, [expected]);
      const ours = await p.parts[0]!.denoiser.predict(x, level, [11, null]);
      const want = await ref.predict(x, level, [0, null]);
      expect(maxAbs(ours, want)).toBeLessThan(1e-6);
      expect(p.parts[0]!.denoiser.conditions[11]!.targets).toEqual(tm.denoiser.conditions[11]!.targets);
      await ref.dispose?.();
      await p.dispose();
    }
  }, 60_000);

  it('ren: Ren et al.\'s denoiser with the given start-token scale', async () => {
    const p = await prepareMethod(parseMethod('ren:1.5'), ctx);
    const ref = await renMitigatedDenoiser(tm, { startScale: 1.5 });
    const x = initialNoise(tm.denoiser.shape, [3, 4]);
    expect(maxAbs(await p.parts[0]!.denoiser.predict(x, level, [30, null]), await ref.predict(x, level, [30, null]))).toBeLessThan(1e-6);
    await ref.dispose?.();
    await p.dispose();
  }, 60_000);

  it('wen: one optimisation per prompt and group of four seeds; an unreachable-low loss target is never met, a huge one leaves e unchanged', async () => {
    const huge = await prepareMethod(parseMethod('wen:1e9'), ctx);
    expect(huge.parts.map((q) => q.seedIndices)).toEqual([
      [0, 1, 2, 3],
      [4, 5],
    ]);
    expect(WEN_GROUP).toBe(4);
    const x = initialNoise(tm.denoiser.shape, [9, 10]);
    for (const part of huge.parts) expect(maxAbs(await part.denoiser.predict(x, level, [11, 30]), await tm.denoiser.predict(x, level, [11, 30]))).toBeLessThan(1e-6);
    expect(huge.details['meanIterations']).toBe(0);
    await huge.dispose();
    const low = await prepareMethod(parseMethod('wen:0'), { ...ctx, conds: [11] });
    const opt = low.details['optimisation'] as { iterations: number; firstLoss: number; lastLoss: number }[];
    expect(opt).toHaveLength(2);
    for (const o of opt) {
      expect(o.iterations).toBe(10);
      expect(o.lastLoss).toBeLessThan(o.firstLoss);
    }
    expect(maxAbs(await low.parts[0]!.denoiser.predict(x, level, [11, null]), await tm.denoiser.predict(x, level, [11, null]))).toBeGreaterThan(1e-3);
    await low.dispose();
  }, 120_000);

  it('swap: the other model inside the σ band (same-id condition, else the class prompt of the caption\'s image, else e_∅), this model outside', async () => {
    const cls = await loadTrainedModel('models/class');
    const p = await prepareMethod(parseMethod('swap:models/class@1-4'), ctx);
    expect(p.parts).toHaveLength(1);
    const d = p.parts[0]!.denoiser;
    const x = initialNoise(tm.denoiser.shape, [7, 8]);
    const conds = [2, 11, null] as const;
    const xt = { dims: [3, ...tm.denoiser.shape], data: new Float32Array(3 * x.data.length / 2) };
    xt.data.set(x.data);
    xt.data.set(x.data.subarray(0, x.data.length / 2), x.data.length);
    // σ = √((1−ᾱ)/ᾱ): ᾱ = 0.2 → σ = 2 (inside), ᾱ = 0.01 → σ ≈ 9.95 (outside), ᾱ = 0.9 → σ ≈ 0.33 (outside)
    const inside = { t: 500, alphaBar: 0.2 };
    const capLabel = tm.prompts[11]!.label!;
    expect(tm.denoiser.conditions[11]!.id).toMatch(/^caption:/);
    const want = await cls.denoiser.predict(xt, inside, [cls.denoiser.conditions.findIndex((c) => c.id === 'class:2'), cls.denoiser.conditions.findIndex((c) => c.id === `class:${capLabel}`), null]);
    expect(maxAbs(await d.predict(xt, inside, [...conds]), want)).toBe(0);
    for (const outside of [{ t: 900, alphaBar: 0.01 }, { t: 100, alphaBar: 0.9 }]) {
      expect(maxAbs(await d.predict(xt, outside, [...conds]), await tm.denoiser.predict(xt, outside, [...conds]))).toBe(0);
    }
    expect((p.details['counts'] as { generalizing: { calls: number } }).generalizing.calls).toBe(1);
    await p.dispose();
    await cls.denoiser.dispose?.();
    expect(parseMethod('swap:models/class@0.5-3').params).toEqual({ model: 'models/class', sigmaLo: 0.5, sigmaHi: 3 });
    expect(() => parseMethod('swap')).toThrow(/swap needs a model directory and a σ band/);
    expect(() => parseMethod('swap:models/class@3-1')).toThrow(/0 ≤ σ_lo < σ_hi/);
    expect(() => parseMethod('swap:models/class@x')).toThrow(/σ_lo must be a number/);
    await expect(prepareMethod(parseMethod('swap:models/nope@1-2'), ctx)).rejects.toThrow(/cannot load the generalizing model in models\/nope/);
  }, 60_000);

  it('prompt methods need the text capability', async () => {
    await expect(prepareMethod(parseMethod('random-word'), { ...ctx, capabilities: {} })).rejects.toThrow(/--methods: random-word needs the model capability 'text'/);
  });
});

describe('memscope evaluate: bad input', () => {
  afterEach(() => vi.restoreAllMocks());
  it.each([
    [['evaluate', '--methods', 'cfg,bogus'], /--methods: unknown method "bogus"/],
    [['evaluate', '--calibration', '1.5'], /--calibration: expected a quantile strictly between 0 and 1/],
    [['evaluate', '--seeds', 'x'], /--seeds/],
    [['evaluate', '--model', 'testbed', '--methods', 'cfg,wen'], /--methods: wen:3 need a trained text-conditioned model/],
    [['evaluate', '--model', '/nonexistent'], /--model: expected 'testbed', a trained model directory with model.json or a Stable Diffusion ONNX export directory/],
    [['evaluate', '--guidance', '5'], /--guidance: renamed to --scale \(the guidance scale λ\); write --scale 5/],
    [['evaluate', '--guidance', 'dtp'], /--guidance: renamed to --scale .*"dtp" is not a scale — a schedule goes into --methods \(e\.g\. --methods cfg,dtp\)/],
    [['detect', '--guidance', '5'], /--guidance: renamed to --scale \(the guidance scale λ\); write --scale 5/],
    [['evaluate', '--methods', 'cfg,stp:700'], /--methods "stp:700": a number after ":" is the guidance scale λ.*write stp@700 for τ = 700/],
    [['evaluate', '--methods', 'interval:100-300'], /--methods "interval:100-300": the range goes after "@" \(write interval@100-300\)/],
    [['evaluate', '--prompts', 'caption:999'], /--prompts "caption:999": .* has no condition caption:999/],
  ])('%j exits 2 naming the argument', async (argv, re) => {
    const { code, err } = await runCli(argv);
    expect(code).toBe(2);
    expect(err).toMatch(re);
  }, 60_000);
});

describe('scaleNotes', () => {
  it('notes a method whose own λ differs from --scale, and what og+X:a meant in the old grammar', () => {
    expect(scaleNotes(parseMethods('cfg,og+dtp/2,cfg:7.5,og+dtp:2,stp:3@500'), 7.5)).toEqual([
      'note: og+dtp:2 guides with its own λ = 2, not --scale 7.5 (and λ_og = λ = 2); in the old method grammar og+dtp:2 meant λ_og = 2 at λ = --scale: write og+dtp/2 for that',
      'note: stp:3@500 guides with its own λ = 3, not --scale 7.5',
    ]);
    expect(scaleNotes(parseMethods('og+dtp:2'), 2)).toEqual([]);
  });
});
