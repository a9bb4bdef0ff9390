/**
 * Somepalli et al. baselines on the shipped duplication model: perturbed texts run through the
 * model's own text encoder and U-Net as a Denoiser; the unperturbed texts reproduce the model's
 * denoiser exactly.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { loadTrainedModel, type TrainedModel } from '../../src/denoisers/trained.ts';
import { embedTexts, modelVocabulary, randomNumberInsertion, randomWordInsertion, textDenoiser } from '../../src/mitigate/prompt-noise.ts';
import { WordTokenizer, UNK_ID } from '../../src/text/word-tokenizer.ts';
import { initialNoise } from '../../src/study/sampling.ts';
import type { Tensor } from '../../src/tensor/tensor.ts';

const maxAbs = (a: Tensor, b: Tensor): number => a.data.reduce((m, v, i) => Math.max(m, Math.abs(v - b.data[i]!)), 0);

describe('perturbed prompts as conditions of a trained model', () => {
  let m: TrainedModel;
  beforeAll(async () => {
    m = await loadTrainedModel('models/duplication');
  }, 60_000);
  afterAll(async () => {
    await m.denoiser.dispose?.();
  });

  it('embeds texts as [K, L, width] and reproduces the trained denoiser on the original prompts', async () => {
    const conds = [3, 12, 40];
    const texts = conds.map((c) => m.prompts[c]!.text);
    const e = await embedTexts(m, texts);
    expect(e.dims).toEqual([3, 16, 64]);
    const d = await textDenoiser(m, texts);
    expect(d.conditions.map((c) => c.label)).toEqual(texts);
    expect(d.conditions[0]!.kind).toBe('text');
    const x = initialNoise(m.denoiser.shape, [0, 1, 2, 3]);
    const level = { t: 601, alphaBar: 0.2 };
    const ours = await d.predict(x, level, [0, 1, 2, null]);
    const ref = await m.denoiser.predict(x, level, [3, 12, 40, null]);
    expect(maxAbs(ours, ref)).toBeLessThan(1e-6);
    await d.dispose?.();
  });

  it('perturbs a memorized caption with in-vocabulary words (numbers become <unk>) and changes the prediction', async () => {
    const vocab = modelVocabulary(m);
    expect(vocab).toContain('wooden');
    const tok = WordTokenizer.fromJSON(m.meta['tokenizer']);
    const text = m.prompts[12]!.text;
    const w = randomWordInsertion(text, { seed: 1, count: 2, vocabulary: vocab });
    const n = randomNumberInsertion(text, { seed: 1 });
    expect(tok.encode(w).filter((id) => id === UNK_ID)).toEqual([]);
    expect(tok.encode(n).filter((id) => id === UNK_ID).length).toBe(1);
    const d = await textDenoiser(m, [text, w, n]);
    const x = initialNoise(m.denoiser.shape, [5, 5, 5]);
    const out = await d.predict(x, { t: 601, alphaBar: 0.2 }, [0, 1, 2]);
    const row = (i: number): Tensor => ({ dims: [1, 1, 32, 32], data: out.data.subarray(i * 1024, (i + 1) * 1024) });
    expect(maxAbs(row(0), row(1))).toBeGreaterThan(1e-3);
    expect(maxAbs(row(0), row(2))).toBeGreaterThan(1e-3);
    await d.dispose?.();
  });
});
