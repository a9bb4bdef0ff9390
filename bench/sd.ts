/**
 * Stable-Diffusion-sized U-Net throughput on this machine, and the overhead of memscope's
 * sampling engine over bare onnxruntime calls (`npm run bench -- sd`).
 *
 * Model: `buildDiffusersUnet` (src/models/unet.ts) with the architecture dimensions of SD
 * 1.x's `UNet2DConditionModel` (block_out_channels 320/640/1280/1280, 2 layers per block,
 * cross-attention in the first three levels and the mid block, 8 heads, GroupNorm 32, context
 * 77 × 768, time embedding 1280, 4 latent channels, 64 × 64 latents = 512 × 512 images), random
 * weights drawn with the project's seeded PyTorch-default init (`initParam`, seed
 * {@link WEIGHT_SEED}). The 3.4 GB of float32 weights exceed protobuf's 2 GB limit, so the model
 * is written with ONNX external data (`weights.pb` beside `model.onnx`) into a temporary folder
 * under `os.tmpdir()`, removed at the end. Weights are generated and written one parameter at a
 * time (never all in JS memory).
 *
 * Measured in one process, on one onnxruntime session (`createSession`, default threads):
 * - warmup: 1 batch-2 U-Net call;
 * - bare: `session.run` in a loop with the shapes CFG uses (sample [2,4,64,64], timestep [2],
 *   encoder_hidden_states [2,77,768]) at the sampler's timesteps, no engine;
 * - engine: one 512 × 512 image, `sample('ddim', …)` with SD 1.x's PNDM-style scheduler config
 *   (`stableDiffusionConfig()`), constant CFG 7.5 (`cfg`) over an `OnnxDenoiser` (conditions =
 *   one encoder_hidden_states row, uncond = another row), i.e. one batched cond+uncond call per step.
 * Interleaved: each engine step is paired with one bare call at the same timestep (alternately
 * before and after the engine's call), timed on its own and subtracted from the sampler's wall
 * time, so load from other processes hits both sides alike. Ratio = engine seconds / bare seconds
 * for the same number of U-Net calls (target ≤ 1.05). `loadavg` (1/5/15-minute load averages at
 * start and end; this bench alone adds about 2) tells how busy the machine was.
 *
 * Steps: `MEMSCOPE_BENCH_SD_STEPS` (default 50). Threads: `MEMSCOPE_THREADS` (default 2).
 */
import { closeSync, mkdtempSync, openSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import os, { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import p from 'onnx-proto';
import { GraphBuilder } from '../src/graph/builder.ts';
import { createSession, defaultThreads, type Session } from '../src/graph/session.ts';
import { paramFnFor, initParam, countParams } from '../src/models/init.ts';
import { buildDiffusersUnet, unetStats, type UnetConfigInput } from '../src/models/unet.ts';
import { OnnxDenoiser } from '../src/denoisers/onnx.ts';
import { cfg } from '../src/guidance/cfg.ts';
import { constant } from '../src/guidance/schedules.ts';
import { sample, samplerTimesteps } from '../src/samplers/index.ts';
import { stableDiffusionConfig } from '../src/schedules/config.ts';
import { TorchGenerator } from '../src/random/torch.ts';
import type { Tensor } from '../src/tensor/tensor.ts';
import type { EpsModel } from '../src/samplers/types.ts';

const { onnx } = p;

/** SD 1.x `UNet2DConditionModel` dimensions (CompVis/stable-diffusion-v1-4, runwayml/stable-diffusion-v1-5 `unet/config.json`). */
export const SD1_UNET_CONFIG: UnetConfigInput = {
  channels: [320, 640, 1280, 1280],
  layersPerLevel: 2,
  attentionLevels: [true, true, true, false],
  midAttention: true,
  heads: 8,
  groups: 32,
  normEps: 1e-5,
  contextDim: 768,
  contextLength: 77,
  timeEmbedDim: 1280,
  inChannels: 4,
  sampleSize: 64,
  conditioning: 'text',
};

/** diffusers' parameter count of SD 1.x's U-Net (`sum(p.numel() for p in unet.parameters())`). */
export const SD1_UNET_PARAMS = 859_520_964;

/** Seed of the random weights (`initParam(spec, WEIGHT_SEED)` for every parameter). */
export const WEIGHT_SEED = 0;

const ALIGN = 4096;
const INLINE_BELOW = 1024; // bytes; as onnx's size_threshold

/** What {@link writeSdUnet} wrote. */
export interface SdUnetFiles {
  /** Path of `model.onnx`. */
  readonly modelPath: string;
  /** Path of the external data file. */
  readonly dataPath: string;
  /** Scalar parameters written. */
  readonly params: number;
  /** Bytes of the data file. */
  readonly dataBytes: number;
  /** Bytes of `model.onnx`. */
  readonly modelBytes: number;
}

/**
 * Build the U-Net of `config` (diffusers signature, dynamic batch) and write it to
 * `<dir>/model.onnx` with every parameter of ≥ 1 kB in `<dir>/weights.pb` (ONNX external data,
 * offsets aligned to 4 kB). Parameters are declared as graph inputs while the graph is built, then
 * turned into initializers: each one is drawn with `initParam(spec, seed)` and appended to the data
 * file at once, so at most one parameter's values are held in memory.
 */
export function writeSdUnet(dir: string, config: UnetConfigInput, seed: number): SdUnetFiles {
  const b = new GraphBuilder({ name: 'unet' });
  const reg = paramFnFor(b, 'input');
  buildDiffusersUnet(b, config, reg.param, 'dynamic');
  const model = b.toModel();
  const graph = model.graph!;
  const paramNames = new Set(reg.specs.map((s) => s.name));
  graph.input = (graph.input ?? []).filter((i) => !paramNames.has(i.name ?? ''));
  const location = 'weights.pb';
  const dataPath = join(dir, location);
  const fd = openSync(dataPath, 'w');
  const inits = [...(graph.initializer ?? [])];
  let size = 0;
  try {
    for (const spec of reg.specs) {
      const v = initParam(spec, seed);
      const bytes = new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
      if (bytes.byteLength < INLINE_BELOW) {
        inits.push(onnx.TensorProto.create({ name: spec.name, dims: [...spec.dims], dataType: onnx.TensorProto.DataType.FLOAT, rawData: bytes }));
        continue;
      }
      const offset = Math.ceil(size / ALIGN) * ALIGN;
      let done = 0;
      while (done < bytes.byteLength) done += writeSync(fd, bytes, done, bytes.byteLength - done, offset + done);
      size = offset + bytes.byteLength;
      inits.push(
        onnx.TensorProto.create({
          name: spec.name,
          dims: [...spec.dims],
          dataType: onnx.TensorProto.DataType.FLOAT,
          dataLocation: onnx.TensorProto.DataLocation.EXTERNAL,
          externalData: [
            { key: 'location', value: location },
            { key: 'offset', value: String(offset) },
            { key: 'length', value: String(bytes.byteLength) },
          ],
        }),
      );
    }
  } finally {
    closeSync(fd);
  }
  graph.initializer = inits;
  const modelPath = join(dir, 'model.onnx');
  const encoded = onnx.ModelProto.encode(model).finish();
  writeFileSync(modelPath, encoded);
  return { modelPath, dataPath, params: countParams(reg.specs), dataBytes: statSync(dataPath).size, modelBytes: encoded.byteLength };
}

function stepsFromEnv(): number {
  const env = process.env['MEMSCOPE_BENCH_SD_STEPS'];
  if (env === undefined || env === '') return 50;
  const n = Number(env);
  if (!Number.isInteger(n) || n < 1) throw new Error(`MEMSCOPE_BENCH_SD_STEPS must be a positive integer, got '${env}'`);
  return n;
}

function median(v: readonly number[]): number {
  const s = [...v].sort((a, c) => a - c);
  return s.length % 2 ? s[s.length >> 1]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

const r3 = (x: number): number => Math.round(x * 1000) / 1000;
const r4 = (x: number): number => Math.round(x * 10000) / 10000;

/** Bare U-Net calls: `session.run` once per timestep; returns each call's seconds. */
async function bareCalls(session: Session, timesteps: readonly number[], latents: Float32Array, context: Float32Array): Promise<number[]> {
  const out: number[] = [];
  for (const t of timesteps) {
    const t0 = performance.now();
    const res = await session.run({
      sample: { dims: [2, 4, 64, 64], data: latents },
      timestep: { type: 'float32', dims: [2], data: [t, t] },
      encoder_hidden_states: { dims: [2, 77, 768], data: context },
    });
    out.push((performance.now() - t0) / 1000);
    if (res['out_sample']?.data.length !== latents.length) throw new Error('bench sd: unexpected U-Net output size');
  }
  return out;
}

/**
 * Run the SD-sized U-Net benchmark (see the module note) and return its JSON record: U-Net calls
 * per second at batch 2 (512 × 512, CFG), seconds per image for `MEMSCOPE_BENCH_SD_STEPS` DDIM
 * steps through memscope's engine, the bare time for the same calls, their ratio against the
 * target ≤ 1.05, parameter count, FLOPs per image and achieved GFLOP/s.
 */
export async function benchSd(): Promise<Record<string, unknown>> {
  const steps = stepsFromEnv();
  const loadStart = os.loadavg().map(r3);
  const threads = defaultThreads();
  const stats = unetStats(SD1_UNET_CONFIG);
  const dir = mkdtempSync(join(tmpdir(), 'memscope-bench-sd-'));
  let session: Session | null = null;
  try {
    process.stderr.write(`bench sd: building the SD 1.x-sized U-Net in ${dir}…\n`);
    const tb = performance.now();
    const files = writeSdUnet(dir, SD1_UNET_CONFIG, WEIGHT_SEED);
    const buildSeconds = (performance.now() - tb) / 1000;
    process.stderr.write(`bench sd: built in ${buildSeconds.toFixed(1)} s (${(files.dataBytes / 2 ** 30).toFixed(2)} GiB of weights); loading…\n`);
    const tl = performance.now();
    session = await createSession(files.modelPath, { threads });
    const loadSeconds = (performance.now() - tl) / 1000;

    // inputs: one prompt's encoder_hidden_states row and an uncond row (seeded normals, CLIP-like scale)
    const cond = new TorchGenerator(1).randn([1, 77, 768]);
    const uncond = new TorchGenerator(2).randn([1, 77, 768]);
    const context = new Float32Array(2 * 77 * 768);
    context.set(cond, 0);
    context.set(uncond, 77 * 768);
    const noise: Tensor = { dims: [1, 4, 64, 64], data: new TorchGenerator(3).randn([1, 4, 64, 64]) };
    const latents = new Float32Array(2 * 4 * 64 * 64);
    latents.set(noise.data, 0);
    latents.set(noise.data, noise.data.length);
    const config = stableDiffusionConfig();
    const timesteps = samplerTimesteps('ddim', config, steps);

    process.stderr.write(`bench sd: loaded in ${loadSeconds.toFixed(1)} s; warmup…\n`);
    const warmupSeconds = (await bareCalls(session, [timesteps[0]!], latents, context))[0]!;
    process.stderr.write(`bench sd: warmup call ${warmupSeconds.toFixed(2)} s; ${steps} bare calls and ${steps} engine steps…\n`);

    const denoiser = new OnnxDenoiser(session, {
      path: files.modelPath,
      name: 'sd1-unet (random weights)',
      conditions: { dims: [1, 77, 768], data: cond },
      uncond: { dims: [1, 77, 768], data: uncond },
      space: 'latent',
      shape: [4, 64, 64],
    });
    const guided = cfg(denoiser, constant(7.5), [0]);
    // Interleaved: each engine step is paired with one bare call at the same timestep (bare
    // first on even steps, after on odd ones), timed on its own and subtracted from the
    // sampler's wall time, so both sides see the same machine conditions.
    const bare: number[] = [];
    const paired: EpsModel = async (xt, info) => {
      if (info.step % 2 === 0) bare.push(...(await bareCalls(session!, [info.t], latents, context)));
      const out = await guided.model(xt, info);
      if (info.step % 2 === 1) bare.push(...(await bareCalls(session!, [info.t], latents, context)));
      if ((info.step + 1) % 10 === 0) process.stderr.write(`bench sd: step ${info.step + 1}/${steps}, last bare call ${bare[bare.length - 1]!.toFixed(2)} s\n`);
      return out;
    };
    const stepWall: number[] = [];
    let last = performance.now();
    const te = performance.now();
    const x0 = await sample('ddim', paired, noise, config, {
      steps,
      onStep: () => {
        const now = performance.now();
        stepWall.push((now - last) / 1000);
        last = now;
      },
    });
    const wallSeconds = (performance.now() - te) / 1000;
    let finite = true;
    for (const v of x0.data) if (!Number.isFinite(v)) finite = false;
    if (bare.length !== steps || stepWall.length !== steps) throw new Error(`bench sd: ${bare.length} bare calls and ${stepWall.length} steps for ${steps} steps`);
    const bareSeconds = bare.reduce((a, c) => a + c, 0);
    const engineSeconds = wallSeconds - bareSeconds;
    const stepTimes = stepWall.map((w, i) => w - bare[i]!);
    const ratio = engineSeconds / bareSeconds;
    const flopsPerCall = 2 * stats.forwardFlopsPerImage;
    const notes = [
      `weights: PyTorch-default init drawn per parameter with the project's seeded initParam (seed ${WEIGHT_SEED}); timing does not depend on the values`,
      'model written with ONNX external data (weights.pb, 4 kB-aligned) to a temp folder and deleted afterwards',
      'FLOPs = 2 × multiply-accumulates of convs, linears and attention matmuls (unetStats); norms, softmax and element-wise ops not counted',
      'engine = sample("ddim") + cfg(constant 7.5) + OnnxDenoiser: one batched cond+uncond U-Net call per step; bare = session.run with the same shapes; interleaved: one bare call per engine step (alternately before and after the engine call), engine seconds = sampler wall time − bare calls',
    ];
    if (files.params !== SD1_UNET_PARAMS) notes.push(`parameter count ${files.params} differs from diffusers' ${SD1_UNET_PARAMS}`);
    else notes.push(`parameter count equals diffusers' UNet2DConditionModel for SD 1.x (${SD1_UNET_PARAMS}); conv 1×1 proj_in/proj_out as SD 1.x (use_linear_projection false)`);
    if (steps !== 50) notes.push(`ran ${steps} steps, not 50: secondsPerImage50StepsExtrapolated = engine seconds × 50 / ${steps}`);
    return {
      what: 'SD 1.x-sized U-Net (random weights) at 512×512 on CPU: batch-2 (cond+uncond) U-Net calls/s, seconds per image through memscope (DDIM + CFG + OnnxDenoiser) vs bare session.run for the same calls',
      config: SD1_UNET_CONFIG,
      params: files.params,
      paramsDiffusersSd1: SD1_UNET_PARAMS,
      forwardFlopsPerImage: stats.forwardFlopsPerImage,
      forwardGflopsPerCall: r3(flopsPerCall / 1e9),
      threads,
      cpus: cpus().length,
      steps,
      sampler: 'ddim',
      guidance: 'constant:7.5',
      buildSeconds: r3(buildSeconds),
      modelBytes: files.modelBytes,
      weightsBytes: files.dataBytes,
      loadSeconds: r3(loadSeconds),
      warmupCalls: 1,
      warmupSeconds: r3(warmupSeconds),
      bareSeconds: r3(bareSeconds),
      bareSecondsPerCall: { mean: r3(bareSeconds / steps), median: r3(median(bare)), min: r3(Math.min(...bare)), max: r3(Math.max(...bare)) },
      unetCallsPerSecond: r4(steps / bareSeconds),
      achievedGflops: r3((flopsPerCall * steps) / bareSeconds / 1e9),
      engineSeconds: r3(engineSeconds),
      engineSecondsPerStep: { mean: r3(engineSeconds / steps), median: r3(median(stepTimes)), min: r3(Math.min(...stepTimes)), max: r3(Math.max(...stepTimes)) },
      secondsPerImage: r3(engineSeconds),
      ...(steps !== 50 ? { secondsPerImage50StepsExtrapolated: r3((engineSeconds * 50) / steps) } : {}),
      ratio: r4(ratio),
      ratioOfMedians: r4(median(stepTimes) / median(bare)),
      target: '≤ 1.05',
      met: ratio <= 1.05,
      outputFinite: finite,
      loadavg: { start: loadStart, end: os.loadavg().map(r3) },
      notes,
    };
  } finally {
    try {
      await session?.release();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
}
