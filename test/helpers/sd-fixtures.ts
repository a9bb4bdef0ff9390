/** Tiny stand-ins for the user-supplied ONNX models of the Stable Diffusion studies (CLIP, Inception, SSCD), for tests. */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { GraphBuilder } from '../../src/graph/builder.ts';

/** Tiny CLIP towers (pixel_values → mean colour → linear; input_ids → linear) and a tiny Inception (GAP → linear → [B, 2, 1, 1]). */
export function writeTinyMetricModels(dir: string, tokenizerDir: string): { clipDir: string; inception: string } {
  const clipDir = join(dir, 'clip');
  mkdirSync(clipDir, { recursive: true });
  const D = 3;
  const v = new GraphBuilder();
  v.input('pixel_values', 'float32', ['B', 3, 224, 224]);
  const g = v.op('Flatten', [v.op('GlobalAveragePool', ['pixel_values'])], { axis: 1 });
  v.output(v.op('MatMul', [g, v.initializer('Wv', Float32Array.from([1, 0.5, -0.2, -0.3, 1, 0.4, 0.2, -0.6, 1]), [3, D])]), 'float32', ['B', D], 'image_embeds');
  writeFileSync(join(clipDir, 'vision_model.onnx'), v.toBytes());
  const t = new GraphBuilder();
  t.input('input_ids', 'int64', ['B', 77]);
  const ids = t.op('Cast', ['input_ids'], { to: 1 });
  const w = new Float32Array(77 * D);
  for (let i = 0; i < w.length; i++) w[i] = Math.sin(1.7 * i + 0.3) / 500;
  t.output(t.op('MatMul', [ids, t.initializer('Wt', w, [77, D])]), 'float32', ['B', D], 'text_embeds');
  writeFileSync(join(clipDir, 'text_model.onnx'), t.toBytes());
  for (const f of ['vocab.json', 'merges.txt', 'tokenizer_config.json', 'special_tokens_map.json']) {
    try {
      writeFileSync(join(clipDir, f), readFileSync(join(tokenizerDir, f)));
    } catch {
      /* optional tokenizer files */
    }
  }
  const inc = new GraphBuilder();
  inc.input('x', 'float32', ['B', 3, 299, 299]);
  const gi = inc.op('Flatten', [inc.op('GlobalAveragePool', ['x'])], { axis: 1 });
  const yi = inc.op('MatMul', [gi, inc.initializer('Wi', Float32Array.from([1, 0.3, -0.5, 1, 0.2, 0.7]), [3, 2])]);
  inc.output(inc.op('Reshape', [yi, inc.constI64([-1, 2, 1, 1])]), 'float32', ['B', 2, 1, 1], 'pool3');
  const inception = join(dir, 'inception.onnx');
  writeFileSync(inception, inc.toBytes());
  return { clipDir, inception };
}

/**
 * A tiny model with SSCD's ONNX signature (`x` float32 `[B, 3, H, W]`, any size → `[B, 4]`:
 * channel means through a fixed 3×4 matrix), written to `path`.
 */
export function writeTinySscd(path: string): void {
  const s = new GraphBuilder();
  s.input('x', 'float32', ['B', 3, 'H', 'W']);
  const g = s.op('Flatten', [s.op('GlobalAveragePool', ['x'])], { axis: 1 });
  s.output(s.op('MatMul', [g, s.initializer('W', Float32Array.from([1, 0.2, -0.4, 0.3, -0.5, 1, 0.6, 0.1, 0.3, -0.2, 1, 0.7]), [3, 4])]), 'float32', ['B', 4], 'embedding');
  writeFileSync(path, s.toBytes());
}
