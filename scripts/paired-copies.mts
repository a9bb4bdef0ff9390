/**
 * Paired copy comparison of two unconditional trained models on the same seeds: each seed's x_T is
 * the same for both (torch-seeded), so per seed the two samples' ratio-test verdicts (d1/d2 < 1/3
 * against each model's own image pool) form a pair. Prints both rates with their Wilson intervals,
 * the discordant pairs, the exact two-sided McNemar p-value and the paired difference with a 95 %
 * percentile bootstrap over seeds (2,000 resamples, seeded) — the comparison Dodson & Gao's
 * "under-training vs the full model at the same step count" needs, which two separate intervals
 * state too weakly.
 *
 *   node --import tsx scripts/paired-copies.mts MODEL_A MODEL_B [SEEDS=0-63] [SAMPLER=heun-edm] [STEPS=18]
 */
import { loadStudySource } from '../src/study/source.ts';
import { runSampling } from '../src/study/sampling.ts';
import { CopyDetector } from '../src/metrics/copy.ts';
import { parseSeeds } from '../src/random/seeds.ts';
import { wilsonInterval } from '../src/analysis/verdict.ts';
import { mulberry32 } from '../src/random/mulberry32.ts';
import type { SamplerName } from '../src/samplers/index.ts';

const [a, b] = [process.argv[2], process.argv[3]];
if (a === undefined || b === undefined) throw new Error('usage: paired-copies.mts MODEL_A MODEL_B [SEEDS] [SAMPLER] [STEPS]');
const seeds = parseSeeds(process.argv[4] ?? '0-63', 'SEEDS');
const sampler = (process.argv[5] ?? 'heun-edm') as SamplerName;
const steps = Number(process.argv[6] ?? 18);

async function copies(dir: string): Promise<boolean[]> {
  const src = await loadStudySource(dir);
  const r = await runSampling({ denoiser: src.denoiser, conds: [null], seeds, sampler, steps, config: src.schedule.config });
  const img = await src.toImageSpace(r.samples);
  const det = await CopyDetector.create(src.trainImages, src.data.imagePool);
  const st = await det.stats(img, seeds.map(() => null));
  await det.dispose();
  await src.denoiser.dispose?.();
  return st.map((s) => s.ratioCopy);
}

const ca = await copies(a);
const cb = await copies(b);
const n = seeds.length;
const k = (v: boolean[]) => v.filter(Boolean).length;
const pc = (x: number) => (100 * x).toFixed(1);
const wi = (v: boolean[]) => {
  const w = wilsonInterval(k(v), n);
  return `${pc(k(v) / n)} % [${pc(w.lo)}, ${pc(w.hi)}]`;
};
const onlyA = seeds.filter((_, i) => ca[i] && !cb[i]).length;
const onlyB = seeds.filter((_, i) => !ca[i] && cb[i]).length;
// exact two-sided McNemar: binomial(onlyA + onlyB, 1/2)
const m = onlyA + onlyB;
const lnC = (nn: number, kk: number) => { let s = 0; for (let i = 1; i <= kk; i++) s += Math.log((nn - kk + i) / i); return s; };
let tail = 0;
for (let i = 0; i <= Math.min(onlyA, onlyB); i++) tail += Math.exp(lnC(m, i) - m * Math.LN2);
const p = Math.min(1, 2 * tail);
const rnd = mulberry32(20261207);
const diffs: number[] = [];
for (let r = 0; r < 2000; r++) {
  let d = 0;
  for (let i = 0; i < n; i++) {
    const j = Math.floor(rnd() * n);
    d += (ca[j] ? 1 : 0) - (cb[j] ? 1 : 0);
  }
  diffs.push(d / n);
}
diffs.sort((x, y) => x - y);
console.log(JSON.stringify({
  seeds: n, sampler, steps,
  a: { model: a, copies: k(ca), rate: wi(ca) },
  b: { model: b, copies: k(cb), rate: wi(cb) },
  discordant: { onlyA, onlyB },
  mcnemarExactP: p,
  difference: { value: (k(ca) - k(cb)) / n, bootstrap95: [diffs[49], diffs[1949]] },
}, null, 1));
