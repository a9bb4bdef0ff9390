/**
 * How large is Wen et al.'s training-time statistic ‖ε̂(x_t, caption) − ε̂(x_t, empty)‖ on a trained
 * lab model, per duplication group? The threshold of `memscope train --wen-filter X` is chosen from
 * this (Wen et al. chose 2 for SD 1.4 latents the same way: a value normal captions rarely reach).
 *
 *   node --import tsx scripts/wen-filter-magnitudes.mts [MODEL_DIR=models/graded] [DRAWS=32]
 *
 * For up to 10 prompts of each group (class prompts, and captions by duplication count), DRAWS
 * draws of the training distribution: x0 = the prompt's training image (class prompts: an image of
 * the class from the pool), σ log-normal (P_mean −1.2, P_std 1.2, EDM's training σ), n ~ N(0, I)
 * (torch-seeded); the magnitude over the 32×32 padded image, as the filter computes it. Prints the
 * 50/90/95/99th percentiles per group as JSON.
 */
import { loadTrainedModel } from '../src/denoisers/trained.ts';
import { loadFashionMnist } from '../src/data/fashion-mnist.ts';
import { pad28to32 } from '../src/models/model-dir.ts';
import { TorchGenerator } from '../src/random/torch.ts';
import { quantileSorted } from '../src/analysis/correlation.ts';

const dir = process.argv[2] ?? 'models/graded';
const draws = Number(process.argv[3] ?? 32);
const m = await loadTrainedModel(dir);
const d = m.denoiser;
const ds = loadFashionMnist({ split: 'train' });
const pool = m.imagePool === 'all' ? null : m.imagePool;
const groups = new Map<string, number[]>();
d.conditions.forEach((c, i) => {
  const key = c.kind === 'class' ? 'class' : `${c.duplicates ?? '?'}x`;
  const g = groups.get(key) ?? [];
  if (g.length < 10) g.push(i);
  groups.set(key, g);
});
const per = 32 * 32;
const out: Record<string, unknown> = {};
for (const [key, conds] of groups) {
  const mags: number[] = [];
  for (const c of conds) {
    const info = d.conditions[c]!;
    const cls = m.prompts[c]!.label;
    const img = info.targets?.[0] ?? (pool ?? [...ds.labels.keys()]).find((i) => ds.labels[i] === cls)!;
    const x0 = pad28to32(ds.images, [img]).data;
    const g = new TorchGenerator(1000 + c);
    const z = g.randn([draws]);
    const x = new Float32Array(draws * per);
    const sig: number[] = [];
    for (let k = 0; k < draws; k++) {
      const sigma = Math.min(80, Math.max(0.002, Math.exp(-1.2 + 1.2 * z[k]!)));
      sig.push(sigma);
      const n = g.randn([per]);
      for (let j = 0; j < per; j++) x[k * per + j] = (x0[j]! + sigma * n[j]!) / Math.sqrt(1 + sigma * sigma);
    }
    for (let k = 0; k < draws; k++) {
      const xt = { dims: [1, 1, 32, 32], data: x.subarray(k * per, (k + 1) * per) };
      const level = { t: 0, alphaBar: 1 / (1 + sig[k]! ** 2), sigma: sig[k]! };
      const ec = (await d.predict(xt, level, [c])).data;
      const eu = (await d.predict(xt, level, [null])).data;
      let ss = 0;
      for (let j = 0; j < per; j++) ss += (ec[j]! - eu[j]!) ** 2;
      mags.push(Math.sqrt(ss));
    }
  }
  const s = Float64Array.from(mags).sort();
  out[key] = { prompts: conds.length, draws: mags.length, p50: quantileSorted(s, 0.5), p90: quantileSorted(s, 0.9), p95: quantileSorted(s, 0.95), p99: quantileSorted(s, 0.99) };
}
console.log(JSON.stringify(out, null, 1));
await d.dispose?.();
