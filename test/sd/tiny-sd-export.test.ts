/**
 * The tiny SD export writer (SPEC §7) and the external-data writer it relies on: layout and
 * sizes, external U-Net weights loaded by path (and equal to inline weights), the PNDM scheduler
 * config, the tokenizer files (pad per option), determinism of the seeded weights.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GraphBuilder } from '../../src/graph/builder.ts';
import { externalDataLocations, splitExternalData, writeModelWithExternalData } from '../../src/graph/external-data.ts';
import { type TypedFeed, createSession, disposeAll } from '../../src/graph/session.ts';
import { parseJsonLenient, parseSchedulerConfig, resolveDdimConfig } from '../../src/schedules/config.ts';
import { loadClipTokenizer } from '../../src/text/clip-tokenizer.ts';
import { type TinySdExportInfo, writeTinySdExport } from '../helpers/tiny-sd-export.ts';

const tmp = mkdtempSync(join(tmpdir(), 'memscope-tiny-sd-'));
let legacy: TinySdExportInfo;
let optimum: TinySdExportInfo;

beforeAll(() => {
  legacy = writeTinySdExport(join(tmp, 'legacy'), { variant: 'legacy', seed: 3 });
  optimum = writeTinySdExport(join(tmp, 'optimum'), { variant: 'optimum', seed: 3, predictionType: 'v_prediction', padToken: '!' });
});
afterAll(async () => {
  await disposeAll();
  rmSync(tmp, { recursive: true, force: true });
});

describe('external data writer', () => {
  it('moves large initializers to one file, leaves the builder intact, and onnxruntime loads it by path with the same result', async () => {
    const b = new GraphBuilder({ name: 'ext' });
    const x = b.input('x', 'float32', ['B', 300]);
    const w = b.initializer('w', Float32Array.from({ length: 300 * 3 }, (_, i) => Math.sin(i)), [300, 3]);
    const bias = b.initializer('bias', Float32Array.of(0.5, -1, 2), [3]); // 12 bytes: stays inline
    b.output(b.op('Add', [b.op('MatMul', [x, w]), bias]), 'float32', ['B', 3], 'y');
    const before = b.toBytes();
    const split = splitExternalData(b, { location: 'weights.pb' });
    expect(split.externalTensors).toEqual(['w']);
    expect(split.data.byteLength).toBe(300 * 3 * 4);
    expect(split.model.byteLength).toBeLessThan(1000);
    expect(b.toBytes()).toEqual(before);

    const path = join(tmp, 'ext', 'model.onnx');
    writeModelWithExternalData(b, path, { location: 'model.onnx_data' });
    expect(externalDataLocations(path)).toEqual(['model.onnx_data']);
    const xv = { dims: [2, 300], data: Float32Array.from({ length: 600 }, (_, i) => Math.cos(i / 7)) };
    const inline = await (await createSession(before, { threads: 1 })).run({ x: xv });
    const external = await (await createSession(path, { threads: 1 })).run({ x: xv });
    expect(Array.from(external['y']!.data)).toEqual(Array.from(inline['y']!.data));
  });
});

describe('writeTinySdExport', () => {
  it('writes the SPEC §7 layout, a few hundred kB, with the U-Net weights external (weights.pb / model.onnx_data)', () => {
    const common = [
      'model_index.json',
      'scheduler/scheduler_config.json',
      'text_encoder/model.onnx',
      'tokenizer/merges.txt',
      'tokenizer/special_tokens_map.json',
      'tokenizer/tokenizer_config.json',
      'tokenizer/vocab.json',
      'unet/model.onnx',
      'vae_decoder/model.onnx',
      'vae_encoder/model.onnx',
    ];
    expect(legacy.files).toEqual([...common, 'unet/weights.pb'].sort());
    expect(optimum.files).toEqual([...common, 'unet/config.json', 'unet/model.onnx_data', 'vae_decoder/config.json', 'vae_encoder/config.json'].sort());
    for (const info of [legacy, optimum]) {
      for (const f of info.files) expect(existsSync(join(info.dir, f))).toBe(true);
      expect(info.bytes).toBeLessThan(3_000_000);
      expect(info).toMatchObject({ hiddenSize: 32, latentChannels: 4, imageSize: 64, latentSize: 8, sequenceLength: 77, dtype: 'float32' });
    }
    expect(legacy.timestep).toBe('int64-batch');
    expect(optimum.timestep).toBe('float32-scalar');
    expect(externalDataLocations(join(legacy.dir, 'unet/model.onnx'))).toEqual(['weights.pb']);
    expect(externalDataLocations(join(optimum.dir, 'unet/model.onnx'))).toEqual(['model.onnx_data']);
    // the graph file is small, the weights are beside it
    expect(statSync(join(legacy.dir, 'unet/model.onnx')).size).toBeLessThan(statSync(join(legacy.dir, 'unet/weights.pb')).size / 4);
    const mi = (i: TinySdExportInfo): Record<string, unknown> => JSON.parse(readFileSync(join(i.dir, 'model_index.json'), 'utf8')) as Record<string, unknown>;
    expect(mi(legacy)['_class_name']).toBe('OnnxStableDiffusionPipeline');
    expect(mi(optimum)['_class_name']).toBe('StableDiffusionPipeline');
    expect(mi(optimum)['vae_encoder']).toBeUndefined();
  });

  it('writes a real-style PNDM scheduler config that memscope parses (prediction type per option)', () => {
    const cfg = (i: TinySdExportInfo) => parseSchedulerConfig(parseJsonLenient(readFileSync(join(i.dir, 'scheduler/scheduler_config.json'), 'utf8')));
    const c = cfg(legacy);
    expect(c).toMatchObject({
      _class_name: 'PNDMScheduler',
      beta_schedule: 'scaled_linear',
      beta_start: 0.00085,
      beta_end: 0.012,
      num_train_timesteps: 1000,
      clip_sample: false,
      set_alpha_to_one: false,
      steps_offset: 1,
      skip_prk_steps: true,
      prediction_type: 'epsilon',
    });
    expect(resolveDdimConfig(c)).toMatchObject({ clipSample: false, setAlphaToOne: false });
    expect(cfg(optimum).prediction_type).toBe('v_prediction');
  });

  it('writes CLIP tokenizer files: words of the tiny vocabulary are single tokens, eos is the last id, pad per option', () => {
    const tl = loadClipTokenizer(join(legacy.dir, 'tokenizer'));
    const to = loadClipTokenizer(join(optimum.dir, 'tokenizer'));
    expect(tl.source).toBe('vocab.json+merges.txt');
    expect(tl.tokenize('A photo of a CAT')).toEqual(['a</w>', 'photo</w>', 'of</w>', 'a</w>', 'cat</w>']);
    expect(tl.eosId).toBe(legacy.vocabSize - 1);
    expect(tl.bosId).toBe(legacy.vocabSize - 2);
    const el = tl.encode('a cat');
    expect(el.ids.length).toBe(77);
    expect(el.ids[3]).toBe(tl.eosId);
    expect(el.ids[76]).toBe(tl.eosId); // SD 1.x pads with <|endoftext|>
    expect(to.padId).toBe(0); // '!' = byte 33 = id 0
    expect(to.encode('a cat').ids[76]).toBe(0);
  });

  it('is deterministic: the same seed gives identical files, another seed other weights', () => {
    const again = writeTinySdExport(join(tmp, 'again'), { variant: 'legacy', seed: 3 });
    const other = writeTinySdExport(join(tmp, 'other'), { variant: 'legacy', seed: 4 });
    for (const f of legacy.files) expect(readFileSync(join(again.dir, f)).equals(readFileSync(join(legacy.dir, f)))).toBe(true);
    expect(readFileSync(join(other.dir, 'unet/weights.pb')).equals(readFileSync(join(legacy.dir, 'unet/weights.pb')))).toBe(false);
    expect(readFileSync(join(other.dir, 'tokenizer/vocab.json')).equals(readFileSync(join(legacy.dir, 'tokenizer/vocab.json')))).toBe(true);
  });

  it('rejects sizes the tiny U-Net cannot take', () => {
    expect(() => writeTinySdExport(join(tmp, 'bad'), { imageSize: 40 })).toThrow(/multiple of 16/);
    expect(() => writeTinySdExport(join(tmp, 'bad'), { hiddenSize: 33 })).toThrow(/hiddenSize/);
  });

  it("spatial 'dynamic': sample / out_sample [batch, C, height, width] as real exports, the same ε as the static U-Net at its size, and other sizes run", async () => {
    for (const [variant, layout] of [['legacy', 'batch-heads'], ['optimum', 'heads']] as const) {
      const st = writeTinySdExport(join(tmp, `st-${variant}`), { variant, seed: 6, attentionLayout: layout });
      const dy = writeTinySdExport(join(tmp, `dy-${variant}`), { variant, seed: 6, attentionLayout: layout, spatial: 'dynamic' });
      const a = await createSession(join(st.dir, 'unet', 'model.onnx'));
      const b = await createSession(join(dy.dir, 'unet', 'model.onnx'));
      expect(a.input('sample').shape).toEqual(['batch', 4, 8, 8]);
      expect(b.input('sample').shape).toEqual(['batch', 4, 'height', 'width']);
      expect(b.outputs[0]!.shape).toEqual(['batch', 4, 'height', 'width']);
      const feed = (h: number): Record<string, TypedFeed> => ({
        sample: { type: 'float32', dims: [2, 4, h, h], data: Float32Array.from({ length: 2 * 4 * h * h }, (_, i) => Math.sin(0.13 * i)) },
        timestep: variant === 'legacy' ? { type: 'int64', dims: [2], data: BigInt64Array.from([501n, 21n]) } : { type: 'float32', dims: [], data: Float32Array.from([501]) },
        encoder_hidden_states: { type: 'float32', dims: [2, 77, 32], data: Float32Array.from({ length: 2 * 77 * 32 }, (_, i) => Math.cos(0.07 * i)) },
      });
      const ya = (await a.run(feed(8)))['out_sample']!;
      const yb = (await b.run(feed(8)))['out_sample']!;
      expect(Array.from(yb.data)).toEqual(Array.from(ya.data));
      const y16 = (await b.run(feed(16)))['out_sample']!;
      expect(y16.dims).toEqual([2, 4, 16, 16]);
      expect(y16.data.every((v) => Number.isFinite(v))).toBe(true);
      await a.release();
      await b.release();
    }
    expect(() => writeTinySdExport(join(tmp, 'bad'), { spatial: 'fixed' as 'static' })).toThrow(/spatial must be 'static' or 'dynamic'/);
  });
});
