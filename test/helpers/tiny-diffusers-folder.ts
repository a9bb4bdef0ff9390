/**
 * A TINY diffusers Stable Diffusion pipeline folder (issue 19 §1): the components the PyTorch
 * reference wrote (test/fixtures/diffusers-tiny/<kind>: `unet/`, `text_encoder/`, `vae/` with
 * configs and safetensors; see scripts/reference/diffusers_tiny.py) plus the tiny export's CLIP
 * tokenizer and PNDM scheduler config (`prediction_type` ε for `sd1`, v for `sd2`) and a
 * `model_index.json` as diffusers writes it. A few hundred kB; 64 × 64 images, 8 × 8 latents.
 */
import { copyFileSync, cpSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeTinySdExport } from './tiny-sd-export.ts';
import { materializeDiffusersFolder } from '../../src/sd/diffusers/folder.ts';

/** Where the reference's fixtures live. */
export const DIFFUSERS_TINY_FIXTURES = join(import.meta.dirname, '..', 'fixtures', 'diffusers-tiny');

/** Write the `kind` pipeline folder into `dir` (created); returns `dir`. */
export function writeTinyDiffusersFolder(dir: string, kind: 'sd1' | 'sd2'): string {
  for (const c of ['unet', 'text_encoder', 'vae']) cpSync(join(DIFFUSERS_TINY_FIXTURES, kind, c), join(dir, c), { recursive: true });
  const tmp = mkdtempSync(join(tmpdir(), 'memscope-tiny-tok-'));
  try {
    writeTinySdExport(tmp, { variant: 'optimum', hiddenSize: 16 });
    cpSync(join(tmp, 'tokenizer'), join(dir, 'tokenizer'), { recursive: true });
    cpSync(join(tmp, 'scheduler'), join(dir, 'scheduler'), { recursive: true });
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  const sched = JSON.parse(readFileSync(join(dir, 'scheduler', 'scheduler_config.json'), 'utf8')) as Record<string, unknown>;
  writeFileSync(join(dir, 'scheduler', 'scheduler_config.json'), JSON.stringify({ ...sched, prediction_type: kind === 'sd1' ? 'epsilon' : 'v_prediction' }, null, 2));
  writeFileSync(
    join(dir, 'model_index.json'),
    JSON.stringify({ _class_name: 'StableDiffusionPipeline', _diffusers_version: '0.31.0', unet: ['diffusers', 'UNet2DConditionModel'], text_encoder: ['transformers', 'CLIPTextModel'], vae: ['diffusers', 'AutoencoderKL'], tokenizer: ['transformers', 'CLIPTokenizer'], scheduler: ['diffusers', 'PNDMScheduler'], safety_checker: [null, null], feature_extractor: [null, null], requires_safety_checker: false }, null, 2),
  );
  return dir;
}

/**
 * An ONNX export of the tiny `sd1` folder whose `unet/model.onnx` is the PyTorch reference's own
 * U-Net exported by torch.onnx.export (`unet-torch-export.onnx`), the other components memscope's
 * graphs of the folder (`materializeDiffusersFolder`, copied). Returns `dir`.
 */
export function writeTorchExportOfTinyFolder(folder: string, dir: string): string {
  const m = materializeDiffusersFolder(folder);
  try {
    cpSync(m.root, dir, { recursive: true });
  } finally {
    m.dispose();
  }
  for (const f of readdirSync(join(dir, 'unet'))) if (f !== 'config.json') rmSync(join(dir, 'unet', f));
  copyFileSync(join(DIFFUSERS_TINY_FIXTURES, 'sd1', 'unet-torch-export.onnx'), join(dir, 'unet', 'model.onnx'));
  return dir;
}

/** CLI entry for demos: `node --import tsx test/helpers/tiny-diffusers-folder.ts DIR sd1|sd2`. */
if (process.argv[1] !== undefined && import.meta.filename === process.argv[1]) {
  const [dir, kind] = process.argv.slice(2);
  if (dir === undefined || (kind !== 'sd1' && kind !== 'sd2')) {
    process.stderr.write('usage: tiny-diffusers-folder.ts DIR sd1|sd2\n');
    process.exit(2);
  }
  writeTinyDiffusersFolder(dir, kind);
}
