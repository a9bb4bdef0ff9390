/**
 * Wen et al.'s objective through a Stable Diffusion U-Net file (issue 19 §2): on a diffusers
 * folder's U-Net (memscope's graph, external weights), on a torch.onnx export of the same U-Net,
 * and on a tiny legacy export (int64 timestep). Independent expectations: the loss equals
 * ‖out_c − out_u‖ computed with two plain U-Net calls; the gradient equals central finite
 * differences of the loss; splitting the seeds over calls changes neither.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { disposeAll } from '../graph/session.ts';
import { randnTorch } from '../random/torch.ts';
import { concatBatch, type Tensor } from '../tensor/tensor.ts';
import { writeTinyDiffusersFolder, writeTorchExportOfTinyFolder } from '../../test/helpers/tiny-diffusers-folder.ts';
import { writeTinySdExport } from '../../test/helpers/tiny-sd-export.ts';
import { encodePrompts } from './export.ts';
import { openStableDiffusion, type OpenedSd } from './open.ts';
import { createSdWenObjective } from './wen.ts';

const tmp = mkdtempSync(join(tmpdir(), 'memscope-sd-wen-'));
const models = new Map<string, OpenedSd>();

beforeAll(async () => {
  const folder = writeTinyDiffusersFolder(join(tmp, 'folder'), 'sd1');
  models.set('diffusers folder (memscope graph)', await openStableDiffusion(folder, { threads: 1 }));
  models.set('torch.onnx export', await openStableDiffusion(writeTorchExportOfTinyFolder(folder, join(tmp, 'torch-export')), { threads: 1 }));
  writeTinySdExport(join(tmp, 'legacy'), { variant: 'legacy', seed: 5 });
  models.set('tiny legacy export (int64 timestep)', await openStableDiffusion(join(tmp, 'legacy'), { threads: 1 }));
  models.set('diffusers folder, v-prediction SD 2.x', await openStableDiffusion(writeTinyDiffusersFolder(join(tmp, 'folder2'), 'sd2'), { threads: 1 }));
}, 60_000);
afterAll(async () => {
  for (const m of models.values()) await m.dispose();
  await disposeAll();
  rmSync(tmp, { recursive: true, force: true });
});

function timestepFeed(sd: OpenedSd, t: number, rows: number): { type: 'int64' | 'float32'; dims: number[]; data: number[] } | Tensor {
  const ts = sd.unet.timestep;
  if (ts.layout === 'scalar') return { type: ts.type as 'float32', dims: [], data: [t] };
  if (ts.layout === 'one') return { type: ts.type as 'float32', dims: [1], data: [t] };
  return { type: ts.type as 'float32', dims: [rows], data: new Array<number>(rows).fill(t) };
}

describe.each([...['diffusers folder (memscope graph)', 'torch.onnx export', 'tiny legacy export (int64 timestep)', 'diffusers folder, v-prediction SD 2.x']])('Wen objective on the %s', (which) => {
  it('loss = ‖out_c − out_u‖ of two plain U-Net calls; chunked calls give the same loss and gradient; the gradient matches finite differences', async () => {
    const sd = models.get(which)!;
    const N = 3;
    const C = sd.latentChannels;
    const side = sd.defaultSize.height / 8;
    const xT = randnTorch([N, C, side, side], 7);
    const e = (await encodePrompts(sd, ['a photo of the cat'])).hiddenStates;
    const u = (await encodePrompts(sd, [''])).hiddenStates;
    const t = 481;
    const whole = await createSdWenObjective(sd, N, { uncond: u, latent: [C, side, side], seedsPerCall: N });
    const split = await createSdWenObjective(sd, N, { uncond: u, latent: [C, side, side] });
    try {
      const a = await whole.lossAndGradient(e.data, xT, t);
      const b = await split.lossAndGradient(e.data, xT, t);
      // independent: two plain U-Net calls on the export's own session
      const rows = (c: Tensor): Tensor => concatBatch(Array.from({ length: N }, () => c));
      const out = async (c: Tensor): Promise<Float32Array> => (await sd.sessions.unet.run({ sample: xT, timestep: timestepFeed(sd, t, N), encoder_hidden_states: rows(c) }))[sd.unet.output]!.data;
      const oc = await out(e);
      const ou = await out(u);
      let ss = 0;
      for (let i = 0; i < oc.length; i++) ss += (oc[i]! - ou[i]!) ** 2;
      expect(a.loss).toBeGreaterThan(1e-3);
      expect(Math.abs(a.loss - Math.sqrt(ss)) / Math.sqrt(ss)).toBeLessThan(1e-4);
      expect(Math.abs(b.loss - a.loss) / a.loss).toBeLessThan(1e-5);
      let gmax = 0;
      let dmax = 0;
      for (let i = 0; i < a.grad.length; i++) {
        gmax = Math.max(gmax, Math.abs(a.grad[i]!));
        dmax = Math.max(dmax, Math.abs(a.grad[i]! - b.grad[i]!));
      }
      expect(gmax).toBeGreaterThan(0);
      expect(dmax / gmax).toBeLessThan(1e-4);
      // central differences on the three largest-gradient coordinates (float32 loss: h = 1e-2)
      const top = [...a.grad.keys()].sort((i, j) => Math.abs(a.grad[j]!) - Math.abs(a.grad[i]!)).slice(0, 3);
      const h = 1e-2;
      for (const k of top) {
        const ep = e.data.slice();
        ep[k]! += h;
        const em = e.data.slice();
        em[k]! -= h;
        const fd = ((await whole.loss(ep, xT, t)) - (await whole.loss(em, xT, t))) / (2 * h);
        expect(Math.abs(fd - a.grad[k]!), `coordinate ${k}: gradient ${a.grad[k]} vs finite difference ${fd}`).toBeLessThan(0.03 * Math.abs(a.grad[k]!) + 1e-3);
      }
    } finally {
      await whole.dispose();
      await split.dispose();
    }
  });
});
