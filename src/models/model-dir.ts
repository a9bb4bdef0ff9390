/**
 * A trained memscope model folder as inference reads it: `model.json` (format
 * `memscope-trained-model`, the network config, the prompts it was trained on) next to
 * `weights.safetensors`, the VP schedule every memscope model is sampled on, and the 28 → 32
 * padding of its inputs. Training (`src/train/run.ts`) writes these folders.
 */
import { join } from 'node:path';
import { readFile } from 'node:fs/promises';
import { betas, alphaBars, sigmaFromAlphaBar } from '../schedules/betas.ts';
import type { Tensor } from '../tensor/tensor.ts';

/** One prompt of a scenario (stored in a trained model's `model.json`). */
export interface ScenarioPrompt {
  readonly text: string;
  readonly kind: 'class' | 'caption';
  /** Training images tied to this prompt when it is a memorization target (captions). */
  readonly targets?: readonly number[];
  /** The class of its image(s), when known. */
  readonly label?: number;
  /** How many training examples show this caption's image (`graded`: 1, 3, 10, 30, 100; absent elsewhere). */
  readonly duplicates?: number;
}

/** The VP schedule every memscope model is sampled on (scaled_linear 0.00085–0.012, 1000 steps): its ᾱ_t. */
export function trainingAlphaBars(): Float64Array {
  return alphaBars(betas('scaled_linear', { betaStart: 0.00085, betaEnd: 0.012 }));
}

/** σ_t = √((1 − ᾱ_t)/ᾱ_t) of {@link trainingAlphaBars}, t = 0..999 (increasing): the σ table an EDM model's ε graph reads. */
export function trainingSigmas(): Float64Array {
  return trainingAlphaBars().map(sigmaFromAlphaBar);
}

/** Pad `[n,1,28,28]` images in [−1,1] to `[n,1,32,32]` with the background value −1. */
export function pad28to32(images: Tensor, rows: ArrayLike<number>): Tensor {
  const n = rows.length;
  const out = new Float32Array(n * 32 * 32).fill(-1);
  for (let k = 0; k < n; k++) {
    const src = rows[k]! * 784;
    for (let y = 0; y < 28; y++) out.set(images.data.subarray(src + y * 28, src + y * 28 + 28), k * 1024 + (y + 2) * 32 + 2);
  }
  return { dims: [n, 1, 32, 32], data: out };
}

/** Read a trained model's `model.json` (validated lightly; errors name the file). */
export async function readModelJson(dir: string): Promise<Record<string, unknown>> {
  const p = join(dir, 'model.json');
  let txt: string;
  try {
    txt = await readFile(p, 'utf8');
  } catch {
    throw new Error(`--model: ${dir} is not a trained memscope model (no model.json)`);
  }
  const j = JSON.parse(txt) as Record<string, unknown>;
  if (j['format'] !== 'memscope-trained-model') throw new Error(`--model: ${p} is not a memscope trained-model file`);
  return j;
}
