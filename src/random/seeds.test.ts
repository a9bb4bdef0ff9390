import { describe, expect, it } from 'vitest';
import { MAX_SEED, MAX_SEEDS, formatSeeds, parseSeeds } from './seeds.ts';

describe('parseSeeds', () => {
  it('reads single seeds, ranges and lists, in the order written', () => {
    expect(parseSeeds('7')).toEqual([7]);
    expect(parseSeeds('0-63')).toEqual(Array.from({ length: 64 }, (_, i) => i));
    expect(parseSeeds('1,5,9-12')).toEqual([1, 5, 9, 10, 11, 12]);
    expect(parseSeeds('12,3,40-42,0')).toEqual([12, 3, 40, 41, 42, 0]);
    expect(parseSeeds('4-4')).toEqual([4]);
    expect(parseSeeds('0')).toEqual([0]);
    expect(parseSeeds('007')).toEqual([7]);
  });

  it('tolerates whitespace around entries, commas and range dashes', () => {
    expect(parseSeeds('  1 , 5 ,\t9 - 12 \n')).toEqual([1, 5, 9, 10, 11, 12]);
    expect(parseSeeds(' 3 ')).toEqual([3]);
  });

  it('accepts seeds up to 2**53 - 1', () => {
    expect(parseSeeds(String(MAX_SEED))).toEqual([MAX_SEED]);
    expect(parseSeeds(`${MAX_SEED - 2}-${MAX_SEED}`)).toEqual([MAX_SEED - 2, MAX_SEED - 1, MAX_SEED]);
  });

  it('accepts exactly MAX_SEEDS seeds', () => {
    expect(parseSeeds(`0-${MAX_SEEDS - 1}`)).toHaveLength(MAX_SEEDS);
  });

  it.each([
    ['', /no seeds given/],
    ['   ', /no seeds given/],
    ['1,,2', /empty entry/],
    ['1,2,', /empty entry/],
    [',1', /empty entry/],
    ['-3', /negative/],
    ['1,-3', /negative/],
    ['-3-5', /negative/],
    ['3--5', /negative/],
    ['1.5', /not an integer/],
    ['2.', /not an integer/],
    ['1e3', /not an integer/],
    ['0-1.5', /cannot read/],
    ['abc', /cannot read/],
    ['1 2', /cannot read/],
    ['1-2-3', /cannot read/],
    ['0x10', /cannot read/],
    ['5-3', /reversed/],
    ['9007199254740992', /exceeds 2\*\*53 - 1/],
    ['0-99999999999999999999', /exceeds 2\*\*53 - 1/],
    ['1,2,1', /seed 1 appears more than once/],
    ['0-10,5', /seed 5 appears more than once/],
    ['3,1-4', /seed 3 appears more than once/],
    [`0-${MAX_SEEDS}`, /more than 100000 seeds/],
    [`0-${MAX_SEEDS - 1},${MAX_SEEDS}`, /more than 100000 seeds/],
    ['0-9007199254740991', /more than 100000 seeds/],
  ])('rejects %j', (spec, why) => {
    expect(() => parseSeeds(spec)).toThrow(why);
  });

  it('names the argument and the expected form in its errors', () => {
    expect(() => parseSeeds('5-3', '--eval-seeds')).toThrow(/^--eval-seeds: .*expected a comma-separated list .*"0-63".*got "5-3"$/);
    expect(() => parseSeeds('')).toThrow(/^--seeds: /);
  });
});

describe('formatSeeds', () => {
  it('writes runs as ranges and round-trips through parseSeeds', () => {
    expect(formatSeeds([0, 1, 2, 5])).toBe('0-2,5');
    expect(formatSeeds([3, 4])).toBe('3,4');
    expect(formatSeeds([])).toBe('');
    for (const spec of ['0-63', '1,5,9-12', '12,3,40-42,0', '7', '2,1,0']) {
      expect(parseSeeds(formatSeeds(parseSeeds(spec)))).toEqual(parseSeeds(spec));
    }
    expect(formatSeeds(parseSeeds('1,5,9-12'))).toBe('1,5,9-12');
  });
});
