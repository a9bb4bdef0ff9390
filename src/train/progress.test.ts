import { describe, expect, it } from 'vitest';
import { ProgressLine, formatDuration } from './progress.ts';

function sink(isTTY: boolean) {
  const chunks: string[] = [];
  return { chunks, stream: { isTTY, write: (s: string) => chunks.push(s) } };
}

describe('ProgressLine', () => {
  it('plain lines every N steps and at the end when not a TTY', () => {
    const { chunks, stream } = sink(false);
    let t = 0;
    const p = new ProgressLine({ total: 10, every: 4, stream, now: () => t, smoothing: 0 });
    for (let s = 1; s <= 10; s++) {
      t += 500; // 2 steps/s, 8 images each -> 16 img/s
      p.update(s, s * 0.5, 8);
    }
    p.finish();
    expect(chunks).toHaveLength(3);
    expect(chunks.every((c) => c.endsWith('\n') && !c.includes('\r'))).toBe(true);
    expect(chunks[0]).toBe('train   4/10   40.0%  loss 2.000  16.0 img/s  ETA 0:03\n');
    expect(chunks[2]).toContain('10/10  100.0%  loss 5.000');
    expect(chunks[2]).toContain('ETA 0:00');
  });

  it('redraws in place on a TTY, throttled, and ends with a newline', () => {
    const { chunks, stream } = sink(true);
    let t = 0;
    const p = new ProgressLine({ total: 100, stream, tty: true, now: () => t, minIntervalMs: 100, start: 50 });
    for (let s = 51; s <= 100; s++) {
      t += 10;
      p.update(s, 1);
    }
    p.finish();
    // drawn at steps 51, 61, 71, 81, 91 and the last (100), then the final redraw
    expect(chunks).toHaveLength(7);
    expect(chunks.slice(0, -1).every((c) => c.startsWith('\r') && c.endsWith('\x1b[K'))).toBe(true);
    expect(chunks.at(-1)!.endsWith('\n')).toBe(true);
    expect(chunks[0]).toContain(' 51/100');
    expect(p.smoothedLoss).toBeCloseTo(1, 12); // bias-corrected EMA of a constant
  });

  it('formatDuration', () => {
    expect(formatDuration(0)).toBe('0:00');
    expect(formatDuration(75)).toBe('1:15');
    expect(formatDuration(3 * 3600 + 62)).toBe('3:01:02');
    expect(formatDuration(NaN)).toBe('--:--');
  });
});
