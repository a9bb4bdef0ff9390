/**
 * Child process of the kill test: runs a small `sample` study (an ONNX model with 4 condition
 * rows × 32 seeds, 2 rows per model call) into the store named by argv[2], then exits 0. It prints `ready`, then `done N` after each commit, then `computed reused`.
 * argv[3]: the folder holding m.onnx and cond.npy. argv[4]: rows per call (default 2).
 */
import { join } from 'node:path';
import { loadOnnxDenoiser } from '../../src/denoisers/onnx.ts';
import { readNpy } from '../../src/io/npy.ts';
import { stableDiffusionConfig } from '../../src/schedules/config.ts';
import { InProcessRunner } from '../../src/engine/runner.ts';
import { SqliteStore } from '../../src/store/sqlite-store.ts';
import { describedFingerprint } from '../../src/store/fingerprint.ts';
import { sampleStudy, SampleSpecSchema } from '../../src/study/sample-study.ts';

const [storeDir, modelDir, rows] = process.argv.slice(2) as [string, string, string | undefined];
const model = join(modelDir, 'm.onnx');
const conds = await readNpy(join(modelDir, 'cond.npy'));
const denoiser = await loadOnnxDenoiser({ path: model, conditions: conds, predictionType: 'epsilon' });
const source = {
  denoiser,
  conds: denoiser.conditions.map((_, i) => i),
  config: stableDiffusionConfig(),
  decode: null,
  modelInfo: {},
  fingerprint: await describedFingerprint('onnx', { predictionType: 'epsilon' }, { model, cond: join(modelDir, 'cond.npy') }),
};
const spec = SampleSpecSchema.parse({ model, seeds: '0-31', steps: 25, guidance: 'og+dtp:7.5', record: ['xt', 'xHat0'] });
const units = await sampleStudy.plan(spec, source);
const store = await SqliteStore.open(storeDir);
store.beginStudy('sample', spec, units.map((u) => u.key), new Map(units.map((u) => [u.key, u.batch ?? ''])));
process.stdout.write('ready\n');
const out = await new InProcessRunner().run(sampleStudy, units, source, store, {
  maxBatch: Number(rows ?? 2),
  onProgress: (p) => process.stdout.write(`done ${p.done}\n`), // units committed so far: the parent kills at a drawn count
});
store.close();
process.stdout.write(`${out.computed} ${out.reused}\n`);
