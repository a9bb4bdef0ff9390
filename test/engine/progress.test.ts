import { describe, it, expect } from 'vitest';
import { progressReporter, progressLine, formatDuration } from '../../src/engine/progress.ts';

describe('progress reporter', () => {
  it('without a TTY: quiet at first, then one line at most every interval, and a closing line', () => {
    const lines: string[] = [];
    let t = 0;
    const r = progressReporter({ label: 'sample', tty: false, intervalS: 10, now: () => t, stream: { write: (s: string) => (lines.push(s), true) } });
    const p = (done: number, elapsed: number, eta: number | null) => ({ total: 10, cached: 2, done, elapsed, eta });
    r.update(p(2, 0, null));
    t = 4;
    r.update(p(4, 4, 12));
    expect(lines).toEqual([]);
    t = 11;
    r.update(p(6, 11, 9));
    t = 15;
    r.update(p(8, 15, 5));
    expect(lines).toEqual(['memscope sample: 6/10 units (60 %, 2 from the store), 11s elapsed, about 9s left\n']);
    t = 19;
    r.update(p(10, 19, 0));
    r.stop();
    expect(lines).toHaveLength(2);
    expect(lines[1]).toBe('memscope sample: 10/10 units (100 %, 2 from the store), 19s elapsed, about 0s left\n');
  });
  it('a run shorter than the interval prints nothing', () => {
    const lines: string[] = [];
    let t = 0;
    const r = progressReporter({ label: 'x', tty: false, now: () => t, stream: { write: (s: string) => (lines.push(s), true) } });
    r.update({ total: 2, cached: 0, done: 0, elapsed: 0, eta: null });
    t = 3;
    r.update({ total: 2, cached: 0, done: 2, elapsed: 3, eta: 0 });
    r.stop();
    expect(lines).toEqual([]);
  });
  it('formats durations', () => {
    expect(formatDuration(5.4)).toBe('5s');
    expect(formatDuration(185)).toBe('3m05s');
    expect(formatDuration(3720)).toBe('1h02m');
    expect(progressLine('a', { total: 4, cached: 0, done: 1, elapsed: 2, eta: null })).toBe('memscope a: 1/4 units (25 %), 2s elapsed');
  });
});
