/**
 * Training throughput (images/s) of memscope's trained testbed model against the same
 * architecture in PyTorch, same batch, same threads, measured in the same bench run (issue
 * figure: ≥ 0.5× PyTorch, goal 1×).
 *
 * Model: the text encoder + conditional U-Net of `buildTrainingGraph`
 * (src/models/diffusion-model.ts) as `memscope train` builds it (`defaultModelConfig`): 32×32×1
 * images, three levels with Transformer blocks (self- + cross-attention, GEGLU) at the two lower
 * levels and in the mid block, a 1-layer width-64 text encoder over 16 tokens, ε-prediction MSE.
 * Two sizes: channels [16, 32, 32] and [32, 64, 64]. Batch 64, 2 threads.
 *
 * One step, both sides: forward, backward (all parameter gradients), global gradient-norm clipping
 * to 1 and an AdamW update (lr 1e-3, weight decay 0, biases/norms/embeddings in the no-decay
 * group: `memscope train`'s defaults), on one fixed batch (no data loading, no EMA).
 * - memscope: the gradient graph of `gradientGraph` (src/graph/autodiff.ts) run by onnxruntime
 *   (`createSession`, 2 intra-op threads), then `clipCoefficient` + `AdamW.step` of
 *   src/optim/adamw.ts on the Float32Array parameters, exactly as src/train/run.ts does.
 * - PyTorch 1.13 CPU (`/usr/bin/python3`, `torch.set_num_threads(2)`):
 *   scripts/reference/unet_torch.py, the same modules written with nn.Conv2d/nn.Linear/
 *   nn.GroupNorm/…, `loss.backward()`, `clip_grad_norm_`, `torch.optim.AdamW`.
 *
 * The peer gets memscope's initial parameters and the batch through a temporary float32 file, so
 * both sides train the same numbers; before timing it reports the loss and global gradient norm of
 * that state, which must equal memscope's (a check that the two graphs compute the same function).
 * The parameter counts (and every parameter's name and shape) must match, or the bench throws.
 *
 * Steps are timed one by one after warmup; images/s = batch / median step time. Rounds alternate
 * memscope and PyTorch (default 1 round: memscope, then PyTorch).
 *
 * Standalone: `node --import tsx bench/train.ts [--steps N] [--warmup N] [--batch N] [--rounds N]
 * [--config small|base]` prints the JSON.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { createSession, type Feed } from '../src/graph/session.ts';
import { gradientGraph } from '../src/graph/autodiff.ts';
import { alphaBars, betas } from '../src/schedules/betas.ts';
import { Mt19937 } from '../src/random/torch.ts';
import { buildTrainingGraph, DiffusionModelConfigSchema, type DiffusionModelConfig } from '../src/models/diffusion-model.ts';
import { countParams, initParams } from '../src/models/init.ts';
import { unetStats } from '../src/models/unet.ts';
import { textEncoderStats } from '../src/models/text-encoder.ts';
import { AdamW, clipCoefficient, gradNorm } from '../src/optim/adamw.ts';
import { noiseBatch } from '../src/train/noise.ts';
import { gemmPeak, type GemmPeak } from './peak.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const PEER_SCRIPT = join(root, 'scripts', 'reference', 'unet_torch.py');
const PYTHON = '/usr/bin/python3';

/** A benchmarked U-Net size. */
export interface TrainBenchModel {
  readonly name: string;
  readonly channels: readonly number[];
}

/** The two sizes of the issue: channels [16, 32, 32] and [32, 64, 64] (attention at the two lower levels). */
export const TRAIN_BENCH_MODELS: readonly TrainBenchModel[] = [
  { name: 'small', channels: [16, 32, 32] },
  { name: 'base', channels: [32, 64, 64] },
];

/** Options of {@link benchTrain}. */
export interface TrainBenchOptions {
  /** Batch size (default 64). */
  readonly batch?: number;
  /** Timed steps per side and round (default 10). */
  readonly steps?: number;
  /** Untimed warmup steps per side and round (default 3). */
  readonly warmup?: number;
  /** Alternations memscope → PyTorch (default 1). */
  readonly rounds?: number;
  /** Threads on both sides (default 2). */
  readonly threads?: number;
  /** Which sizes (default both). */
  readonly models?: readonly TrainBenchModel[];
  /** Vocabulary of the text encoder (default 64; a scenario's tokenizer has a few dozen words). */
  readonly vocabSize?: number;
}

const LR = 1e-3;
const WEIGHT_DECAY = 0;
const CLIP_NORM = 1;

function median(v: readonly number[]): number {
  if (v.length === 0) return NaN;
  const s = [...v].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}
function mean(v: readonly number[]): number {
  return v.length ? v.reduce((a, b) => a + b, 0) / v.length : NaN;
}
const round3 = (x: number): number => Math.round(x * 1000) / 1000;

/** The model `memscope train` builds for a text scenario (`defaultModelConfig`), at these channels. */
export function benchModelConfig(channels: readonly number[], vocabSize = 64): DiffusionModelConfig {
  return DiffusionModelConfigSchema.parse({
    unet: { channels: [...channels], attentionLevels: [false, true, true], conditioning: 'text', contextDim: 64, contextLength: 16 },
    textEncoder: { vocabSize, width: 64, maxLength: 16, layers: 1, heads: 4 },
  });
}

/** Forward multiply-accumulates per image of a model: the U-Net's convs, linears and attention matmuls plus the text encoder's. */
export function forwardMacs(model: DiffusionModelConfig): number {
  return unetStats(model.unet).forwardMacsPerImage + (model.textEncoder ? textEncoderStats(model.textEncoder).forwardMacsPerPrompt : 0);
}

/** The feeds of one training step: a batch of {@link makeBatch} (token ids as int64) and every parameter's values. */
export function stepFeeds(batch: ReadonlyMap<string, { dims: number[]; data: Float32Array }>, specs: readonly { name: string; dims: readonly number[] }[], params: ReadonlyMap<string, Float32Array>): Record<string, Feed> {
  const feeds: Record<string, Feed> = {};
  for (const [k, v] of batch) feeds[k] = k === 'ids' ? { type: 'int64', dims: v.dims, data: v.data } : v;
  for (const p of specs) feeds[p.name] = { dims: p.dims, data: params.get(p.name)! };
  return feeds;
}

/** A fixed training batch: x0 uniform in [−1, 1], VP noise levels and noise from `noiseBatch`, random token ids. */
export function makeBatch(model: DiffusionModelConfig, B: number): Map<string, { dims: number[]; data: Float32Array }> {
  const { inChannels: C, sampleSize: S } = model.unet;
  const eng = new Mt19937(12345);
  const x0 = new Float32Array(B * C * S * S);
  for (let i = 0; i < x0.length; i++) x0[i] = ((eng.nextU32() & 0xffffff) / 16777216) * 2 - 1;
  const alphaBar = alphaBars(betas('scaled_linear', { betaStart: 0.00085, betaEnd: 0.012 }));
  const nb = noiseBatch({ dims: [B, C, S, S], data: x0 }, { seed: 0, step: 0, alphaBar, sampling: { kind: 'vp' } });
  const out = new Map<string, { dims: number[]; data: Float32Array }>([
    ['x0', { dims: [B, C, S, S], data: x0 }],
    ['noise', { dims: [B, C, S, S], data: nb.eps.data }],
    ['timestep', { dims: [B], data: Float32Array.from(nb.t) }],
    ['sqrt_alpha_bar', { dims: [B, 1, 1, 1], data: nb.sqrtAlphaBar }],
    ['sqrt_one_minus_alpha_bar', { dims: [B, 1, 1, 1], data: nb.sqrtOneMinusAlphaBar }],
    ['weight', { dims: [B], data: Float32Array.from(nb.weight) }],
  ]);
  if (model.textEncoder) {
    const L = model.textEncoder.maxLength;
    const V = model.textEncoder.vocabSize;
    const ids = new Float32Array(B * L); // [start, words…, end, pad…] like WordTokenizer.encode
    for (let r = 0; r < B; r++) {
      const words = 2 + (eng.nextU32() % (L - 3));
      ids[r * L] = 2;
      for (let k = 1; k <= words; k++) ids[r * L + k] = 4 + (eng.nextU32() % (V - 4));
      ids[r * L + words + 1] = 3;
    }
    out.set('ids', { dims: [B, L], data: ids });
  }
  return out;
}

interface PeerResult {
  readonly params: number;
  readonly torch: string;
  readonly threads: number;
  /** The BLAS libraries mapped into the peer process (Debian torch runs on whichever libblas.so.3 alternative is set: reference BLAS ≈ 30× slower than OpenBLAS). */
  readonly blas?: readonly string[];
  readonly msPerStep: number;
  readonly stepsMs: number[];
  readonly shapes: Record<string, number[]>;
  readonly check?: { loss: number; gradNorm: number };
  readonly error?: string;
}

/** Why the peer cannot run, or null when `/usr/bin/python3` has torch. */
function peerUnavailable(): string | null {
  if (!existsSync(PYTHON)) return `${PYTHON} not found`;
  if (!existsSync(PEER_SCRIPT)) return `${PEER_SCRIPT} not found`;
  const r = spawnSync(PYTHON, ['-c', 'import torch'], { encoding: 'utf8' });
  if (r.status !== 0) return `${PYTHON} cannot import torch: ${(r.stderr || r.error?.message || '').trim().split('\n').slice(-1)[0]}`;
  return null;
}

function runPeer(cfg: Record<string, unknown>, threads: number): PeerResult {
  const n = String(threads);
  const env = { ...process.env, OMP_NUM_THREADS: n, MKL_NUM_THREADS: n, OPENBLAS_NUM_THREADS: n };
  const r = spawnSync(PYTHON, [PEER_SCRIPT, '-'], { input: JSON.stringify(cfg), encoding: 'utf8', env, maxBuffer: 64 * 1024 * 1024 });
  const last = r.stdout?.trim().split('\n').slice(-1)[0] ?? '';
  let j: PeerResult | undefined;
  try {
    j = JSON.parse(last) as PeerResult;
  } catch {
    j = undefined;
  }
  if (r.status !== 0 || j === undefined) {
    const why = j?.error ?? ((r.stderr || r.error?.message || '').trim().split('\n').slice(-3).join(' | ') || `exit status ${r.status}`);
    throw new Error(`bench train: the PyTorch peer failed: ${why}`);
  }
  return j;
}

/** Names and shapes that differ between memscope's parameters and the peer's (memscope layout). */
function shapeDiffs(mine: ReadonlyMap<string, readonly number[]>, theirs: Record<string, number[]>): string[] {
  const out: string[] = [];
  for (const [n, d] of mine) {
    const t = theirs[n];
    if (t === undefined) out.push(`${n} [${d.join(',')}] missing in PyTorch`);
    else if (t.join(',') !== d.join(',')) out.push(`${n}: memscope [${d.join(',')}] vs PyTorch [${t.join(',')}]`);
  }
  for (const [n, t] of Object.entries(theirs)) if (!mine.has(n)) out.push(`${n} [${t.join(',')}] only in PyTorch`);
  return out;
}

async function benchOne(m: TrainBenchModel, o: Required<Omit<TrainBenchOptions, 'models'>>, peerSkip: string | null, peak: GemmPeak): Promise<Record<string, unknown>> {
  const B = o.batch;
  const model = benchModelConfig(m.channels, o.vocabSize);
  const t0 = performance.now();
  const g = buildTrainingGraph(model, B);
  const wrt = g.specs.map((p) => p.name);
  const gradBytes = gradientGraph(g.bytes, { loss: g.loss, wrt, inputShapes: g.inputShapes });
  const t1 = performance.now();
  const session = await createSession(gradBytes, { threads: o.threads });
  const t2 = performance.now();
  const nParams = countParams(g.specs);

  const params = new Map(initParams(g.specs, 0).values);
  const batch = makeBatch(model, B);
  const adam = new AdamW(g.specs, { lr: LR, weightDecay: WEIGHT_DECAY });
  const gradNames = wrt.map((n) => `grad/${n}`);
  const feeds = stepFeeds(batch, g.specs, params);

  // the peer's state: memscope's initial parameters and the batch (before any update)
  const dir = await mkdtemp(join(tmpdir(), 'memscope-bench-train-'));
  const stateFile = join(dir, 'state.f32');
  const tensors: { name: string; dims: readonly number[]; data: Float32Array }[] = [
    ...g.specs.map((p) => ({ name: p.name, dims: p.dims, data: params.get(p.name)! })),
    ...[...batch].map(([name, v]) => ({ name, dims: v.dims, data: v.data })),
  ];
  await writeFile(stateFile, Buffer.concat(tensors.map((t) => Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength))));

  let check: { loss: number; gradNorm: number } | undefined;
  const runMs: number[] = [];
  const optMs: number[] = [];
  const step = async (timed: boolean): Promise<number> => {
    const s0 = performance.now();
    const out = await session.run(feeds, ['loss', ...gradNames]);
    const s1 = performance.now();
    const grads = new Map<string, Float32Array>();
    wrt.forEach((n, i) => grads.set(n, out[gradNames[i]!]!.data));
    if (check === undefined) check = { loss: out['loss']!.data[0]!, gradNorm: gradNorm(grads.values()) };
    const { scale } = clipCoefficient(grads.values(), CLIP_NORM);
    adam.step(params, grads, { lr: LR, gradScale: scale });
    const s2 = performance.now();
    if (timed) {
      runMs.push(s1 - s0);
      optMs.push(s2 - s1);
    }
    return s2 - s0;
  };

  const mine: number[] = [];
  const theirs: number[] = [];
  let peer: PeerResult | undefined;
  try {
    for (let r = 0; r < o.rounds; r++) {
      for (let i = 0; i < o.warmup; i++) await step(false);
      if (r === 0 && o.warmup === 0) await step(false); // the check needs the first step untimed
      for (let i = 0; i < o.steps; i++) mine.push(await step(true));
      if (peerSkip === null) {
        const cfg = {
          unet: model.unet,
          textEncoder: model.textEncoder ?? null,
          batch: B,
          steps: o.steps,
          warmup: o.warmup,
          threads: o.threads,
          lr: LR,
          weightDecay: WEIGHT_DECAY,
          clipNorm: CLIP_NORM,
          noDecay: g.specs.filter((p) => p.noDecay === true).map((p) => p.name),
          expectParams: nParams,
          state: { file: stateFile, tensors: tensors.map((t) => ({ name: t.name, dims: t.dims })) },
        };
        const p = runPeer(cfg, o.threads);
        if (r === 0) {
          peer = p;
          const diffs = shapeDiffs(new Map(g.specs.map((s) => [s.name, s.dims])), p.shapes);
          if (p.params !== nParams || diffs.length > 0) {
            throw new Error(`bench train (${m.name}): parameter mismatch: memscope ${nParams}, PyTorch ${p.params}; ${diffs.slice(0, 10).join('; ')}`);
          }
        }
        theirs.push(...p.stepsMs);
      }
    }
  } finally {
    await session.release();
    await rm(dir, { recursive: true, force: true });
  }

  const ms = median(mine);
  const ips = B / (ms / 1000);
  const macs = forwardMacs(model);
  const gflops = (msPerStep: number): number => (6 * macs * B) / (msPerStep / 1000) / 1e9;
  const res: Record<string, unknown> = {
    model: m.name,
    unet: { channels: model.unet.channels, attentionLevels: model.unet.attentionLevels, midAttention: model.unet.midAttention, groups: model.unet.groups, heads: model.unet.heads, timeEmbedDim: model.unet.timeEmbedDim, contextDim: model.unet.contextDim, contextLength: model.unet.contextLength },
    textEncoder: model.textEncoder,
    batch: B,
    params: { memscope: nParams, ...(peer ? { pytorch: peer.params, match: peer.params === nParams } : {}) },
    // forward multiply-accumulates per image (convs, linears, attention matmuls), U-Net + text encoder
    forwardMacsPerImage: macs,
    // achieved FLOP/s of a whole step (≈ 3 × the forward's 2·MACs: backward ≈ 2× forward) and of the session alone, vs the sgemm peak of this run
    flops: {
      stepGflops: round3(gflops(ms)),
      sessionGflops: round3(gflops(median(runMs))),
      ...('gflops' in peak ? { stepFractionOfPeak: round3(gflops(ms) / peak.gflops), sessionFractionOfPeak: round3(gflops(median(runMs)) / peak.gflops) } : {}),
    },
    memscope: {
      imagesPerSecond: round3(ips),
      msPerStep: round3(ms),
      msPerStepMean: round3(mean(mine)),
      stepsMs: mine.map(round3),
      gradientGraphMsPerStep: round3(median(runMs)),
      optimizerMsPerStep: round3(median(optMs)),
      gradientGraphBuildMs: round3(t1 - t0),
      sessionCreateMs: round3(t2 - t1),
    },
  };
  if (peerSkip !== null) {
    res['peer'] = { skipped: peerSkip };
  } else if (peer) {
    const tms = median(theirs);
    const tips = B / (tms / 1000);
    res['peer'] = { name: 'PyTorch', version: peer.torch, threads: peer.threads, blas: peer.blas, imagesPerSecond: round3(tips), msPerStep: round3(tms), msPerStepMean: round3(mean(theirs)), stepsMs: theirs.map(round3) };
    res['throughputRatio'] = round3(ips / tips);
    if (check && peer.check) {
      const relLoss = Math.abs(check.loss - peer.check.loss) / Math.abs(peer.check.loss);
      const relNorm = Math.abs(check.gradNorm - peer.check.gradNorm) / Math.abs(peer.check.gradNorm);
      res['sameFunction'] = { memscope: check, pytorch: peer.check, relLossDiff: relLoss, relGradNormDiff: relNorm };
      if (!(relLoss < 1e-4 && relNorm < 1e-3)) {
        throw new Error(`bench train (${m.name}): memscope and PyTorch disagree on the first step (loss ${check.loss} vs ${peer.check.loss}, gradient norm ${check.gradNorm} vs ${peer.check.gradNorm}): not the same architecture`);
      }
    }
  }
  return res;
}

/**
 * Training throughput of memscope (onnxruntime gradient graph + AdamW of src/optim/adamw.ts)
 * against PyTorch on the same model, batch and threads (see the module note). Returns per size the
 * images/s of both, their ratio, the parameter counts and the first-step agreement; throws if the
 * two models differ. The PyTorch side is skipped with a note when `/usr/bin/python3` lacks torch.
 */
export async function benchTrain(opts: TrainBenchOptions = {}): Promise<Record<string, unknown>> {
  const o = {
    batch: opts.batch ?? 64,
    steps: opts.steps ?? 10,
    warmup: opts.warmup ?? 3,
    rounds: opts.rounds ?? 1,
    threads: opts.threads ?? 2,
    vocabSize: opts.vocabSize ?? 64,
  };
  for (const [k, v] of Object.entries(o)) if (!Number.isInteger(v) || v < (k === 'warmup' ? 0 : 1)) throw new Error(`benchTrain: ${k} must be a positive integer, got ${v}`);
  const peerSkip = peerUnavailable();
  const peak = gemmPeak(o.threads);
  const results: Record<string, unknown>[] = [];
  for (const m of opts.models ?? TRAIN_BENCH_MODELS) results.push(await benchOne(m, o, peerSkip, peak));
  const ratios = results.map((r) => r['throughputRatio']).filter((x): x is number => typeof x === 'number');
  return {
    what: 'training throughput (images/s) of the text encoder + conditional U-Net of `memscope train` (32×32×1, attention at the two lower levels and mid, 1-layer text encoder, ε-MSE): one step = forward + backward + gradient clipping (1.0) + AdamW (lr 1e-3, wd 0) on a fixed batch; memscope: onnxruntime gradient graph + src/optim/adamw.ts; PyTorch: scripts/reference/unet_torch.py; same initial parameters, batch and thread count',
    batch: o.batch,
    threads: o.threads,
    steps: o.steps,
    warmup: o.warmup,
    rounds: o.rounds,
    peak,
    models: results,
    ...(ratios.length ? { minThroughputRatio: Math.min(...ratios) } : {}),
    target: 'throughputRatio ≥ 0.5 (memscope images/s ÷ PyTorch images/s), goal 1',
  };
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  const { values } = parseArgs({
    options: {
      steps: { type: 'string' },
      warmup: { type: 'string' },
      batch: { type: 'string' },
      rounds: { type: 'string' },
      threads: { type: 'string' },
      config: { type: 'string', multiple: true },
    },
  });
  const num = (v: string | undefined): number | undefined => (v === undefined ? undefined : Number(v));
  const pick = values.config?.map((n) => {
    const m = TRAIN_BENCH_MODELS.find((x) => x.name === n);
    if (!m) throw new Error(`bench/train.ts: unknown --config "${n}"; expected ${TRAIN_BENCH_MODELS.map((x) => x.name).join(', ')}`);
    return m;
  });
  const opts: TrainBenchOptions = {
    ...(num(values.steps) !== undefined ? { steps: num(values.steps)! } : {}),
    ...(num(values.warmup) !== undefined ? { warmup: num(values.warmup)! } : {}),
    ...(num(values.batch) !== undefined ? { batch: num(values.batch)! } : {}),
    ...(num(values.rounds) !== undefined ? { rounds: num(values.rounds)! } : {}),
    ...(num(values.threads) !== undefined ? { threads: num(values.threads)! } : {}),
    ...(pick ? { models: pick } : {}),
  };
  process.stdout.write(JSON.stringify(await benchTrain(opts), null, 2) + '\n');
}
