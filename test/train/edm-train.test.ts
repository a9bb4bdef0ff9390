import { describe, it, expect } from 'vitest';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from '../helpers/cli.ts';
import { loadTrainedModel } from '../../src/denoisers/trained.ts';
import { sampleHeunEdm, sampleHeunEdmEps, guidedHeunModel } from '../../src/samplers/heun-edm.ts';
import { cfg } from '../../src/guidance/cfg.ts';
import { constant } from '../../src/guidance/schedules.ts';
import { stableDiffusionConfig } from '../../src/schedules/config.ts';
import { trainingAlphaBars } from '../../src/models/model-dir.ts';

/**
 * The checkpoint config (`config.user`) that memscope wrote before issue 16 (commit 7833c30) for
 * `train --scenario edm-small --images 8 --batch-size 2 --channels 8 --steps 2 --checkpoint-every 2`,
 * recorded from that commit's checkpoint. A resume compares the stored config with the new run's,
 * so the new code must write exactly this for the same flags, or no pre-issue-16 training resumes.
 */
const PRE_ISSUE16_CONFIG = {"settings": {"scenario": "edm-small", "seed": 0, "batchSize": 2, "lr": 0.001, "weightDecay": 0, "warmupSteps": 100, "clipNorm": 1, "emaDecay": 0.999, "condDropout": 0.1, "captions": 50, "duplicates": 100, "smallSet": 300, "edmSmall": 8, "model": {"channels": [8], "layersPerLevel": 1, "attentionLevels": [false], "midAttention": true, "selfAttention": true, "ffMult": 4, "groups": 8, "normEps": 1e-05, "contextDim": 64, "contextLength": 16, "heads": 4, "timeEmbedDim": 128, "inChannels": 1, "sampleSize": 32, "conditioning": "text", "numClasses": 10}, "sampling": "edm"}, "model": {"unet": {"channels": [8], "layersPerLevel": 1, "attentionLevels": [false], "midAttention": true, "selfAttention": true, "ffMult": 4, "groups": 8, "normEps": 1e-05, "contextDim": 64, "contextLength": 16, "heads": 4, "timeEmbedDim": 128, "inChannels": 1, "sampleSize": 32, "conditioning": "none", "numClasses": 10}}};

const TINY_OLD = ['--scenario', 'edm-small', '--images', '8', '--batch-size', '2', '--channels', '8'];
const TINY_EDM = ['--scenario', 'graded', '--per-count', '2', '--unique', '3', '--parameterization', 'edm', '--batch-size', '4', '--channels', '8,16', '--checkpoint-every', '1'];

async function stateOf(dir: string, step: number): Promise<{ config: { user: unknown } }> {
  return JSON.parse(await readFile(join(dir, 'checkpoints', `step-${step}`, 'state.json'), 'utf8'));
}

describe('training across the issue-16 fields (EDM preconditioning, graded scenario)', () => {
  it('an ε run without the new flags stores the same checkpoint config as before issue 16 (so old checkpoints resume)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'memscope-old-cfg-'));
    const r = await runCli(['train', ...TINY_OLD, '--steps', '2', '--checkpoint-every', '2', '--out', dir]);
    expect(r.code).toBe(0);
    expect((await stateOf(dir, 2)).config.user).toEqual(PRE_ISSUE16_CONFIG);
    const meta = JSON.parse(await readFile(join(dir, 'model.json'), 'utf8'));
    expect(meta.edm).toBeUndefined();
    expect(meta.model.preconditioning).toBeUndefined();
    expect((await loadTrainedModel(dir)).edm).toBeNull();
  });

  it('an EDM graded run resumes bit-identically, records its preconditioning and duplication counts, refuses a changed parameterization, and serves ε and D', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'memscope-edm-'));
    const a = await runCli(['train', ...TINY_EDM, '--steps', '3', '--out', join(dir, 'a')]);
    expect(a.code).toBe(0);
    expect((await runCli(['train', ...TINY_EDM, '--steps', '2', '--out', join(dir, 'b')])).code).toBe(0);
    const b = await runCli(['train', ...TINY_EDM, '--steps', '3', '--out', join(dir, 'b')]);
    expect(b.err).toMatch(/resumed from step 2/);
    const wa = await readFile(join(dir, 'a', 'weights.safetensors'));
    expect(wa.equals(await readFile(join(dir, 'b', 'weights.safetensors')))).toBe(true);
    const c = await runCli(['train', ...TINY_EDM.filter((x, i, l) => x !== 'edm' && l[i + 1] !== 'edm'), '--steps', '4', '--out', join(dir, 'b')]);
    expect(c.code).toBe(1);
    expect(c.err).toMatch(/preconditioning|parameterization/);

    const meta = JSON.parse(await readFile(join(dir, 'a', 'model.json'), 'utf8'));
    expect(meta.model.preconditioning).toEqual({ kind: 'edm', sigmaData: 0.5, noiseLabelScale: 250 });
    expect(meta.edm).toMatchObject({ sigmaMin: 0.002, sigmaMax: 80, pMean: -1.2, pStd: 1.2 });
    expect(meta.settings.parameterization).toBe('edm');
    const caps = meta.prompts.filter((p: { kind: string }) => p.kind === 'caption');
    expect(caps.map((p: { duplicates: number }) => p.duplicates)).toEqual([3, 3, 10, 10, 30, 30, 100, 100, 1, 1, 1]);

    const m = await loadTrainedModel(join(dir, 'a'));
    try {
      expect(m.edm).not.toBeNull();
      // ε at timestep t through the Denoiser interface = (x − D(x; σ_t))/σ_t with x = x_vp/√ᾱ_t
      const t = 600;
      const alphaBar = trainingAlphaBars()[t]!;
      const sigma = Math.sqrt((1 - alphaBar) / alphaBar);
      const xvp = Float32Array.from({ length: 2 * 1024 }, (_, i) => Math.sin(i * 0.37));
      const eps = await m.denoiser.predict({ dims: [2, 1, 32, 32], data: xvp }, { t, alphaBar }, [10, null]);
      const x = Float32Array.from(xvp, (v) => v / Math.sqrt(alphaBar));
      const D = await m.edm!.denoise({ dims: [2, 1, 32, 32], data: x }, [sigma, sigma], [10, null]);
      let num = 0;
      let den = 0;
      for (let i = 0; i < x.length; i++) {
        const ref = (x[i]! - D.data[i]!) / sigma;
        num += (eps.data[i]! - ref) ** 2;
        den += ref * ref;
      }
      expect(Math.sqrt(num / den)).toBeLessThan(1e-4);
      // EDM's Heun sampler runs on the trained denoiser (2 steps, CFG 2)
      const noise = { dims: [1, 1, 32, 32], data: Float32Array.from({ length: 1024 }, (_, i) => Math.cos(i * 0.71)) };
      const out = await sampleHeunEdm(guidedHeunModel(m.edm!, [10], 2), noise, { steps: 4 });
      expect(out.data.every(Number.isFinite)).toBe(true);
      // …and the heun-edm of the CLI samplers (ε through the Denoiser at σ up to 80, D's graph) gives the same sample
      expect(m.denoiser.sigmaRange).toEqual([0.002, 80]);
      const viaEps = await sampleHeunEdmEps(cfg(m.denoiser, constant(2), [10]).model, noise, stableDiffusionConfig(), { steps: 4 });
      let e2 = 0;
      let n2 = 0;
      for (let i = 0; i < 1024; i++) {
        e2 += (viaEps.data[i]! - out.data[i]!) ** 2;
        n2 += out.data[i]! ** 2;
      }
      expect(Math.sqrt(e2 / n2)).toBeLessThan(1e-4);
    } finally {
      await m.denoiser.dispose?.();
    }
    // memscope sample --sampler heun-edm on it; an ε model is refused before any work (exit 2)
    const sd = await runCli(['sample', '--model', join(dir, 'a'), '--prompts', 'caption:0', '--seeds', '0', '--sampler', 'heun-edm', '--steps', '3', '--out', join(dir, 'heun'), '--store', join(dir, 'store')]);
    expect(sd.code, sd.err).toBe(0);
    const old = await runCli(['train', ...TINY_OLD, '--steps', '1', '--checkpoint-every', '1', '--out', join(dir, 'eps')]);
    expect(old.code).toBe(0);
    const r = await runCli(['sample', '--model', join(dir, 'eps'), '--seeds', '0', '--sampler', 'heun-edm', '--out', join(dir, 'heun-eps'), '--store', join(dir, 'store')]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/--sampler heun-edm: .* is defined on its schedule's timesteps only/);
  });

  it('rejects bad combinations before any work, naming the flag', async () => {
    const r = await runCli(['train', '--scenario', 'graded', '--parameterization', 'edm', '--sampling', 'vp']);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/--sampling: "vp" cannot be combined with --parameterization edm/);
    const p = await runCli(['train', '--scenario', 'graded', '--parameterization', 'x']);
    expect(p.code).toBe(2);
    expect(p.err).toMatch(/--parameterization: "x" is not one of eps, edm/);
    const u = await runCli(['train', '--scenario', 'class', '--unique', '5']);
    expect(u.code).toBe(2);
    expect(u.err).toMatch(/--unique: not used by --scenario class; only by graded/);
  });
});
