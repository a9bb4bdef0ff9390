import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { TorchGenerator } from '../random/torch.ts';
import { listCheckpoints } from './checkpoint.ts';
import { DataOrder, batchIndices, stepGenerator, type DataOrderState } from './noise.ts';
import type { ParamSpec, ParamValues } from '../models/params.ts';
import { train, type StepOutput, type TrainBatch, type TrainOptions, type TrainResult } from './trainer.ts';

// Closed-form toy: linear least squares y ≈ A·w + c on n rows of d features.
const n = 48;
const d = 4;
const A = new TorchGenerator(11).randn([n, d]);
const W_TRUE = [1, -2, 0.5, 3];
const C_TRUE = 0.7;
const NOISE = new TorchGenerator(12).randn([n]);
const Y = Float32Array.from({ length: n }, (_, i) => W_TRUE.reduce((s, w, j) => s + w * A[i * d + j]!, C_TRUE) + 0.3 * NOISE[i]!);

const specs: ParamSpec[] = [
  { name: 'w', dims: [d], init: { kind: 'zeros' } },
  { name: 'c', dims: [1], init: { kind: 'zeros' }, noDecay: true },
];
const initial = (): ParamValues => ({ specs, values: new Map([['w', new Float32Array(d)], ['c', new Float32Array(1)]]) });

interface RowsBatch extends TrainBatch {
  readonly rows: readonly number[];
  /** Per-row multiplicative jitter of the targets, from the step's noise stream (exercises noise.ts). */
  readonly jitter: Float32Array;
}

function rowsBatch(rows: readonly number[], step: number, jitterScale: number): RowsBatch {
  const z = stepGenerator(5, step).randn([rows.length]);
  return { size: rows.length, inputs: new Map(), rows, jitter: z.map((v) => 1 + jitterScale * v) };
}

/** loss = mean_i (a_i·w + c − y_i·j_i)², gradients in closed form (double, rounded to float32). */
async function lsqStep(batch: RowsBatch, p: ReadonlyMap<string, Float32Array>): Promise<StepOutput> {
  const w = p.get('w')!;
  const c = p.get('c')![0]!;
  const gw = new Float64Array(d);
  let gc = 0;
  let loss = 0;
  batch.rows.forEach((i, k) => {
    let r = c - Y[i]! * batch.jitter[k]!;
    for (let j = 0; j < d; j++) r += A[i * d + j]! * w[j]!;
    loss += r * r;
    for (let j = 0; j < d; j++) gw[j]! += (2 * r * A[i * d + j]!) / batch.rows.length;
    gc += (2 * r) / batch.rows.length;
  });
  return { loss: loss / batch.rows.length, grads: new Map([['w', Float32Array.from(gw)], ['c', Float32Array.from([gc])]]) };
}

/** The least-squares solution [w; c] from the normal equations (Gaussian elimination in double). */
function lstsq(): number[] {
  const k = d + 1;
  const M = Array.from({ length: k }, () => new Float64Array(k + 1));
  for (let i = 0; i < n; i++) {
    const row = [...A.subarray(i * d, (i + 1) * d), 1];
    for (let a = 0; a < k; a++) {
      for (let b = 0; b < k; b++) M[a]![b]! += row[a]! * row[b]!;
      M[a]![k]! += row[a]! * Y[i]!;
    }
  }
  for (let col = 0; col < k; col++) {
    for (let r = col + 1; r < k; r++) {
      const f = M[r]![col]! / M[col]![col]!;
      for (let j = col; j <= k; j++) M[r]![j]! -= f * M[col]![j]!;
    }
  }
  const x = new Array<number>(k).fill(0);
  for (let r = k - 1; r >= 0; r--) {
    let s = M[r]![k]!;
    for (let j = r + 1; j < k; j++) s -= M[r]![j]! * x[j]!;
    x[r] = s / M[r]![r]!;
  }
  return x;
}

const STEPS = 40;
const base = (dir: string): TrainOptions<RowsBatch> => ({
  params: initial(),
  step: lsqStep,
  makeBatch: (s) => rowsBatch(batchIndices(n, 3, 10, s), s, 0.05),
  steps: STEPS,
  optimizer: { lr: 0.05, warmupSteps: 3, weightDecay: 0.02 },
  clipNorm: 2,
  ema: { decay: 0.9, warmup: true },
  checkpointDir: dir,
  checkpointEvery: 7,
  config: { toy: 'lsq', n, d },
});

function bits(m: ReadonlyMap<string, Float32Array>): Record<string, number[]> {
  const out: Record<string, number[]> = {};
  for (const [k, v] of m) out[k] = [...new Uint32Array(v.buffer, v.byteOffset, v.length)];
  return out;
}

/** Everything the resume guarantee covers, as bit patterns. */
function fingerprint(r: TrainResult) {
  const opt: Record<string, unknown> = {};
  for (const [k, s] of r.optimizer.params) opt[k] = { step: s.step, ...bits(new Map([['m', s.m], ['v', s.v]])) };
  return { step: r.step, params: bits(r.params), ema: { updates: r.ema!.updates, values: bits(r.ema!.values) }, opt, losses: r.lossHistory };
}

class Killed extends Error {}

let root: string;
beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'memscope-train-'));
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('train: resume is bit-identical', () => {
  it('killed (thrown out of step) at several points and resumed = uninterrupted', async () => {
    const ref = await train(base(join(root, 'ref')));
    expect(ref.step).toBe(STEPS);
    expect(ref.resumedFrom).toBeNull();
    const dir = join(root, 'killed');
    const resumedFrom: (number | null)[] = [];
    let last: TrainResult | null = null;
    for (const killAt of [5, 9, 16, 27, 28, 33, null]) {
      const o = base(dir);
      const run = train({
        ...o,
        step: async (b, p, s) => {
          if (s === killAt) throw new Killed(`killed at ${s}`);
          return lsqStep(b, p);
        },
      });
      if (killAt === null) {
        last = await run;
        resumedFrom.push(last.resumedFrom);
      } else {
        await expect(run).rejects.toBeInstanceOf(Killed);
        const cks = await listCheckpoints(dir);
        resumedFrom.push(cks.length === 0 ? null : cks.at(-1)!.step);
      }
    }
    // kills at 5 (nothing saved yet) … 33 (checkpoint 28); the last run resumes from 28
    expect(resumedFrom).toEqual([null, 7, 14, 21, 28, 28, 28]);
    expect(fingerprint(last!)).toEqual(fingerprint(ref));
    // the final checkpoints' tensor files are byte-identical too
    for (const f of ['weights.safetensors', 'ema.safetensors', 'optim.safetensors']) {
      expect(await readFile(join(dir, 'step-40', f))).toEqual(await readFile(join(root, 'ref', 'step-40', f)));
    }
  });

  it('aborted through an AbortSignal mid-interval (checkpoint on abort) and resumed = uninterrupted', async () => {
    const ref = await train({ ...base(join(root, 'ref')), checkpointDir: undefined as unknown as string });
    const dir = join(root, 'aborted');
    const ac = new AbortController();
    const reason = new Error('stop requested');
    await expect(
      train({
        ...base(dir),
        signal: ac.signal,
        onStep: (info) => {
          if (info.step === 23) ac.abort(reason);
        },
      }),
    ).rejects.toBe(reason);
    expect((await listCheckpoints(dir)).map((c) => c.step)).toEqual([21, 23]);
    const resumed = await train(base(dir));
    expect(resumed.resumedFrom).toBe(23);
    expect(fingerprint(resumed)).toEqual(fingerprint(ref));
    // running again with more steps continues; with the same steps it is a no-op
    const same = await train(base(dir));
    expect(same.resumedFrom).toBe(STEPS);
    expect(fingerprint(same)).toEqual(fingerprint(ref));
  });

  it('a stateful data order travels in the checkpoint (rng hook)', async () => {
    const mk = () => {
      const order = new DataOrder(n, 9);
      return {
        order,
        rng: { state: () => order.state(), restore: (s: unknown) => order.restore(s as DataOrderState) },
      };
    };
    const opts = (dir: string, rng: ReturnType<typeof mk>) => ({
      ...base(dir),
      makeBatch: (s: number) => rowsBatch(rng.order.next(7), s, 0),
      rng: rng.rng,
    });
    const ref = await train(opts(join(root, 'ref'), mk()));
    const dir = join(root, 'rng');
    const first = mk();
    await expect(train({ ...opts(dir, first), step: async (b, p, s) => (s === 17 ? Promise.reject(new Killed()) : lsqStep(b, p)) })).rejects.toBeInstanceOf(Killed);
    const resumed = await train(opts(dir, mk()));
    expect(resumed.resumedFrom).toBe(14);
    expect(fingerprint(resumed)).toEqual(fingerprint(ref));
  });
});

describe('train: the caller\'s extra state', () => {
  it('travels in the checkpoints; a checkpoint without it restores null with its step', async () => {
    // the caller's state: the sum of the step indices seen, so a resumed run must end at Σ 0..STEPS−1
    const counter = () => {
      const c = { sum: 0, restored: [] as [unknown, number][] };
      return { c, extra: { state: () => ({ sum: c.sum }), restore: (v: unknown, step: number) => { c.restored.push([v, step]); if (v !== null) c.sum = (v as { sum: number }).sum; } } };
    };
    const withCounter = (dir: string, k: ReturnType<typeof counter>, killAt: number | null) => ({
      ...base(dir),
      extra: k.extra,
      step: async (b: Parameters<typeof lsqStep>[0], p: Parameters<typeof lsqStep>[1], s: number) => {
        if (s === killAt) throw new Killed();
        k.c.sum += s;
        return lsqStep(b, p);
      },
    });
    const dir = join(root, 'extra');
    await expect(train(withCounter(dir, counter(), 17))).rejects.toBeInstanceOf(Killed);
    const k = counter();
    await train(withCounter(dir, k, null));
    expect(k.c.restored).toEqual([[{ sum: (13 * 14) / 2 }, 14]]); // checkpoint at step 14 holds Σ 0..13
    expect(k.c.sum).toBe(((STEPS - 1) * STEPS) / 2);
    // a checkpoint written without it (an older run): null, with the step it resumes from
    const old = join(root, 'old');
    await expect(train({ ...base(old), step: async (b, p, s) => (s === 9 ? Promise.reject(new Killed()) : lsqStep(b, p)) })).rejects.toBeInstanceOf(Killed);
    const k2 = counter();
    await train(withCounter(old, k2, null));
    expect(k2.c.restored).toEqual([[null, 7]]);
  });
});

describe('train: configuration, validation, convergence', () => {
  it('refuses to resume with a different configuration, naming the differences', async () => {
    const dir = join(root, 'cfg');
    await train({ ...base(dir), steps: 7 });
    await expect(train({ ...base(dir), optimizer: { lr: 0.01, warmupSteps: 3, weightDecay: 0.02 } })).rejects.toThrow(
      /different configuration[\s\S]*optimizer\.lr: checkpoint 0\.05 vs now 0\.01/,
    );
    await expect(train({ ...base(dir), config: { toy: 'lsq', n, d: 5 } })).rejects.toThrow(/user\.d: checkpoint 4 vs now 5/);
    await expect(train({ ...base(dir), ema: false })).rejects.toThrow(/ema/);
    await expect(train({ ...base(dir), steps: 5 })).rejects.toThrow(/past steps = 5/);
    // steps and checkpointEvery may change
    const more = await train({ ...base(dir), checkpointEvery: 100 });
    expect(more.resumedFrom).toBe(7);
    expect(more.step).toBe(STEPS);
  });

  it('never modifies the caller\'s initial arrays; stops on a non-finite loss; rejects unknown gradients', async () => {
    const init = initial();
    await train({ ...base(join(root, 'a')), params: init, steps: 3 });
    expect([...init.values.get('w')!]).toEqual([0, 0, 0, 0]);
    await expect(train({ ...base(join(root, 'b')), step: async () => ({ loss: NaN, grads: new Map() }) })).rejects.toThrow(/loss is NaN at step 0/);
    await expect(
      train({ ...base(join(root, 'c')), step: async () => ({ loss: 1, grads: new Map([['nope', new Float32Array(1)]]) }) }),
    ).rejects.toThrow(/unknown parameters: nope/);
    await expect(train({ ...base(root), checkpointEvery: 0 })).rejects.toThrow(/checkpointEvery/);
  });

  it('reports each step: lr warmup, clipping, batch size', async () => {
    const infos: { step: number; lr: number; gradScale: number; gradNorm: number | null; batchSize: number }[] = [];
    await train({ ...base(join(root, 'info')), steps: 5, onStep: (i) => void infos.push(i) });
    expect(infos.map((i) => i.step)).toEqual([1, 2, 3, 4, 5]);
    expect(infos.map((i) => i.lr)).toEqual([0, 0.05 / 3, 0.1 / 3, 0.05, 0.05]);
    for (const i of infos) {
      expect(i.batchSize).toBe(10);
      expect(i.gradNorm).toBeGreaterThan(2); // far from the optimum the norm exceeds clipNorm …
      expect(i.gradScale).toBeCloseTo(2 / (i.gradNorm! + 1e-6), 6); // … and the gradients are scaled
    }
  });

  it('an abort before the first step writes nothing; progress lines go to the given stream', async () => {
    const ac = new AbortController();
    ac.abort();
    const dir = join(root, 'early');
    await expect(train({ ...base(dir), signal: ac.signal })).rejects.toBeDefined();
    expect(await listCheckpoints(dir)).toEqual([]);
    const lines: string[] = [];
    await train({ ...base(join(root, 'prog')), steps: 20, progress: { stream: { write: (x: string) => lines.push(x) }, tty: false, every: 10 } });
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/^train  10\/20   50\.0%  loss \S+  \S+ img\/s  ETA /);
    expect(lines[1]).toMatch(/^train  20\/20  100\.0%/);
  });

  it('full-batch AdamW (no decay) converges to the least-squares solution', async () => {
    const all = Array.from({ length: n }, (_, i) => i);
    const r = await train({
      params: initial(),
      step: lsqStep,
      makeBatch: (s) => rowsBatch(all, s, 0),
      steps: 3000,
      optimizer: { lr: 0.01, weightDecay: 0 },
      ema: { decay: 0.99 },
    });
    const x = lstsq();
    const w = r.params.get('w')!;
    for (let j = 0; j < d; j++) expect(Math.abs(w[j]! - x[j]!)).toBeLessThan(1e-4);
    expect(Math.abs(r.params.get('c')![0]! - x[d]!)).toBeLessThan(1e-4);
    const e = r.ema!.values.get('w')!;
    for (let j = 0; j < d; j++) expect(Math.abs(e[j]! - x[j]!)).toBeLessThan(1e-3);
    expect(r.lossHistory.at(-1)!).toBeLessThan(r.lossHistory[0]! / 10);
  });
});
