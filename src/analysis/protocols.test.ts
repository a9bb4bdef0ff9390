import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PROTOCOLS, protocolByName, protocolMetrics, numpyPercentile, torchMedian, medianMad, checkProtocolModel } from './protocols.ts';
import { memorizationScore } from '../metrics/score.ts';
import { pixelDescriptor, sscdDescriptor, type DescriptorInfo } from '../metrics/descriptor.ts';
import { manifestPathOf, readEvalModelManifest } from '../metrics/manifest.ts';
import { GraphBuilder } from '../graph/builder.ts';
import { sscdManifest } from '../../test/helpers/eval-manifest.ts';
import type { Tensor } from '../tensor/tensor.ts';
import { rand } from '../../test/helpers/metrics.ts';

/** Unit vectors in the plane at the given angles (radians): cos between two = cos of the angle difference. */
function angles(...a: number[]): Tensor {
  return { dims: [a.length, 2], data: Float32Array.from(a.flatMap((t) => [Math.cos(t), Math.sin(t)])) };
}

describe('protocol definitions', () => {
  it('name the checkpoint, preprocessing and threshold of the code they reproduce', () => {
    expect(PROTOCOLS.wen).toMatchObject({ checkpoint: 'sscd_disc_large', sscd: { resize: 256, centerCrop: 224 }, reference: 'own', threshold: null });
    expect(PROTOCOLS.wen.sscd.normalize.mean).toEqual([0.5, 0.5, 0.5]);
    expect(PROTOCOLS.somepalli).toMatchObject({ checkpoint: 'sscd_disc_large', sscd: { resize: 256, centerCrop: 224 }, reference: 'train', threshold: 0.5 });
    expect(PROTOCOLS.nemo).toMatchObject({ checkpoint: 'sscd_disc_mixup', sscd: { resize: [320, 320] }, threshold: null });
    expect(PROTOCOLS.nemo.sscd.normalize.std).toEqual([0.229, 0.224, 0.225]);
    expect(PROTOCOLS.kim).toMatchObject({ checkpoint: null, threshold: 0.75 });
    expect(protocolByName('nemo')).toBe(PROTOCOLS.nemo);
    expect(() => protocolByName('dcr')).toThrow("unknown protocol 'dcr': expected one of wen, somepalli, nemo, kim");
  });
});

describe('the aggregation helpers', () => {
  it('numpy percentile (linear) and torch median (lower middle value)', () => {
    const v = [7, 1, 10, 3, 5, 2, 9, 4, 8, 6];
    // numpy.percentile(range(1, 11), q): (n − 1)·q/100 = 8.55 → 9 + 0.55 = 9.55
    expect(numpyPercentile(v, 95)).toBeCloseTo(9.55, 12);
    expect(numpyPercentile(v, 75)).toBeCloseTo(7.75, 12);
    expect(numpyPercentile(v, 0)).toBe(1);
    expect(numpyPercentile(v, 100)).toBe(10);
    expect(torchMedian([4, 1, 3, 2])).toBe(2); // torch: lower of the two middle values, not 2.5
    expect(torchMedian([5, 1, 3])).toBe(3);
    // |v − 2| = 2, 1, 1, 0 → lower median 1
    expect(medianMad([4, 1, 3, 2])).toEqual({ median: 2, mad: 1, prompts: 4 });
  });
});

describe('protocolMetrics', () => {
  // two prompts × three generations; prompt 0 has two ground-truth images, prompt 1 none
  const g = angles(0, 0.5, 1.0, 2.0, 2.2, 2.4);
  const own = [angles(0.1, 0.9), null];
  const nearestTrain = Float64Array.of(0.9, 0.2, 0.6, 0.55, 0.1, 0.95);

  it('wen: max over ground-truth images per generation; mean / max / min per prompt; means over prompts', () => {
    const m = protocolMetrics(PROTOCOLS.wen, { generations: g, perPrompt: 3, own, nearestTrain });
    // generation angles 0, 0.5, 1.0 against 0.1 and 0.9: best cos(0.1), cos(0.4), cos(0.1)
    const s = [Math.cos(0.1), Math.cos(0.4), Math.cos(0.1)];
    expect(m.prompts).toBe(1);
    expect(m.generations).toBe(3);
    expect(m.wen!.simMean).toBeCloseTo((s[0]! + s[1]! + s[2]!) / 3, 6);
    expect(m.wen!.simMaxMean).toBeCloseTo(Math.cos(0.1), 6);
    expect(m.wen!.simMinMean).toBeCloseTo(Math.cos(0.4), 6);
    expect(m.text).toContain('SSCD_sim_mean');
  });

  it('somepalli: top-1 training similarity of every generation, numpy percentiles, population std, fraction > 0.5', () => {
    const m = protocolMetrics(PROTOCOLS.somepalli, { generations: g, perPrompt: 3, own, nearestTrain });
    const x = Array.from(nearestTrain);
    const mean = x.reduce((a, b) => a + b, 0) / 6;
    expect(m.somepalli!.mean).toBeCloseTo(mean, 12);
    expect(m.somepalli!.std).toBeCloseTo(Math.sqrt(x.reduce((a, b) => a + (b - mean) ** 2, 0) / 6), 12);
    // sorted 0.1 0.2 0.55 0.6 0.9 0.95; p95 at 4.75 → 0.9 + 0.75·0.05
    expect(m.somepalli!.p95).toBeCloseTo(0.9375, 12);
    expect(m.somepalli!.above.value).toBeCloseTo(4 / 6, 12);
    expect(m.somepalli!.above.text).toContain('inconclusive (prompts = 2 < 10)');
  });

  it('nemo: median over references per generation, max and median per prompt, median ± MAD over prompts, by label', () => {
    const refs = [angles(0, 0.2, 0.4), angles(2.0), angles(1.0, 1.2)];
    const gen = angles(0.1, 0.3, 0.0, 2.1, 1.9, 2.5, 1.1, 1.3, 0.2);
    const m = protocolMetrics(PROTOCOLS.nemo, { generations: gen, perPrompt: 3, own: refs, nearestTrain: new Float64Array(9), labels: ['verbatim', 'template', 'verbatim'] });
    // prompt 0: gen 0.1 → cos(0.1), cos(0.1), cos(0.3) → median cos(0.1); gen 0.3 → cos(0.3), cos(0.1), cos(0.1) → cos(0.1); gen 0 → 1, cos(0.2), cos(0.4) → cos(0.2)
    // prompt 1: cos(0.1), cos(0.1), cos(0.5); prompt 2 (two refs: lower median = the smaller cosine): cos(0.1)…
    const p0 = [Math.cos(0.1), Math.cos(0.1), Math.cos(0.2)];
    const p1 = [Math.cos(0.1), Math.cos(0.1), Math.cos(0.5)];
    const p2 = [Math.min(Math.cos(0.1), Math.cos(0.1)), Math.min(Math.cos(0.3), Math.cos(0.1)), Math.min(Math.cos(0.8), Math.cos(1.0))];
    const maxes = [Math.max(...p0), Math.max(...p1), Math.max(...p2)];
    const medians = [torchMedian(p0), torchMedian(p1), torchMedian(p2)];
    expect(m.nemo!.max.median).toBeCloseTo(torchMedian(maxes), 6);
    expect(m.nemo!.median.median).toBeCloseTo(torchMedian(medians), 6);
    expect(m.nemo!.median.mad).toBeCloseTo(medianMad(medians).mad, 6);
    expect(Object.keys(m.nemo!.byLabel)).toEqual(['template', 'verbatim']);
    expect(m.nemo!.byLabel['verbatim']!.max.prompts).toBe(2);
    expect(m.nemo!.byLabel['template']!.max.median).toBeCloseTo(maxes[1]!, 6);
  });

  it('kim: equals the SPEC §3.8 score computed by memorizationScore on the same rows', async () => {
    const N = 4;
    const d = 12;
    const gen: Tensor = { dims: [2 * N, d], data: rand(2 * N * d, 3) };
    const t0: Tensor = { dims: [2, d], data: rand(2 * d, 4) };
    const train: Tensor = { dims: [5, d], data: rand(5 * d, 5) };
    const px = pixelDescriptor();
    const G = await px.embed(gen);
    const T0 = await px.embed(t0);
    const TR = await px.embed(train);
    // the nearest-training cosine of each generation of prompt 1 (no own image)
    const nearest = new Float64Array(2 * N);
    for (let r = 0; r < 2 * N; r++) {
      let best = -Infinity;
      for (let j = 0; j < 5; j++) {
        let c = 0;
        for (let k = 0; k < d; k++) c += G.data[r * d + k]! * TR.data[j * d + k]!;
        best = Math.max(best, c);
      }
      nearest[r] = best;
    }
    const m = protocolMetrics(PROTOCOLS.kim, { generations: G, perPrompt: N, own: [T0, null], nearestTrain: nearest });
    const ref0 = await memorizationScore(px, { dims: [N, d], data: gen.data.subarray(0, N * d) }, t0);
    const ref1 = await memorizationScore(px, { dims: [N, d], data: gen.data.subarray(N * d) }, null, { trainEmbeddings: TR });
    expect(m.kim!.scores[0]).toBeCloseTo(ref0.score, 6);
    expect(m.kim!.scores[1]).toBeCloseTo(ref1.score, 6);
    expect(m.kim!.memorized.value).toBe([ref0, ref1].filter((r) => r.memorized).length / 2);
  });

  it('refuses inputs that do not fit', () => {
    expect(() => protocolMetrics(PROTOCOLS.wen, { generations: g, perPrompt: 4, own, nearestTrain })).toThrow(/not a whole number of prompts × 4/);
    expect(() => protocolMetrics(PROTOCOLS.wen, { generations: g, perPrompt: 3, own: [null], nearestTrain })).toThrow(/1 reference entries for 2 prompts/);
    expect(() => protocolMetrics(PROTOCOLS.wen, { generations: g, perPrompt: 3, own: [angles(0), { dims: [1, 3], data: new Float32Array(3) }], nearestTrain })).toThrow(/3 columns/);
  });
});

describe('conversion manifests and the protocol check', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'memscope-protocol-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });
  async function sscdFile(name: string): Promise<string> {
    const b = new GraphBuilder();
    b.input('x', 'float32', ['B', 3, 'H', 'W']);
    b.output(b.op('Flatten', [b.op('GlobalAveragePool', ['x'])], { axis: 1 }), 'float32', ['B', 3], 'y');
    const path = join(dir, name);
    await writeFile(path, b.toBytes());
    return path;
  }

  it('reads the manifest beside the export, records it, and checks it against the protocol', async () => {
    const path = await sscdFile('large.onnx');
    expect(manifestPathOf(path)).toBe(join(dir, 'large.manifest.json'));
    const bare = await sscdDescriptor(path);
    expect(bare.info.manifest).toBeNull();
    const c0 = checkProtocolModel(PROTOCOLS.wen, bare.info);
    expect(c0.error).toBeNull();
    expect(c0.warning).toMatch(/no conversion manifest .* whether it is sscd_disc_large cannot be checked/);
    await writeFile(manifestPathOf(path), JSON.stringify(sscdManifest('sscd_disc_large')));
    const d = await sscdDescriptor(path);
    expect(d.info.manifest?.checkpoint).toBe('sscd_disc_large');
    expect(checkProtocolModel(PROTOCOLS.wen, d.info)).toEqual({ error: null, warning: null });
    expect(checkProtocolModel(PROTOCOLS.somepalli, d.info).error).toBeNull();
    expect(checkProtocolModel(PROTOCOLS.kim, d.info).error).toBeNull();
    expect(checkProtocolModel(PROTOCOLS.nemo, d.info).error).toMatch(/used sscd_disc_mixup, but .*large\.onnx was converted from sscd_disc_large/);
    const px: DescriptorInfo = pixelDescriptor().info;
    expect(checkProtocolModel(PROTOCOLS.wen, px).error).toBe('needs an SSCD descriptor (sscd:FILE), got pixel');
    await bare.dispose?.();
    await d.dispose?.();
  });

  it('refuses a malformed manifest, a failed conversion check and a manifest of another kind', async () => {
    const path = await sscdFile('bad.onnx');
    await writeFile(manifestPathOf(path), '{');
    expect(() => readEvalModelManifest(path)).toThrow(/bad\.manifest\.json is not JSON/);
    await writeFile(manifestPathOf(path), JSON.stringify({ ...sscdManifest('x'), source: { file: 'x', sha256: 'nope' } }));
    expect(() => readEvalModelManifest(path)).toThrow(/source\.sha256/);
    await writeFile(manifestPathOf(path), JSON.stringify(sscdManifest('x', { check: { inputs: 2, maxAbsDiff: 0.1, tolerance: 1e-4, runtime: 'r' } })));
    expect(() => readEvalModelManifest(path)).toThrow(/differed from the torch model by 0.1 > 0.0001/);
    await writeFile(manifestPathOf(path), JSON.stringify(sscdManifest('openai/clip-vit-large-patch14', { kind: 'clip-vision' })));
    await expect(sscdDescriptor(path)).rejects.toThrow(/is a clip-vision model by its manifest/);
  });
});
