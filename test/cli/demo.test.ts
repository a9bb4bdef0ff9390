/**
 * `memscope demo` on the results store: its units are the sample study's (one per schedule,
 * condition and seed), so `--dry-run` counts them, a rerun samples nothing and rewrites the same
 * files, `memscope sample` with the same settings reuses them, and the figures equal `runDemo`
 * (the direct path, no store) on the same settings.
 */
import { describe, it, expect } from 'vitest';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from '../helpers/cli.ts';
import { loadStudySource, SHIPPED_MODEL } from '../../src/study/source.ts';
import { demoConditions, runDemo } from '../../src/study/demo.ts';
import { readFileSync } from 'node:fs';
import { stableDiffusionConfig } from '../../src/schedules/config.ts';
import { gridPng } from '../../src/report/png.ts';

describe('the demo\'s default memorized captions', () => {
  it('auto = the first 4 captions of the highest duplication count (the shipped graded model: 100×)', async () => {
    // the expectation from model.json itself: prompts in order, captions numbered among captions
    const meta = JSON.parse(readFileSync(join(SHIPPED_MODEL, 'model.json'), 'utf8')) as { prompts: { kind: string; duplicates?: number }[] };
    const want = meta.prompts.flatMap((p, i) => (p.kind === 'caption' && p.duplicates === 100 ? [i] : [])).slice(0, 4);
    expect(want.length).toBe(4);
    const src = await loadStudySource(SHIPPED_MODEL);
    try {
      expect(demoConditions(src.denoiser, 'auto', 'class:0-1')).toEqual([...want, 0, 1]);
      expect(want.map((i) => src.denoiser.conditions[i]!.duplicates)).toEqual([100, 100, 100, 100]);
      expect(demoConditions(src.denoiser, 'caption:0', 'class:0')).toEqual([meta.prompts.findIndex((p) => p.kind === 'caption'), 0]);
    } finally {
      await src.denoiser.dispose?.();
    }
  });
});

describe('memscope demo on the results store', () => {
  it('dry-run counts its units; run.json; a rerun computes nothing and rewrites the same files; sample reuses its units; the figures equal runDemo', async () => {
    const root = await mkdtemp(join(tmpdir(), 'memscope-demo-'));
    try {
      const store = join(root, 'store');
      const args = ['demo', '--seeds', '0-1', '--steps', '4', '--memorized', 'caption:0', '--generalizing', 'class:0', '--guidance', 'constant:7.5;dtp:7.5', '--store', store];
      const dry1 = await runCli([...args, '--dry-run']);
      expect(dry1.code, dry1.err).toBe(0);
      expect(dry1.out).toMatch(/units: 8 \(0 already in the store, 8 to compute\)/);

      const r1 = await runCli([...args, '--out', join(root, 'a')]);
      expect(r1.code, r1.err).toBe(0);
      const run1 = JSON.parse(await readFile(join(root, 'a', 'run.json'), 'utf8'));
      expect([run1.command, run1.study, run1.units.length, run1.computed, run1.reused]).toEqual(['demo', 'demo', 8, 8, 0]);
      expect(run1.spec).toMatchObject({ guidance: ['constant:7.5', 'dtp:7.5'], seeds: '0-1', steps: 4 });

      const dry2 = await runCli([...args, '--dry-run']);
      expect(dry2.out).toMatch(/units: 8 \(8 already in the store, 0 to compute\)/);

      const r2 = await runCli([...args, '--out', join(root, 'b')]);
      expect(r2.code, r2.err).toBe(0);
      const run2 = JSON.parse(await readFile(join(root, 'b', 'run.json'), 'utf8'));
      expect([run2.computed, run2.reused]).toEqual([0, 8]);
      expect(run2.units).toEqual(run1.units);
      for (const f of ['config.json', 'targets.png', 'grid-constant_7.5.png', 'grid-dtp_7.5.png', 'd_t-constant_7.5.svg', 'd_t-dtp_7.5.svg']) {
        expect(Buffer.compare(await readFile(join(root, 'a', f)), await readFile(join(root, 'b', f))), f).toBe(0);
      }
      // summary.json and report.html differ only in the command's wall time
      const sum1 = JSON.parse(await readFile(join(root, 'a', 'summary.json'), 'utf8'));
      const sum2 = JSON.parse(await readFile(join(root, 'b', 'summary.json'), 'utf8'));
      const { seconds: _a, ...s1 } = sum1;
      const { seconds: _b, ...s2 } = sum2;
      expect(s2).toEqual(s1);
      const noTotal = (h: string): string => h.replace(/Total [0-9.]+ s\./, 'Total _ s.');
      expect(noTotal(await readFile(join(root, 'b', 'report.html'), 'utf8'))).toBe(noTotal(await readFile(join(root, 'a', 'report.html'), 'utf8')));

      // memscope sample with one of the schedules reuses the demo's samples of that schedule
      const s = await runCli(['sample', '--model', 'models/graded', '--prompts', 'caption:0,class:0', '--guidance', 'dtp:7.5', '--seeds', '0-1', '--steps', '4', '--store', store, '--out', join(root, 's')]);
      expect(s.code, s.err).toBe(0);
      const runS = JSON.parse(await readFile(join(root, 's', 'run.json'), 'utf8'));
      expect([runS.computed, runS.reused]).toEqual([0, 4]);
      expect(runS.units).toEqual(run1.units.slice(4));

      // the direct path (runSampling per schedule, no store) gives the same figures and samples
      const src = await loadStudySource(SHIPPED_MODEL);
      const direct = await runDemo(src, { memorized: 'caption:0', generalizing: 'class:0', seeds: [0, 1], guidance: ['constant:7.5', 'dtp:7.5'], sampler: 'ddim', steps: 4, config: stableDiffusionConfig() });
      await src.denoiser.dispose?.();
      expect(s1.summary).toEqual(JSON.parse(JSON.stringify(direct.summary)));
      expect(s1.runs.map((r: { switchSteps: unknown }) => r.switchSteps)).toEqual(direct.runs.map((r) => r.result.switchSteps));
      expect(direct.summary.find((r) => r.kind === 'memorized caption' && r.guidance === 'constant:7.5')!.samples).toBe(2);
      for (const r of direct.runs) {
        const png = await gridPng(r.result.samples, { cols: 2, zoom: 2 });
        expect(Buffer.compare(Buffer.from(png), await readFile(join(root, 'a', `grid-${r.guidance.replace(/[^a-z0-9.]+/gi, '_')}.png`))), r.guidance).toBe(0);
      }
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  }, 240_000);

  it('refuses a schedule given twice, naming --guidance', async () => {
    const r = await runCli(['demo', '--seeds', '0', '--steps', '2', '--guidance', 'constant:7.5;constant:7.5', '--dry-run', '--store', join(tmpdir(), 'memscope-demo-none')]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/--guidance: constant:7\.5 is given twice/);
  });
});
