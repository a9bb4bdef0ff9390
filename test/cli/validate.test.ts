/**
 * `memscope validate` on the results store: its samples are the sample study's units, so a rerun
 * samples nothing and `memscope sample` with the same model, guidance, sampler, steps and seeds
 * reuses them; the figures equal `validateModel` run directly on the same settings.
 */
import { describe, it, expect } from 'vitest';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from '../helpers/cli.ts';
import { loadTrainedModel } from '../../src/denoisers/trained.ts';
import { loadFashionMnist } from '../../src/data/fashion-mnist.ts';
import { parseGuidance } from '../../src/guidance/spec.ts';
import { stableDiffusionConfig } from '../../src/schedules/config.ts';
import { parseConditions } from '../../src/study/conditions.ts';
import { validateModel } from '../../src/study/validate.ts';
import { pixelCodec } from '../../src/study/source.ts';

describe('memscope validate on the results store', () => {
  it('writes run.json; a rerun and memscope sample reuse its units; the figures equal validateModel', async () => {
    const root = await mkdtemp(join(tmpdir(), 'memscope-validate-'));
    try {
      const store = join(root, 'store');
      const common = ['--model', 'models/duplication', '--seeds', '0-1', '--steps', '4', '--store', store];
      const args = ['validate', ...common, '--prompts', 'caption:0,class:0', '--classifier', join(root, 'none')];
      const noClf = await runCli(args.concat('--out', join(root, 'x')));
      expect(noClf.code).toBe(2); // an explicit --classifier without weights is refused
      const base = ['validate', ...common, '--prompts', 'caption:0,class:0'];
      const r1 = await runCli([...base, '--out', join(root, 'a')]);
      expect(r1.code, r1.err).toBe(0);
      const run1 = JSON.parse(await readFile(join(root, 'a', 'run.json'), 'utf8'));
      expect(run1.study).toBe('sample');
      expect([run1.units.length, run1.computed, run1.reused]).toEqual([4, 4, 0]);
      const v1 = JSON.parse(await readFile(join(root, 'a', 'validation.json'), 'utf8'));
      const r2 = await runCli([...base, '--out', join(root, 'b')]);
      expect(r2.code, r2.err).toBe(0);
      const run2 = JSON.parse(await readFile(join(root, 'b', 'run.json'), 'utf8'));
      expect([run2.computed, run2.reused]).toEqual([0, 4]);
      const v2 = JSON.parse(await readFile(join(root, 'b', 'validation.json'), 'utf8'));
      const { seconds: _s1, ...f1 } = v1;
      const { seconds: _s2, ...f2 } = v2;
      expect(f2).toEqual(f1);
      const s = await runCli(['sample', ...common, '--prompts', 'caption:0,class:0', '--guidance', 'constant:7.5', '--out', join(root, 's')]);
      expect(s.code, s.err).toBe(0);
      const runS = JSON.parse(await readFile(join(root, 's', 'run.json'), 'utf8'));
      expect(runS.units).toEqual(run1.units);
      expect([runS.computed, runS.reused]).toEqual([0, 4]);
      // the same figures as the direct (no-store) validation
      const tm = await loadTrainedModel('models/duplication');
      const train = loadFashionMnist({ split: 'train' }).images;
      const direct = await validateModel({ denoiser: tm.denoiser, trainImages: train, toImageSpace: pixelCodec(train, tm.denoiser.shape).toImageSpace, conds: parseConditions('caption:0,class:0', tm.denoiser, '--prompts'), seeds: [0, 1], guidance: parseGuidance('constant:7.5'), sampler: 'ddim', steps: 4, config: stableDiffusionConfig() });
      await tm.denoiser.dispose?.();
      expect(f1.perCondition).toEqual(JSON.parse(JSON.stringify(direct.perCondition)));
      expect(f1.nn1).toEqual(direct.copies.map((c) => c.nn1));
      expect(f1.captionMedianRatio).toBe(direct.captionMedianRatio);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  }, 240_000);
});
