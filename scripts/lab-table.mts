/**
 * The lab table of issue 16 / 20 §4 for any set of graded-scenario models: strict copies by
 * duplication count at s = 7.5 (`memscope validate`, DPM-Solver++ 2M 50 steps, captions 0–79 = 10
 * each of 3×, 10×, 30×, 100× and 40 once-seen, plus the class prompts, 16 seeds) and the class
 * prompts' classifier accuracy, Fréchet distance and its real-image floor (`memscope evaluate`,
 * class:0-9 × 16 seeds, cfg:7.5), printed as a Markdown table. Every number is read from the two
 * commands' JSON; the commands run through the store, so a rerun only re-reads.
 *
 *     node --import tsx scripts/lab-table.mts [--out runs/lab-table] [--seeds 0-15] MODEL_DIR...
 *
 * e.g. `models/graded runs/lab/graded-caption-noise runs/lab/graded-wen-filter` (the training-time
 * mitigations against the model without them, at the same step count). The commands run at
 * `nice -n 10` so that trainings beside them keep their share.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';

const { values, positionals } = parseArgs({ allowPositionals: true, options: { out: { type: 'string' }, seeds: { type: 'string' } } });
if (positionals.length === 0) {
  process.stderr.write('usage: node --import tsx scripts/lab-table.mts [--out DIR] [--seeds 0-15] MODEL_DIR...\n');
  process.exit(2);
}
const out = resolve(values.out ?? 'runs/lab-table');
const seeds = values.seeds ?? '0-15';
const cli = resolve(import.meta.dirname, '..', 'bin', 'memscope.js');

function memscope(args: string[]): void {
  process.stderr.write(`memscope ${args.join(' ')}\n`);
  const r = spawnSync('nice', ['-n', '10', process.execPath, cli, ...args], { stdio: ['ignore', 'inherit', 'inherit'] });
  if (r.status !== 0) throw new Error(`memscope ${args[0]} failed (exit ${r.status})`);
}

interface ByDup {
  readonly duplicates: number;
  readonly captions: number;
  readonly strict: { readonly value: number; readonly interval: { readonly lo: number; readonly hi: number }; readonly n: number };
}

const pc = (v: number): string => (100 * v).toFixed(1);
const rows: string[] = [];
const counts = [1, 3, 10, 30, 100];
for (const dir of positionals) {
  const name = basename(resolve(dir));
  const vOut = join(out, `validate-${name}`);
  const eOut = join(out, `evaluate-${name}`);
  memscope(['validate', '--model', dir, '--prompts', 'caption:0-79,class:0-9', '--seeds', seeds, '--sampler', 'dpmpp2m', '--guidance', 'constant:7.5', '--out', vOut]);
  memscope(['evaluate', '--model', dir, '--prompts', 'class:0-9', '--seeds', seeds, '--methods', 'cfg:7.5', '--out', eOut]);
  const v = JSON.parse(readFileSync(join(vOut, 'validation.json'), 'utf8')) as { byDuplicates: ByDup[]; classAccuracy: number | null };
  const e = JSON.parse(readFileSync(join(eOut, 'evaluate.json'), 'utf8')) as { rows: { method: string; frechet: number | null; alignment: number | null }[]; reference: { floor: number | null; floorImages: number } };
  const cells = counts.map((k) => {
    const b = v.byDuplicates.find((x) => x.duplicates === k);
    return b === undefined ? '—' : `${pc(b.strict.value)} % [${pc(b.strict.interval.lo)}, ${pc(b.strict.interval.hi)}] (n = ${b.strict.n})`;
  });
  const cfg = e.rows[0]!;
  const acc = v.classAccuracy === null ? '—' : `${pc(v.classAccuracy)} %`;
  const fd = cfg.frechet === null ? '—' : cfg.frechet.toFixed(2);
  const floor = e.reference.floor === null ? '—' : `${e.reference.floor.toFixed(2)} (${e.reference.floorImages} real images)`;
  rows.push(`| ${dir} | ${cells.join(' | ')} | ${acc} | ${fd} | ${floor} |`);
}
process.stdout.write(
  [
    `Strict copies (d1/d2 < 1/3 and the nearest training image is the caption's own) by times trained on, CFG 7.5, DPM-Solver++ 2M 50 steps, seeds ${seeds}; class prompts: classifier accuracy (validate) and Fréchet distance of classifier features vs the held-out images (evaluate, cfg:7.5) with the floor of real training images.`,
    '',
    `| model | ${counts.map((k) => `${k}×`).join(' | ')} | class accuracy | class Fréchet | floor |`,
    `| --- | ${counts.map(() => '---').join(' | ')} | --- | --- | --- |`,
    ...rows,
    '',
  ].join('\n'),
);
