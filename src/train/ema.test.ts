import { describe, expect, it } from 'vitest';
import { Ema, emaDecayAt, resolveEmaOptions } from './ema.ts';

describe('Ema', () => {
  it('decay schedule: constant, or min(d, (1+t)/(10+t)) with warmup', () => {
    expect(emaDecayAt(0)).toBe(0.999);
    expect(emaDecayAt(0, { warmup: true })).toBeCloseTo(0.1, 15);
    expect(emaDecayAt(8, { warmup: true })).toBe(0.5);
    expect(emaDecayAt(8989, { warmup: true })).toBeLessThan(0.999);
    expect(emaDecayAt(8990, { warmup: true })).toBeCloseTo(0.999, 15);
    expect(emaDecayAt(1e6, { warmup: true, decay: 0.99 })).toBe(0.99);
    expect(resolveEmaOptions()).toEqual({ decay: 0.999, warmup: false });
    expect(() => resolveEmaOptions({ decay: 1.5 })).toThrow(/decay/);
  });

  it('follows the closed form ema_n = p + Π d_t · (ema_0 − p) toward a fixed target', () => {
    for (const warmup of [false, true]) {
      const ema = new Ema(new Map([['w', Float32Array.from([0, 1, -2])]]), { decay: 0.9, warmup });
      const target = new Map([['w', Float32Array.from([1, 1, 2])]]);
      let prod = 1;
      for (let t = 0; t < 40; t++) {
        ema.update(target);
        prod *= emaDecayAt(t, { decay: 0.9, warmup });
      }
      const w = ema.values.get('w')!;
      expect(w[0]).toBeCloseTo(1 + prod * (0 - 1), 6);
      expect(w[1]).toBe(1);
      expect(w[2]).toBeCloseTo(2 + prod * (-2 - 2), 6);
      expect(ema.updates).toBe(40);
    }
  });

  it('copies its initial weights and round-trips its state exactly', () => {
    const init = Float32Array.from([1, 2, 3]);
    const a = new Ema(new Map([['w', init]]), { decay: 0.95, warmup: true });
    init[0] = 100; // the EMA holds its own copy
    expect(a.values.get('w')![0]).toBe(1);
    const p = (k: number) => new Map([['w', Float32Array.from([k, -k, 0.5 * k])]]);
    for (let k = 0; k < 5; k++) a.update(p(k));
    const snap = a.getState();
    const b = new Ema(new Map([['w', new Float32Array(3)]]), { decay: 0.95, warmup: true });
    b.setState(snap);
    for (let k = 5; k < 9; k++) {
      a.update(p(k));
      b.update(p(k));
    }
    expect(b.getState()).toEqual(a.getState());
    expect(snap.updates).toBe(5);
    expect(() => b.setState({ updates: 1, values: new Map([['w', new Float32Array(2)]]) })).toThrow(/3 elements/);
    expect(() => b.setState({ updates: 1, values: new Map([['w', new Float32Array(3)], ['x', new Float32Array(1)]]) })).toThrow(/unknown parameter "x"/);
    expect(() => b.update(new Map())).toThrow(/missing/);
  });
});
