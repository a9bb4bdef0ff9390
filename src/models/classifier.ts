/**
 * The network of memscope's Fashion-MNIST classifier (training: `src/train/classifier.ts`): three
 * 3×3 convs (16, 32, 64 channels; the last two with stride 2) with ReLU, global average pooling,
 * and a linear layer to 10 logits. {@link Classifier} loads a trained folder for inference: it
 * scores condition alignment of class-prompt samples and gives features for Fréchet distances.
 */
import { join } from 'node:path';
import { GraphBuilder } from '../graph/builder.ts';
import { createSession, type Session } from '../graph/session.ts';
import type { ParamFn } from './params.ts';
import { conv2d, linear } from './layers.ts';
import { paramFnFor } from './init.ts';
import { readSafetensors } from '../io/safetensors.ts';
import type { Tensor } from '../tensor/tensor.ts';

/** Logits `[B, 10]` (and the pooled 64-d features) of images `[B, 1, 28, 28]` in [−1, 1]. */
export function buildClassifier(b: GraphBuilder, param: ParamFn, x: string): { logits: string; features: string } {
  const h1 = b.op('Relu', [conv2d(b, param, 'c1', x, 1, 16)]);
  const h2 = b.op('Relu', [conv2d(b, param, 'c2', h1, 16, 32, { stride: 2 })]);
  const h3 = b.op('Relu', [conv2d(b, param, 'c3', h2, 32, 64, { stride: 2 })]);
  const features = b.op('Flatten', [b.op('GlobalAveragePool', [h3])], { axis: 1 });
  return { logits: linear(b, param, 'fc', features, 64, 10), features };
}

/** A trained classifier (inference graph with the weights baked in). */
export class Classifier {
  private constructor(private readonly session: Session) {}

  /** Load `dir/weights.safetensors`. */
  static async load(dir: string): Promise<Classifier> {
    const w = await readSafetensors(join(dir, 'weights.safetensors'));
    const b = new GraphBuilder({ name: 'classifier' });
    b.input('x', 'float32', ['B', 1, 28, 28]);
    const { param } = paramFnFor(b, 'initializer', new Map([...w.tensors].map(([k, t]) => [k, t.data])));
    const { logits, features } = buildClassifier(b, param, 'x');
    b.output(logits, 'float32', ['B', 10], 'logits');
    b.output(features, 'float32', ['B', 64], 'features');
    return new Classifier(await createSession(b.toBytes()));
  }

  /** Predicted class of each image `[n, 1, 28, 28]`. */
  async predict(images: Tensor): Promise<number[]> {
    const out = (await this.session.run({ x: images }, ['logits']))['logits']!;
    const n = out.dims[0]!;
    return Array.from({ length: n }, (_, i) => {
      let best = 0;
      for (let k = 1; k < 10; k++) if (out.data[i * 10 + k]! > out.data[i * 10 + best]!) best = k;
      return best;
    });
  }

  /** The 64-dimensional penultimate features of each image `[n, 1, 28, 28]` → `[n, 64]` (the Fréchet-distance features of issue 5). */
  async features(images: Tensor): Promise<Tensor> {
    return (await this.session.run({ x: images }, ['features']))['features']!;
  }

  /** Release the session. */
  async dispose(): Promise<void> {
    await this.session.release();
  }
}
