import { describe, it, expect } from 'vitest';
import { buildScenario, GRADED_COUNTS } from './scenarios.ts';

// A synthetic label set: 1,200 images, 120 per class, class = i mod 10.
const N = 1200;
const labels = Uint8Array.from({ length: N }, (_, i) => i % 10);
const names = ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot'];

function occurrences(image: Int32Array): Map<number, number> {
  const m = new Map<number, number>();
  for (const i of image) m.set(i, (m.get(i) ?? 0) + 1);
  return m;
}

describe('graded duplication scenario', () => {
  const d = buildScenario('graded', labels, names, 0);
  const caps = d.prompts.filter((p) => p.kind === 'caption');

  it('has 10 class prompts, 10 captions for each of 3, 10, 30, 100 and 200 once-seen captions', () => {
    expect(GRADED_COUNTS).toEqual([3, 10, 30, 100]);
    expect(d.prompts.slice(0, 10).every((p) => p.kind === 'class')).toBe(true);
    expect(caps).toHaveLength(240);
    const byCount = new Map<number, number>();
    for (const p of caps) byCount.set(p.duplicates!, (byCount.get(p.duplicates!) ?? 0) + 1);
    expect([...byCount].sort((a, b) => a[0] - b[0])).toEqual([[1, 200], [3, 10], [10, 10], [30, 10], [100, 10]]);
    expect(new Set(caps.map((p) => p.text)).size).toBe(240);
  });

  it('each caption image appears exactly its recorded number of times, always with its caption, and never in the class pool', () => {
    const occ = occurrences(d.image);
    caps.forEach((p, k) => {
      const img = p.targets![0]!;
      expect(occ.get(img)).toBe(p.duplicates);
      expect(labels[img]).toBe(p.label);
      for (let i = 0; i < d.image.length; i++) if (d.image[i] === img) expect(d.prompt[i]).toBe(10 + k);
    });
    // every other image once, with its class prompt
    const capImgs = new Set(caps.map((p) => p.targets![0]!));
    for (let i = 0; i < N; i++) if (!capImgs.has(i)) expect(occ.get(i)).toBe(1);
    for (let i = 0; i < d.image.length; i++) if (d.prompt[i]! < 10) expect(d.prompt[i]).toBe(labels[d.image[i]!]);
    // 1,200 − 240 class images + 10·(3 + 10 + 30 + 100) + 200
    expect(d.image.length).toBe(960 + 1430 + 200);
    expect(d.imagePool).toHaveLength(N);
  });

  it('spreads every duplication level over the 10 classes', () => {
    for (const K of [3, 10, 30, 100]) expect(new Set(caps.filter((p) => p.duplicates === K).map((p) => p.label))).toEqual(new Set([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]));
  });

  it('is deterministic in the seed', () => {
    const again = buildScenario('graded', labels, names, 0);
    expect(again.prompts).toEqual(d.prompts);
    expect(Array.from(again.image)).toEqual(Array.from(d.image));
    const other = buildScenario('graded', labels, names, 1);
    expect(other.prompts.map((p) => p.targets?.[0])).not.toEqual(d.prompts.map((p) => p.targets?.[0]));
  });

  it('takes other sizes and refuses more than 320 captions', () => {
    const s = buildScenario('graded', labels, names, 0, { gradedPerCount: 12, gradedUnique: 100 });
    expect(s.prompts.filter((p) => p.duplicates === 100)).toHaveLength(12);
    expect(s.prompts.filter((p) => p.duplicates === 1)).toHaveLength(100);
    expect(() => buildScenario('graded', labels, names, 0, { gradedPerCount: 30, gradedUnique: 250 })).toThrow(/at most 320 captions/);
  });

  it('gradedClassImages: the class prompts train on a seeded sample of the non-caption images; the pool is those plus the caption images; captions unchanged', () => {
    const s = buildScenario('graded', labels, names, 0, { gradedClassImages: 300 });
    expect(s.prompts).toEqual(d.prompts);
    const capImgs = new Set(caps.map((p) => p.targets![0]!));
    const classRows = Array.from(s.prompt, (p, i) => [p, s.image[i]!] as const).filter(([p]) => p < 10);
    expect(classRows).toHaveLength(300);
    expect(new Set(classRows.map(([, img]) => img)).size).toBe(300);
    for (const [p, img] of classRows) {
      expect(capImgs.has(img)).toBe(false);
      expect(p).toBe(labels[img]);
    }
    expect(s.image.length).toBe(300 + 1430 + 200);
    expect([...s.imagePool]).toEqual([...new Set([...classRows.map(([, img]) => img), ...capImgs])].sort((a, b) => a - b));
    // every caption image keeps its count
    const occ = occurrences(s.image);
    for (const p of caps) expect(occ.get(p.targets![0]!)).toBe(p.duplicates);
    expect(() => buildScenario('graded', labels, names, 0, { gradedClassImages: 5 })).toThrow(/class images: expected an integer in \[10, 960\], got 5/);
    expect(() => buildScenario('graded', labels, names, 0, { gradedClassImages: 961 })).toThrow(/got 961/);
  });

  it('leaves the old duplication scenario unchanged (no duplicates field, K copies each)', () => {
    const old = buildScenario('duplication', labels, names, 0, { captions: 20, duplicates: 7 });
    expect(old.prompts.some((p) => p.duplicates !== undefined)).toBe(false);
    expect(old.image.length).toBe(N + 20 * 7);
  });
});
