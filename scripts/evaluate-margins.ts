/**
 * Δ p95 copy similarity of every method against `cfg`, with prompt-bootstrap intervals, from the
 * `evaluate.json` of finished `memscope evaluate` runs (for results written before `evaluate`
 * reported the margins itself). Usage: node --import tsx scripts/evaluate-margins.ts DIR [DIR …]
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { quantileMargin } from '../src/study/evaluate.ts';

const signed = (v: number): string => `${v >= 0 ? '+' : '−'}${Math.abs(v).toFixed(3)}`;
for (const dir of process.argv.slice(2)) {
  const r = JSON.parse(await readFile(join(dir, 'evaluate.json'), 'utf8')) as { similarities: Record<string, number[]>; targetSimilarities?: Record<string, number[]> };
  const settings = JSON.parse(await readFile(join(dir, 'settings.json'), 'utf8')) as { seeds: number[]; runSeed: number };
  const N = settings.seeds.length;
  const base = r.similarities['cfg'];
  if (!base) throw new Error(`${dir}: no cfg row to compare with`);
  process.stdout.write(`${dir} (N = ${N} seeds per prompt)\n`);
  for (const [name, v] of Object.entries(r.similarities)) {
    if (name === 'cfg') continue;
    const m = quantileMargin(base, v, N, { seed: settings.runSeed });
    const t = r.targetSimilarities?.['cfg']?.length ? quantileMargin(r.targetSimilarities['cfg'], r.targetSimilarities[name]!, N, { seed: settings.runSeed }) : null;
    process.stdout.write(`  ${name}: Δ p95 similarity ${signed(m.delta)} [${signed(m.lo)}, ${signed(m.hi)}]${t ? `; own image ${signed(t.delta)} [${signed(t.lo)}, ${signed(t.hi)}]` : ''}\n`);
  }
}
