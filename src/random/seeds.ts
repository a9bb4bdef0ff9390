/**
 * Seed lists on the command line: `0-63`, `1,5,9-12`, `7`. Order is kept as written; every seed
 * must be a non-negative integer no larger than 2**53 - 1 and appear once.
 */

/** The largest number of seeds one spec may expand to. */
export const MAX_SEEDS = 100_000;

/** The largest seed accepted (2**53 - 1, the largest integer a JS number holds exactly). */
export const MAX_SEED = Number.MAX_SAFE_INTEGER;

const EXPECTED = 'a comma-separated list of non-negative integer seeds and inclusive ranges, e.g. "0-63" or "1,5,9-12"';

/** Parse a seed list such as `"0-63"` or `"1, 5, 9-12"` into seeds in the order written; errors name `arg`. */
export function parseSeeds(spec: string, arg = '--seeds'): number[] {
  const fail = (why: string): never => {
    throw new Error(`${arg}: ${why}; expected ${EXPECTED}, got ${JSON.stringify(spec)}`);
  };
  if (typeof spec !== 'string' || spec.trim() === '') fail('no seeds given');

  const seeds: number[] = [];
  const seen = new Set<number>();
  const add = (s: number): void => {
    if (seen.has(s)) fail(`seed ${s} appears more than once`);
    seen.add(s);
    seeds.push(s);
  };
  const toSeed = (text: string, item: string): number => {
    // Digits only here; compare as BigInt so that huge inputs are not silently rounded.
    if (BigInt(text) > BigInt(MAX_SEED)) fail(`seed ${text} in "${item}" exceeds 2**53 - 1 (${MAX_SEED})`);
    return Number(text);
  };

  for (const raw of spec.split(',')) {
    const item = raw.trim();
    if (item === '') fail('empty entry (stray comma?)');
    const single = /^(\d+)$/.exec(item);
    const range = single ? null : /^(\d+)\s*-\s*(\d+)$/.exec(item);
    if (single) {
      if (seeds.length + 1 > MAX_SEEDS) fail(`more than ${MAX_SEEDS} seeds`);
      add(toSeed(single[1]!, item));
    } else if (range) {
      const lo = toSeed(range[1]!, item);
      const hi = toSeed(range[2]!, item);
      if (hi < lo) fail(`range "${item}" is reversed (write ${hi}-${lo}, or list the seeds)`);
      if (seeds.length + (hi - lo + 1) > MAX_SEEDS) fail(`more than ${MAX_SEEDS} seeds`);
      for (let s = lo; s <= hi; s++) add(s);
    } else if (/^[-−]\s*\d/.test(item) || /-\s*-/.test(item)) {
      fail(`"${item}" is negative; seeds must be >= 0`);
    } else if (/^[+-]?(\d+\.\d*|\.\d+|\d+[eE][+-]?\d+)$/.test(item)) {
      fail(`"${item}" is not an integer`);
    } else {
      fail(`cannot read "${item}"`);
    }
  }
  return seeds;
}

/** Write seeds compactly in the form `parseSeeds` reads, runs of consecutive seeds as ranges (`[0,1,2,5]` → `"0-2,5"`). */
export function formatSeeds(seeds: readonly number[]): string {
  const parts: string[] = [];
  for (let i = 0; i < seeds.length; ) {
    let j = i;
    while (j + 1 < seeds.length && seeds[j + 1] === seeds[j]! + 1) j++;
    parts.push(j === i ? `${seeds[i]}` : j === i + 1 ? `${seeds[i]},${seeds[j]}` : `${seeds[i]}-${seeds[j]}`);
    i = j + 1;
  }
  return parts.join(',');
}
