/**
 * "Did you mean …?" for mistyped flags and values: the optimal-string-alignment (restricted
 * Damerau–Levenshtein) distance and the nearest allowed name within a distance that scales with
 * the word's length.
 */

/**
 * Edit distance between `a` and `b`: the fewest insertions, deletions, substitutions and swaps of
 * two adjacent characters (optimal string alignment, each substring edited at most once).
 * Compares UTF-16 code units, case-sensitively.
 *
 * @example editDistance('smapler', 'sampler') // 1 (one swap)
 */
export function editDistance(a: string, b: string): number {
  const n = a.length;
  const m = b.length;
  if (n === 0) return m;
  if (m === 0) return n;
  // three rows: i − 2, i − 1, i
  let prev2 = new Array<number>(m + 1).fill(0);
  let prev = Array.from({ length: m + 1 }, (_, j) => j);
  let cur = new Array<number>(m + 1).fill(0);
  for (let i = 1; i <= n; i++) {
    cur[0] = i;
    for (let j = 1; j <= m; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let d = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d = Math.min(d, prev2[j - 2]! + 1);
      cur[j] = d;
    }
    [prev2, prev, cur] = [prev, cur, prev2];
  }
  return prev[m]!;
}

/**
 * The candidate nearest to `input` (case-insensitively), or `null` when none is close: a
 * candidate counts when its distance is at most max(1, ⌊len/3⌋) capped at 3, where len is the
 * longer of the two words (so "smapler" → "sampler", "dpmp2m" → "dpmpp2m", but "x" suggests nothing
 * among long names). A candidate that starts with `input` (at least 3 characters) also counts.
 * Ties go to the earlier candidate.
 */
export function nearestName(input: string, candidates: readonly string[]): string | null {
  const q = input.toLowerCase();
  if (q === '') return null;
  let best: string | null = null;
  let bestD = Infinity;
  for (const c of candidates) {
    const lc = c.toLowerCase();
    if (lc === q) return c;
    const d = editDistance(q, lc);
    const limit = Math.min(3, Math.max(1, Math.floor(Math.max(q.length, lc.length) / 3)));
    const ok = d <= limit || (q.length >= 3 && lc.startsWith(q));
    const score = d <= limit ? d : limit + 1; // prefix matches rank after true near-misses
    if (ok && score < bestD) {
      best = c;
      bestD = score;
    }
  }
  return best;
}

/** `' (did you mean "x"?)'` for the nearest candidate, or `''` when none is close; `format` renders the name (default quoted). */
export function didYouMean(input: string, candidates: readonly string[], format: (s: string) => string = (s) => `"${s}"`): string {
  const n = nearestName(input, candidates);
  return n === null ? '' : ` (did you mean ${format(n)}?)`;
}
