import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { AdamW, clipCoefficient, clipGradNorm, gradNorm, resolveAdamWOptions, warmupLr } from './adamw.ts';

/** Written by scripts/reference/train_adamw.py (torch.optim.AdamW, clip_grad_norm_, LambdaLR). */
interface Fixture {
  torch: string;
  scenarios: {
    name: string;
    options: { lr: number; betas: [number, number]; eps: number; weightDecay: number };
    noDecay: string[];
    clipNorm: number | null;
    warmupSteps: number;
    initial: Record<string, { dims: number[]; values: number[] }>;
    steps: {
      grads: Record<string, number[] | null>;
      lr: number;
      totalNorm: number | null;
      after: Record<string, { param: number[]; m: number[] | null; v: number[] | null; step: number }>;
    }[];
  }[];
}

const fixture = JSON.parse(readFileSync(new URL('../../test/fixtures/train_adamw.json', import.meta.url), 'utf8')) as Fixture;

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let d = 0;
  // fixture values are float32 printed with 9 significant digits: fround recovers them exactly
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - Math.fround(b[i]!)));
  return d;
}

describe('AdamW against torch.optim.AdamW', () => {
  for (const sc of fixture.scenarios) {
    // Agreement is bit for bit on this fixture (torch 1.13, AVX2 build: see the note in
    // optim.ts); the brief's tolerance is 1e-6, and both are asserted.
    it(`scenario ${sc.name}: params, moments, steps, lr and clip norm agree to 1e-6 (bit for bit here)`, () => {
      const specs = Object.entries(sc.initial).map(([name, p]) => ({ name, dims: p.dims, noDecay: sc.noDecay.includes(name) }));
      const opt = new AdamW(specs, sc.options);
      const params = new Map(Object.entries(sc.initial).map(([n, p]) => [n, Float32Array.from(p.values)]));
      let worst = 0;
      sc.steps.forEach((st, k) => {
        const grads = new Map<string, Float32Array>();
        for (const [n, g] of Object.entries(st.grads)) if (g !== null) grads.set(n, Float32Array.from(g));
        const lr = warmupLr(sc.options.lr, k, sc.warmupSteps);
        expect(lr).toBeCloseTo(st.lr, 15);
        let gradScale = 1;
        if (sc.clipNorm !== null) {
          const c = clipCoefficient(grads.values(), sc.clipNorm);
          expect(Math.abs(c.totalNorm - st.totalNorm!)).toBeLessThan(1e-6 * Math.max(1, st.totalNorm!));
          expect(c.totalNorm).toBe(Math.fround(st.totalNorm!));
          gradScale = c.scale;
        }
        opt.step(params, grads, { lr, gradScale });
        const state = opt.getState();
        for (const [n, a] of Object.entries(st.after)) {
          worst = Math.max(worst, maxAbsDiff(params.get(n)!, a.param));
          const ps = state.params.get(n);
          if (a.m === null) {
            expect(ps).toBeUndefined();
            continue;
          }
          expect(ps!.step).toBe(a.step);
          worst = Math.max(worst, maxAbsDiff(ps!.m, a.m), maxAbsDiff(ps!.v, a.v!));
        }
      });
      expect(worst).toBeLessThan(1e-6);
      expect(worst).toBe(0);
    });
  }

  it('a clipped step equals clipGradNorm in place followed by an unscaled step', () => {
    const sc = fixture.scenarios.find((s) => s.name === 'clip-decay-warmup')!;
    const specs = Object.entries(sc.initial).map(([name, p]) => ({ name, dims: p.dims, noDecay: sc.noDecay.includes(name) }));
    const a = new AdamW(specs, sc.options);
    const b = new AdamW(specs, sc.options);
    const pa = new Map(Object.entries(sc.initial).map(([n, p]) => [n, Float32Array.from(p.values)]));
    const pb = new Map([...pa].map(([n, v]) => [n, v.slice()]));
    for (const st of sc.steps) {
      const ga = new Map<string, Float32Array>();
      for (const [n, g] of Object.entries(st.grads)) if (g !== null) ga.set(n, Float32Array.from(g));
      const gb = new Map([...ga].map(([n, v]) => [n, v.slice()]));
      a.step(pa, ga, { gradScale: clipCoefficient(ga.values(), 1).scale });
      clipGradNorm(gb.values(), 1);
      b.step(pb, gb);
    }
    for (const [n, v] of pa) expect(pb.get(n)).toEqual(v);
  });
});

describe('AdamW state', () => {
  it('getState/setState round-trips and continues identically', () => {
    const specs = [{ name: 'w', dims: [5] }, { name: 'b', dims: [2], noDecay: true }];
    const grad = (k: number) => new Map([['w', Float32Array.from([1, -2, 3, -4, 5].map((x) => x * (k + 1) * 0.1))], ['b', Float32Array.from([k, -k])]]);
    const a = new AdamW(specs, { lr: 0.1 });
    const p = new Map([['w', new Float32Array(5).fill(1)], ['b', new Float32Array(2)]]);
    for (let k = 0; k < 3; k++) a.step(p, grad(k));
    const snap = a.getState();
    const pSnap = new Map([...p].map(([n, v]) => [n, v.slice()]));
    for (let k = 3; k < 6; k++) a.step(p, grad(k));
    const b = new AdamW(specs, { lr: 0.1 });
    b.setState(snap);
    for (let k = 3; k < 6; k++) b.step(pSnap, grad(k));
    for (const [n, v] of p) expect(pSnap.get(n)).toEqual(v);
    expect(b.getState()).toEqual(a.getState());
    // the snapshot is a copy, not a live view
    expect(snap.params.get('w')!.step).toBe(3);
  });

  it('rejects bad options, unknown gradients and wrong sizes', () => {
    expect(() => resolveAdamWOptions({ betas: [0.9, 1] })).toThrow(/betas/);
    expect(() => resolveAdamWOptions({ lr: -1 })).toThrow(/lr/);
    const opt = new AdamW([{ name: 'w', dims: [2] }]);
    const p = new Map([['w', new Float32Array(2)]]);
    expect(() => opt.step(p, new Map([['x', new Float32Array(2)]]))).toThrow(/unknown parameter "x"/);
    expect(() => opt.step(p, new Map([['w', new Float32Array(3)]]))).toThrow(/2 elements/);
    expect(() => opt.setState({ params: new Map([['w', { step: 1, m: new Float32Array(1), v: new Float32Array(2) }]]) })).toThrow(/m: 1/);
    expect(() => new AdamW([{ name: 'w', dims: [1] }, { name: 'w', dims: [1] }])).toThrow(/twice/);
  });
});

describe('clipping and warmup', () => {
  it('gradNorm is the global L2 norm; clipping only when it exceeds maxNorm', () => {
    const g = [Float32Array.from([3, 0]), Float32Array.from([0, 4])];
    expect(gradNorm(g)).toBe(5);
    expect(clipCoefficient(g, 10).scale).toBe(1);
    const c = clipCoefficient(g, 1);
    expect(c.totalNorm).toBe(5);
    expect(c.scale).toBeCloseTo(1 / (5 + 1e-6), 7);
    const total = clipGradNorm(g, 1);
    expect(total).toBe(5);
    expect(gradNorm(g)).toBeCloseTo(1, 6);
    expect(() => clipCoefficient(g, 0)).toThrow(/maxNorm/);
  });

  it('warmupLr is linear from 0 to the base lr, then constant', () => {
    expect([0, 1, 2, 3, 4, 10].map((s) => warmupLr(1, s, 4))).toEqual([0, 0.25, 0.5, 0.75, 1, 1]);
    expect(warmupLr(0.3, 0)).toBe(0.3);
    expect(() => warmupLr(1, -1, 2)).toThrow(/step/);
  });
});
