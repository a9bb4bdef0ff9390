/**
 * Generic ONNX noise model (SPEC §2.4, §7) on small models built with the graph builder, with
 * closed-form outputs: out = a·sample + b·timestep + (mean(encoder_hidden_states row) or
 * c·class_label), for every timestep dtype/rank variant, loaded from a temp .onnx by path.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadOnnxDenoiser } from './onnx.ts';
import { GraphBuilder, type DType, type Dim } from '../graph/builder.ts';
import type { CondRef } from './denoiser.ts';
import { mulberry32 } from '../../test/helpers/random.ts';

const dir = mkdtempSync(join(tmpdir(), 'memscope-onnx-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const A = 0.5;
const Bt = 0.001;
const C = 0.25;
const L = 3;
const E = 4;

interface ModelSpec {
  readonly ts?: { type: DType; dims: Dim[] } | null;
  readonly cond?: 'ehs' | 'class' | null;
  readonly sample?: Dim[];
  readonly nan?: boolean;
  readonly extra?: boolean;
  readonly ehsDims?: Dim[];
}

let counter = 0;
function writeModel(spec: ModelSpec): string {
  const b = new GraphBuilder({ name: 'toy_unet' });
  const sample = b.input('sample', 'float32', spec.sample ?? ['B', 2, 3]);
  let out = b.op('Mul', [sample, b.constF32(A)]);
  if (spec.ts !== null) {
    const ts = spec.ts ?? { type: 'float32', dims: ['B'] };
    const t = b.input('timestep', ts.type, ts.dims);
    const tf = b.op('Reshape', [b.op('Cast', [t], { to: 1 }), b.constI64([-1, 1, 1])]);
    out = b.op('Add', [out, b.op('Mul', [tf, b.constF32(Bt)])]);
  }
  if (spec.cond === 'ehs') {
    const e = b.input('encoder_hidden_states', 'float32', spec.ehsDims ?? ['B', L, E]);
    out = b.op('Add', [out, b.op('ReduceMean', [e], { axes: [1, 2], keepdims: 1 })]);
  } else if (spec.cond === 'class') {
    const c = b.input('class_labels', 'int64', ['B']);
    out = b.op('Add', [out, b.op('Mul', [b.op('Reshape', [b.op('Cast', [c], { to: 1 }), b.constI64([-1, 1, 1])]), b.constF32(C)])]);
  }
  if (spec.extra) b.input('added_cond_kwargs', 'float32', ['B', 2]);
  if (spec.nan) out = b.op('Sqrt', [b.op('Sub', [out, b.constF32(100)])]);
  b.output(out, 'float32', spec.sample ?? ['B', 2, 3], 'out_sample');
  const path = join(dir, `m${counter++}.onnx`);
  writeFileSync(path, b.toBytes());
  return path;
}

const rng = mulberry32(5);
const K = 3;
const ehsRows = Float32Array.from({ length: K * L * E }, () => rng() * 2 - 1);
const rowMean = (k: number | null): number => {
  if (k === null) return 0;
  let s = 0;
  for (let i = 0; i < L * E; i++) s += ehsRows[k * L * E + i]!;
  return s / (L * E);
};
const d = 6;

describe('loadOnnxDenoiser (SPEC §2.4, §7)', () => {
  const variants: { name: string; ts: { type: DType; dims: Dim[] }; int: boolean }[] = [
    { name: 'int64 [B]', ts: { type: 'int64', dims: ['B'] }, int: true },
    { name: 'int32 [B]', ts: { type: 'int32', dims: ['B'] }, int: true },
    { name: 'float32 [B]', ts: { type: 'float32', dims: ['B'] }, int: false },
    { name: 'float32 [1]', ts: { type: 'float32', dims: [1] }, int: false },
    { name: 'float32 [] (optimum)', ts: { type: 'float32', dims: [] }, int: false },
    { name: 'float16 []', ts: { type: 'float16', dims: [] }, int: false },
    { name: 'float64 [B]', ts: { type: 'float64', dims: ['B'] }, int: false },
  ];
  for (const v of variants) {
    it(`timestep ${v.name} with encoder_hidden_states: ε = a·x + b·t + mean(e) (1e-6)`, async () => {
      const path = writeModel({ ts: v.ts, cond: 'ehs' });
      const den = await loadOnnxDenoiser({ path, conditions: { dims: [K, L, E], data: ehsRows } });
      expect(den.timestep.type).toBe(v.ts.type);
      expect(den.timestep.layout).toBe(v.ts.dims.length === 0 ? 'scalar' : v.ts.dims[0] === 1 ? 'one' : 'batch');
      expect(den.shape).toEqual([2, 3]);
      expect(den.conditions.map((c) => c.kind)).toEqual(['embedding', 'embedding', 'embedding']);
      const cond: CondRef[] = [null, 2, 0, 1];
      const xt = Float32Array.from({ length: cond.length * d }, () => rng() * 2 - 1);
      const t = 500.4;
      const tEff = v.int ? 500 : v.ts.type === 'float16' ? 500.5 : t; // float16 rounds 500.4 to 500.5
      const eps = await den.predict({ dims: [cond.length, 2, 3], data: xt }, { t, alphaBar: 0.5 }, cond);
      cond.forEach((c, r) => {
        for (let j = 0; j < d; j++) expect(Math.abs(eps.data[r * d + j]! - (A * xt[r * d + j]! + Bt * tEff + rowMean(c)))).toBeLessThan(1e-6);
      });
      await den.dispose();
    });
  }

  it('class_labels: float condition rows → int64, uncond default 0 or given; labels', async () => {
    const path = writeModel({ cond: 'class' });
    const labels = Float32Array.of(3, 7);
    const den = await loadOnnxDenoiser({ path, conditions: { dims: [2], data: labels }, uncond: { dims: [1], data: Float32Array.of(10) }, labels: ['cat', 'dog'] });
    expect(den.conditions).toEqual([
      { id: 'row:0', kind: 'class', label: 'cat' },
      { id: 'row:1', kind: 'class', label: 'dog' },
    ]);
    const cond: CondRef[] = [0, null, 1];
    const xt = Float32Array.from({ length: 3 * d }, () => rng());
    const eps = await den.predict({ dims: [3, 2, 3], data: xt }, { t: 10, alphaBar: 0.9 }, cond);
    const lab = [3, 10, 7];
    for (let r = 0; r < 3; r++) for (let j = 0; j < d; j++) expect(Math.abs(eps.data[r * d + j]! - (A * xt[r * d + j]! + Bt * 10 + C * lab[r]!))).toBeLessThan(1e-6);
    await den.dispose();
    const den0 = await loadOnnxDenoiser({ path, conditions: { dims: [2, 1], data: labels } });
    const e0 = await den0.predict({ dims: [1, 2, 3], data: new Float32Array(d) }, { t: 0, alphaBar: 0.9 }, [null]);
    expect(Array.from(e0.data)).toEqual(new Array(d).fill(0));
    await den0.dispose();
    await expect(loadOnnxDenoiser({ path, conditions: { dims: [1], data: Float32Array.of(1.5) } })).rejects.toThrow(/class-label condition 0 is 1.5, not an integer/);
  });

  it('converts v_prediction and sample outputs to ε (parameterization.ts)', async () => {
    const path = writeModel({ cond: null, ts: { type: 'float32', dims: ['B'] } });
    const alphaBar = 0.64;
    const sa = 0.8;
    const sb = 0.6;
    const xt = Float32Array.from({ length: 2 * d }, () => rng() * 2 - 1);
    for (const predictionType of ['v_prediction', 'sample'] as const) {
      const den = await loadOnnxDenoiser({ path, predictionType });
      const eps = await den.predict({ dims: [2, 2, 3], data: xt }, { t: 100, alphaBar }, [null, null]);
      for (let i = 0; i < 2 * d; i++) {
        const o = A * xt[i]! + Bt * 100;
        const want = predictionType === 'v_prediction' ? sa * o + sb * xt[i]! : (xt[i]! - sa * o) / sb;
        expect(Math.abs(eps.data[i]! - want)).toBeLessThan(1e-6);
      }
      await den.dispose();
    }
  });

  it('runs a fixed-batch model in chunks and needs options.shape for dynamic sample dims', async () => {
    const fixed = await loadOnnxDenoiser({ path: writeModel({ sample: [2, 2, 3], ts: { type: 'int64', dims: [2] } }) });
    const xt = Float32Array.from({ length: 5 * d }, () => rng());
    const eps = await fixed.predict({ dims: [5, 2, 3], data: xt }, { t: 7, alphaBar: 0.5 }, [null, null, null, null, null]);
    for (let i = 0; i < 5 * d; i++) expect(Math.abs(eps.data[i]! - (A * xt[i]! + Bt * 7))).toBeLessThan(1e-6);
    await fixed.dispose();
    const dyn = writeModel({ sample: ['B', 'C', 'H'] });
    await expect(loadOnnxDenoiser({ path: dyn })).rejects.toThrow(/sample shape \[B, C, H\] is dynamic; pass options.shape/);
    const ok = await loadOnnxDenoiser({ path: dyn, shape: [3, 2] });
    expect(ok.shape).toEqual([3, 2]);
    const e = await ok.predict({ dims: [1, 3, 2], data: new Float32Array(d).fill(2) }, { t: 0, alphaBar: 0.5 }, [null]);
    expect(Array.from(e.data)).toEqual(new Array(d).fill(1));
    await ok.dispose();
  });

  it('names what is missing or mismatched', async () => {
    await expect(loadOnnxDenoiser({ path: writeModel({ ts: null }) })).rejects.toThrow(/missing input 'timestep' \(inputs: sample\)/);
    await expect(loadOnnxDenoiser({ path: writeModel({ extra: true }) })).rejects.toThrow(/unsupported input 'added_cond_kwargs'/);
    await expect(loadOnnxDenoiser({ path: writeModel({}), conditions: { dims: [K, L, E], data: ehsRows } })).rejects.toThrow(/no 'class_labels' or 'encoder_hidden_states' input/);
    await expect(loadOnnxDenoiser({ path: writeModel({ cond: 'ehs' }) })).rejects.toThrow(/has a 'encoder_hidden_states' input; pass options.conditions/);
    await expect(loadOnnxDenoiser({ path: writeModel({ cond: 'ehs', ehsDims: ['B', 77, 768] }), conditions: { dims: [K, L, E], data: ehsRows } })).rejects.toThrow(/condition rows have shape \[3, 4\] but input 'encoder_hidden_states' expects \[B, 77, 768\]/);
    await expect(loadOnnxDenoiser({ path: join(dir, 'nope.onnx') })).rejects.toThrow(/onnxruntime could not load .*nope.onnx/);
    const den = await loadOnnxDenoiser({ path: writeModel({ cond: 'ehs' }), conditions: { dims: [K, L, E], data: ehsRows } });
    await expect(den.predict({ dims: [1, 3, 2], data: new Float32Array(d) }, { t: 1, alphaBar: 0.5 }, [null])).rejects.toThrow(/x_t must be \[B, 2, 3\]/);
    await expect(den.predict({ dims: [1, 2, 3], data: new Float32Array(d) }, { t: 1, alphaBar: 0.5 }, [3])).rejects.toThrow(/condition index 3 is out of range/);
    await den.dispose();
  });

  it('a model returning NaN gives a clear error', async () => {
    const den = await loadOnnxDenoiser({ path: writeModel({ nan: true, cond: 'ehs' }), conditions: { dims: [K, L, E], data: ehsRows }, name: 'nan-model' });
    await expect(den.predict({ dims: [2, 2, 3], data: new Float32Array(2 * d) }, { t: 3, alphaBar: 0.5 }, [1, null])).rejects.toThrow(
      /nan-model: the model returned a non-finite value \(NaN\) at t = 3, batch row 0 \(condition row:1\)/,
    );
    await den.dispose();
  });
});
