import { describe, expect, it } from 'vitest';
import { parseConditions } from './conditions.ts';
import type { ConditionInfo, Denoiser } from '../denoisers/denoiser.ts';

/** Only `name` and `conditions` are read by the parser. */
function fake(conditions: ConditionInfo[]): Denoiser {
  return { name: 'fake', conditions } as unknown as Denoiser;
}

const graded = fake([
  { id: 'class:0', kind: 'class', label: 'T-shirt' },
  { id: 'caption:0', kind: 'caption', label: 'a', targets: [5], duplicates: 3 },
  { id: 'caption:1', kind: 'caption', label: 'b', targets: [6], duplicates: 100 },
  { id: 'caption:2', kind: 'caption', label: 'c', targets: [7], duplicates: 30 },
  { id: 'caption:3', kind: 'caption', label: 'd', targets: [8], duplicates: 1 },
  { id: 'caption:4', kind: 'caption', label: 'e', targets: [9], duplicates: 100 },
]);

describe('parseConditions dup:', () => {
  it('selects the captions by their duplication count, in model order', () => {
    expect(parseConditions('dup:100', graded)).toEqual([2, 5]);
    expect(parseConditions('dup:1', graded)).toEqual([4]);
    expect(parseConditions('dup:30-100', graded)).toEqual([2, 3, 5]);
    expect(parseConditions('dup:100,class:0', graded)).toEqual([2, 5, 0]);
  });
  it('names the counts the model has when none matches', () => {
    expect(() => parseConditions('dup:10', graded)).toThrow(/--prompts "dup:10": no condition of fake is trained on 10 times; its counts are 1, 3, 30, 100/);
    expect(() => parseConditions('dup:x', graded)).toThrow(/dup:100 or dup:30-100/);
    expect(() => parseConditions('dup:100-3', graded)).toThrow(/reversed/);
  });
  it('refuses a model without recorded counts', () => {
    expect(() => parseConditions('dup:100', fake([{ id: 'class:0', kind: 'class', label: 'x' }]))).toThrow(/records no duplication counts/);
  });
});

describe('isMemorizedCondition', () => {
  it('labels captions tied to an image trained on more than once; unique captions and class prompts are normal', async () => {
    const { isMemorizedCondition } = await import('../denoisers/denoiser.ts');
    expect(graded.conditions.map(isMemorizedCondition)).toEqual([false, true, true, true, false, true]);
    // a model that records no counts (the old duplication scenario's files): tied = memorized
    expect(isMemorizedCondition({ id: 'caption:0', kind: 'caption', label: 'a', targets: [1] })).toBe(true);
  });
});
