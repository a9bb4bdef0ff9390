/**
 * Merge the claims of several `memscope analyze kim` results into one Markdown table (the README's
 * claims table): one row per claim, one measured/verdict column pair per results directory.
 * Usage: node --import tsx scripts/kim-claims.ts runs/kim-testbed runs/kim-duplication
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

interface Claim {
  section: string;
  claim: string;
  measured: string;
  /** Current results: the judged verdict (interval, n, minimum n). */
  verdict?: { verdict: string; text: string };
  /** Results written before verdicts had intervals: a point-estimate comparison, not a verdict. */
  holds?: boolean | null;
}

const dirs = process.argv.slice(2);
if (dirs.length === 0) throw new Error('usage: scripts/kim-claims.ts DIR [DIR…] (results directories of memscope analyze kim)');
const runs = dirs.map((d) => JSON.parse(readFileSync(join(d, 'kim.json'), 'utf8')) as { model: string; claims: Claim[] });
const keys: string[] = [];
for (const r of runs) for (const c of r.claims) if (!keys.includes(`${c.section}|${c.claim}`)) keys.push(`${c.section}|${c.claim}`);
// a verdict only from an interval with its n: older kim.json files (point comparisons, no interval) are not judged
const verdict = (c: Claim | undefined): string => {
  if (c === undefined) return '—';
  if (c.verdict !== undefined) return c.verdict.verdict === 'holds' ? `**${c.verdict.text}**` : c.verdict.text;
  return 'not judged (results predate interval verdicts; rerun memscope analyze kim)';
};
const lines = [
  `| § | claim | ${runs.map((r) => `${r.model}: measured | verdict`).join(' | ')} |`,
  `|---|---|${runs.map(() => '---|---').join('|')}|`,
  ...keys.map((k) => {
    const [section, claim] = k.split('|') as [string, string];
    const cells = runs.map((r) => {
      const c = r.claims.find((x) => `${x.section}|${x.claim}` === k);
      return `${c?.measured ?? '—'} | ${verdict(c)}`;
    });
    return `| ${section} | ${claim} | ${cells.join(' | ')} |`;
  }),
];
process.stdout.write(lines.join('\n') + '\n');
