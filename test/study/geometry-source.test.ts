/**
 * What `memscope geometry` asks a model source for (issue 15 §5): the schedule stored with a
 * trained model (`ownSchedule`), its loss band and unconditional branch, and the codec's view of
 * the model on noisy images (28×28 inputs padded into the 32×32 model space with −1 + σz).
 */
import { describe, it, expect } from 'vitest';
import { readFileSync } from 'node:fs';
import { loadStudySource } from '../../src/study/source.ts';
import { parseSchedulerConfig } from '../../src/schedules/config.ts';
import { TorchGenerator } from '../../src/random/torch.ts';
import type { Tensor } from '../../src/tensor/tensor.ts';

describe('the geometry view of a model source', () => {
  it('a trained unconditional model: its stored schedule on request, its loss band, its folder name, the padded view', async () => {
    const dir = 'models/edm-small-undertrained';
    const meta = JSON.parse(readFileSync(`${dir}/model.json`, 'utf8')) as { schedule: object; band: { sigmaLo: number; sigmaHi: number; rho: number } };
    const own = await loadStudySource(dir, { ownSchedule: true });
    const sd = await loadStudySource(dir);
    try {
      expect(own.schedule.config).toEqual(parseSchedulerConfig(meta.schedule, 'schedule'));
      expect(own.schedule.config.steps_offset).toBe(0);
      // the default stays Stable Diffusion 1.x's pipeline config (steps_offset 1), as the other commands sample
      expect(sd.schedule.config.steps_offset).toBe(1);
      expect(own.data.lossBand).toEqual(meta.band);
      expect(own.data.unconditionalReason).toBeNull();
      expect(own.name).toBe('edm-small-undertrained');
      expect(own.codec.scalingFactor).toBeNull();

      const view = own.codec.noisyImages!;
      expect(view.key(5)).toEqual({ pad: 2, fill: -1, seed: 5 });
      // D records its 32×32 input and returns it + 1: the 28×28 output is the input + 1
      let seen: Tensor | null = null;
      const D = async (x: Tensor): Promise<Tensor> => {
        seen = x;
        return { dims: x.dims, data: x.data.map((v) => v + 1) };
      };
      const y: Tensor = { dims: [2, 1, 28, 28], data: new TorchGenerator(1).randn([2 * 784]) };
      const sigma = 0.7;
      const out = await view.denoiser(D, 5)(y, sigma);
      const z = new TorchGenerator(5).randn([2 * 1024]);
      const x = seen! as Tensor;
      expect(x.dims).toEqual([2, 1, 32, 32]);
      for (const [b, r, c] of [[0, 0, 0], [1, 31, 31], [0, 1, 17], [1, 20, 30]] as const) {
        const k = b * 1024 + r * 32 + c;
        expect(x.data[k]).toBeCloseTo(-1 + sigma * z[k]!, 6);
      }
      expect(x.data[1 * 1024 + 2 * 32 + 2]).toBe(y.data[784]!);
      expect(x.data[0 * 1024 + 29 * 32 + 29]).toBe(y.data[27 * 28 + 27]!);
      expect(out.dims).toEqual([2, 1, 28, 28]);
      expect(out.data[784 + 5 * 28 + 9]).toBeCloseTo(y.data[784 + 5 * 28 + 9]! + 1, 6);
    } finally {
      await own.denoiser.dispose?.();
      await sd.denoiser.dispose?.();
    }
  }, 60_000);

  it('a trained text-conditioned model says why its unconditional branch is not one', async () => {
    const src = await loadStudySource('models/class', { ownSchedule: true });
    try {
      expect(src.data.unconditionalReason).toBe('models/class is a text-conditioned model (class)');
      expect(src.data.lossBand).toBeNull();
    } finally {
      await src.denoiser.dispose?.();
    }
  }, 60_000);
});
