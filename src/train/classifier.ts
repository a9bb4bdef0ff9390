/**
 * Training of the small CNN classifier of the 10 Fashion-MNIST classes (the network and its
 * inference wrapper are in `src/models/classifier.ts`), by memscope's own differentiator and
 * trainer on the embedded train split. It scores condition alignment of class-prompt samples
 * (issue 3 validation; later the Jain et al. evaluation table) and gives features for Fréchet
 * distances.
 */
import { join } from 'node:path';
import { mkdir } from 'node:fs/promises';
import { GraphBuilder } from '../graph/builder.ts';
import { createSession, type Feed } from '../graph/session.ts';
import { gradientGraph } from '../graph/autodiff.ts';
import type { ParamSpec } from '../models/params.ts';
import { paramFnFor, initParams } from '../models/init.ts';
import { buildClassifier, Classifier } from '../models/classifier.ts';
import { train, type TrainBatch } from './trainer.ts';
import { batchIndices } from './noise.ts';
import { writeSafetensors } from '../io/safetensors.ts';
import { writeJsonAtomic } from '../io/atomic.ts';
import { loadFashionMnist } from '../data/fashion-mnist.ts';
import type { Tensor } from '../tensor/tensor.ts';

function trainingGraph(batch: number): { bytes: Uint8Array; specs: readonly ParamSpec[]; shapes: Record<string, readonly number[]> } {
  const b = new GraphBuilder({ name: 'classifier_train' });
  const { param, specs } = paramFnFor(b, 'input');
  b.input('x', 'float32', [batch, 1, 28, 28]);
  b.input('onehot', 'float32', [batch, 10]);
  const { logits } = buildClassifier(b, param, 'x');
  const nll = b.op('Neg', [b.op('ReduceSum', [b.op('Mul', [b.op('LogSoftmax', [logits], { axis: 1 }), 'onehot']), b.constI64([0, 1])], { keepdims: 0 })]);
  b.output(b.op('Div', [nll, b.constF32(batch)]), 'float32', [], 'loss');
  const shapes: Record<string, readonly number[]> = { x: [batch, 1, 28, 28], onehot: [batch, 10] };
  for (const s of specs) shapes[s.name] = s.dims;
  return { bytes: b.toBytes(), specs, shapes };
}

/** Default number of optimizer steps of {@link trainClassifier}. */
export const CLASSIFIER_DEFAULT_STEPS = 600;

/** Train the classifier on the embedded train split (cross-entropy, AdamW) and save it to `dir`. */
export async function trainClassifier(dir: string, opts: { steps?: number; batch?: number; seed?: number; lr?: number; progress?: boolean } = {}): Promise<{ testAccuracy: number; seconds: number }> {
  const steps = opts.steps ?? CLASSIFIER_DEFAULT_STEPS;
  const B = opts.batch ?? 128;
  const seed = opts.seed ?? 0;
  const ds = loadFashionMnist({ split: 'train' });
  const g = trainingGraph(B);
  const wrt = g.specs.map((s) => s.name);
  const session = await createSession(gradientGraph(g.bytes, { loss: 'loss', wrt, inputShapes: g.shapes }));
  const makeBatch = (step: number): TrainBatch => {
    const idx = batchIndices(ds.labels.length, seed, B, step);
    const x = new Float32Array(B * 784);
    const onehot = new Float32Array(B * 10);
    idx.forEach((i, r) => {
      x.set(ds.images.data.subarray(i * 784, (i + 1) * 784), r * 784);
      onehot[r * 10 + ds.labels[i]!] = 1;
    });
    return { size: B, inputs: new Map<string, Tensor>([['x', { dims: [B, 1, 28, 28], data: x }], ['onehot', { dims: [B, 10], data: onehot }]]) };
  };
  const t0 = performance.now();
  await mkdir(dir, { recursive: true });
  const res = await train({
    params: initParams(g.specs, seed),
    steps,
    makeBatch,
    step: async (batch, params) => {
      const feeds: Record<string, Feed> = { x: batch.inputs.get('x')!, onehot: batch.inputs.get('onehot')! };
      for (const s of g.specs) feeds[s.name] = { dims: s.dims, data: params.get(s.name)! };
      const out = await session.run(feeds);
      return { loss: out['loss']!.data[0]!, grads: new Map(wrt.map((n) => [n, out[`grad/${n}`]!.data])) };
    },
    optimizer: { lr: opts.lr ?? 2e-3, weightDecay: 0 },
    checkpointDir: join(dir, 'checkpoints'),
    checkpointEvery: 200,
    config: { kind: 'classifier', batch: B, seed, lr: opts.lr ?? 2e-3 },
    progress: opts.progress ?? false,
  });
  await session.release();
  await writeSafetensors(join(dir, 'weights.safetensors'), new Map([...res.params].map(([k, v]) => [k, { dims: g.specs.find((s) => s.name === k)!.dims, data: v }])), { format: 'memscope-classifier' });
  const clf = await Classifier.load(dir);
  const test = loadFashionMnist({ split: 'test' });
  const pred = await clf.predict(test.images);
  const testAccuracy = pred.filter((p, i) => p === test.labels[i]).length / pred.length;
  await clf.dispose();
  const seconds = (performance.now() - t0) / 1000;
  await writeJsonAtomic(join(dir, 'classifier.json'), { format: 'memscope-classifier', steps, batch: B, seed, lr: opts.lr ?? 2e-3, testAccuracy, testImages: test.labels.length, seconds });
  return { testAccuracy, seconds };
}
