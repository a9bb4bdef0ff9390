/**
 * Composable ONNX layer builders for the small trained denoisers (SPEC §2.3, §6 "Trained"): conv,
 * linear, GroupNorm, LayerNorm, SiLU, GELU, nearest up-sampling, multi-head attention and the
 * diffusers sinusoidal timestep embedding. Each builder adds nodes to a {@link GraphBuilder},
 * declares its parameters through a {@link ParamFn} and returns the name of its output value.
 *
 * Contract with the graph differentiator (`src/graph/autodiff.ts`): these builders use only
 * Conv (2-D, group 1), MatMul, Add, Sub, Mul, Div, Pow (constant exponent 3), Sqrt, Tanh,
 * Sigmoid, Softmax (last axis), ReduceMean (axes attribute), Reshape, Transpose, Concat, Split
 * (explicit `split` input), Gather (axis 0), Resize (nearest ×2), Sin and Cos. Every Reshape
 * target has `-1` (dynamic batch) or the build-time batch size in position 0 and fixed sizes
 * elsewhere, so every shape is static given the batch size.
 *
 * Parameter layout and initialisation follow PyTorch defaults (`kaiming_uniform_(a=√5)` for
 * weights ⇒ U(±1/√fan_in), bias U(±1/√fan_in), norms ones/zeros), except that linear weights are
 * stored `[in, out]` (the transpose of `torch.nn.Linear.weight`) so that a linear layer is one
 * MatMul on inputs of any rank. Conv weights are `[out, in, k, k]` as in PyTorch.
 */
import type { GraphBuilder } from '../graph/builder.ts';
import type { ParamFn, ParamInit } from './params.ts';

/** Batch size of a graph: a build-time number (training graphs) or `'dynamic'` (inference/export graphs). */
export type BatchDim = number | 'dynamic';

/** The value a Reshape target holds in the batch position: the batch size, or `-1` when dynamic. */
export function batchDim(batch: BatchDim): number {
  if (batch === 'dynamic') return -1;
  if (!Number.isInteger(batch) || batch < 1) throw new Error(`batch must be a positive integer or 'dynamic', got ${batch}`);
  return batch;
}

/**
 * A running count of multiply-accumulates per image (per sequence for the text encoder). Layers
 * add to it when one is passed; element-wise ops, norms and softmax are not counted.
 */
export interface MacTally {
  macs: number;
}

/** PyTorch's default weight init for conv/linear (`kaiming_uniform_(a=√5)`): U(±1/√fan_in); also its default bias init. */
export function torchDefaultInit(fanIn: number): ParamInit {
  return { kind: 'uniform', bound: 1 / Math.sqrt(fanIn) };
}

/** Reshape `x` to `dims` (a constant int64 target). */
export function reshape(b: GraphBuilder, x: string, dims: readonly number[]): string {
  return b.op('Reshape', [x, b.constI64(dims)]);
}

/** Options of {@link conv2d}. */
export interface Conv2dOptions {
  /** Kernel size (default 3). */
  readonly k?: number;
  /** Stride (default 1). */
  readonly stride?: number;
  /** Symmetric zero padding (default `k >> 1`, "same" for odd k at stride 1). */
  readonly pad?: number;
  /** Add a bias (default true). */
  readonly bias?: boolean;
  /** Initialise weight and bias to zero instead of PyTorch's default (default false). */
  readonly zeroInit?: boolean;
  /** MAC tally to add to; needs {@link Conv2dOptions.hw}. */
  readonly tally?: MacTally;
  /** Input spatial size `[H, W]` (only for the tally). */
  readonly hw?: readonly [number, number];
}

/** Output size of a conv along one axis: `⌊(n + 2·pad − k) / stride⌋ + 1`. */
export function convOut(n: number, k: number, stride: number, pad: number): number {
  return Math.floor((n + 2 * pad - k) / stride) + 1;
}

/**
 * 2-D convolution `[B, cin, H, W] → [B, cout, H', W']` (torch `nn.Conv2d(cin, cout, k, stride,
 * pad)`): parameters `<name>.weight` `[cout, cin, k, k]` and `<name>.bias` `[cout]`, both
 * U(±1/√(cin·k²)) (PyTorch default) unless `zeroInit`. Defaults: k = 3, stride 1, pad k >> 1.
 */
export function conv2d(b: GraphBuilder, param: ParamFn, name: string, x: string, cin: number, cout: number, opts: Conv2dOptions = {}): string {
  const k = opts.k ?? 3;
  const stride = opts.stride ?? 1;
  const pad = opts.pad ?? k >> 1;
  const init: ParamInit = opts.zeroInit === true ? { kind: 'zeros' } : torchDefaultInit(cin * k * k);
  const w = param(`${name}.weight`, [cout, cin, k, k], init);
  const inputs = [x, w];
  if (opts.bias !== false) inputs.push(param(`${name}.bias`, [cout], init, { noDecay: true }));
  if (opts.tally !== undefined) {
    if (opts.hw === undefined) throw new Error(`conv2d '${name}': a MAC tally needs hw`);
    const ho = convOut(opts.hw[0], k, stride, pad);
    const wo = convOut(opts.hw[1], k, stride, pad);
    opts.tally.macs += cout * cin * k * k * ho * wo;
  }
  return b.op('Conv', inputs, { kernel_shape: [k, k], strides: [stride, stride], pads: [pad, pad, pad, pad], dilations: [1, 1], group: 1 });
}

/** Options of {@link linear}. */
export interface LinearOptions {
  /** Add a bias (default true). */
  readonly bias?: boolean;
  /** Initialise to zero instead of PyTorch's default (default false). */
  readonly zeroInit?: boolean;
  /** MAC tally to add to. */
  readonly tally?: MacTally;
  /** Rows per image the layer is applied to (tokens; default 1), for the tally. */
  readonly rows?: number;
}

/**
 * Linear layer on the last axis, `[..., cin] → [..., cout]` (torch `nn.Linear(cin, cout)`), as
 * MatMul + Add: `<name>.weight` `[cin, cout]` (transposed w.r.t. torch) and `<name>.bias`
 * `[cout]`, both U(±1/√cin) (PyTorch default).
 */
export function linear(b: GraphBuilder, param: ParamFn, name: string, x: string, cin: number, cout: number, opts: LinearOptions = {}): string {
  const init: ParamInit = opts.zeroInit === true ? { kind: 'zeros' } : torchDefaultInit(cin);
  const w = param(`${name}.weight`, [cin, cout], init);
  if (opts.tally !== undefined) opts.tally.macs += (opts.rows ?? 1) * cin * cout;
  const y = b.op('MatMul', [x, w]);
  if (opts.bias === false) return y;
  return b.op('Add', [y, param(`${name}.bias`, [cout], init, { noDecay: true })]);
}

/** SiLU (swish) `x · σ(x)` (torch `nn.SiLU`). */
export function silu(b: GraphBuilder, x: string): string {
  return b.op('Mul', [x, b.op('Sigmoid', [x])]);
}

/**
 * GELU, tanh approximation: `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))` (torch
 * `nn.GELU(approximate='tanh')`, diffusers `activation_fn="gelu-approximate"`).
 */
export function geluTanh(b: GraphBuilder, x: string): string {
  const x3 = b.op('Pow', [x, b.constF32(3)]);
  const inner = b.op('Mul', [b.op('Add', [x, b.op('Mul', [x3, b.constF32(0.044715)])]), b.constF32(Math.sqrt(2 / Math.PI))]);
  const t1 = b.op('Add', [b.op('Tanh', [inner]), b.constF32(1)]);
  return b.op('Mul', [b.op('Mul', [x, t1]), b.constF32(0.5)]);
}

/** GELU, exact: `0.5·x·(1 + erf(x/√2))` (torch `F.gelu`, diffusers' GEGLU, transformers' `"gelu"`). */
export function geluErf(b: GraphBuilder, x: string): string {
  const e = b.op('Erf', [b.op('Mul', [x, b.constF32(Math.SQRT1_2)])]);
  return b.op('Mul', [b.op('Mul', [x, b.op('Add', [e, b.constF32(1)])]), b.constF32(0.5)]);
}

/** QuickGELU `x · σ(1.702·x)` (the activation of OpenAI CLIP's text transformer). */
export function quickGelu(b: GraphBuilder, x: string): string {
  return b.op('Mul', [x, b.op('Sigmoid', [b.op('Mul', [x, b.constF32(1.702)])])]);
}

/** Options of {@link groupNorm}. */
export interface GroupNormOptions {
  /** ε inside the square root (default 1e-5, diffusers `norm_eps`). */
  readonly eps?: number;
  /** Batch size (default `'dynamic'`). */
  readonly batch?: BatchDim;
  /**
   * Height and width read from the input at run time (`H`, `W` then only label the graph): the
   * reshapes become `[0, G, −1]` and back to `Shape(x)`, so one graph serves any spatial size, as
   * exported diffusers U-Nets do. Same values. Default false.
   */
  readonly dynamicSpatial?: boolean;
}

/**
 * Group normalisation of `[B, C, H, W]` (torch `nn.GroupNorm(groups, C, eps)`, biased variance),
 * composed as Reshape `[B, G, (C/G)·H·W]` → ReduceMean/Sub/Mul/ReduceMean/Add/Sqrt/Div →
 * Reshape `[B, C, H, W]` → `·γ + β`. Parameters `<name>.weight` `[C]` (ones) and `<name>.bias`
 * `[C]` (zeros). Default ε 1e-5.
 */
export function groupNorm(b: GraphBuilder, param: ParamFn, name: string, x: string, C: number, groups: number, H: number, W: number, opts: GroupNormOptions = {}): string {
  if (C % groups !== 0) throw new Error(`groupNorm '${name}': ${C} channels are not divisible into ${groups} groups`);
  const bd = batchDim(opts.batch ?? 'dynamic');
  const dyn = opts.dynamicSpatial === true;
  const r = reshape(b, x, dyn ? [0, groups, -1] : [bd, groups, (C / groups) * H * W]);
  const y = normalizeLastAxis(b, r, opts.eps ?? 1e-5, dyn ? undefined : (C / groups) * H * W);
  const back = dyn ? b.op('Reshape', [y, b.op('Shape', [x])]) : reshape(b, y, [bd, C, H, W]);
  const gamma = reshape(b, param(`${name}.weight`, [C], { kind: 'ones' }, { noDecay: true }), [C, 1, 1]);
  const beta = reshape(b, param(`${name}.bias`, [C], { kind: 'zeros' }, { noDecay: true }), [C, 1, 1]);
  return b.op('Add', [b.op('Mul', [back, gamma]), beta]);
}

/** One all-ones scale of each length per builder (the fused form's `Scale` input). */
const onesCache = new WeakMap<GraphBuilder, Map<number, string>>();

function onesOf(b: GraphBuilder, n: number): string {
  let m = onesCache.get(b);
  if (m === undefined) onesCache.set(b, (m = new Map()));
  let v = m.get(n);
  if (v === undefined) m.set(n, (v = b.initializer(undefined, new Float32Array(n).fill(1), [n])));
  return v;
}

/**
 * `(x − mean) / √(var + ε)` over the last axis (biased variance), keeping the rank. With
 * `b.fusedNormalization` and a static last axis of `n` elements: one `LayerNormalization` (scale
 * ones, no bias) that also outputs Mean and InvStdDev for the backward pass.
 */
function normalizeLastAxis(b: GraphBuilder, x: string, eps: number, n?: number): string {
  if (b.fusedNormalization && n !== undefined) return b.opN('LayerNormalization', [x, onesOf(b, n)], { axis: -1, epsilon: eps }, { outputs: 3 })[0]!;
  const mean = b.op('ReduceMean', [x], { axes: [-1], keepdims: 1 });
  const d = b.op('Sub', [x, mean]);
  const v = b.op('ReduceMean', [b.op('Mul', [d, d])], { axes: [-1], keepdims: 1 });
  return b.op('Div', [d, b.op('Sqrt', [b.op('Add', [v, b.constF32(eps)])])]);
}

/** Options of {@link layerNorm}. */
export interface LayerNormOptions {
  /** ε inside the square root (default 1e-5, torch default). */
  readonly eps?: number;
}

/**
 * Layer normalisation over the last axis of size `dim` (torch `nn.LayerNorm(dim, eps)`):
 * ReduceMean/Sub/Mul/ReduceMean/Add/Sqrt/Div then `·γ + β` (one `LayerNormalization` with
 * `b.fusedNormalization`), with `<name>.weight` `[dim]` (ones)
 * and `<name>.bias` `[dim]` (zeros). Default ε 1e-5.
 */
export function layerNorm(b: GraphBuilder, param: ParamFn, name: string, x: string, dim: number, opts: LayerNormOptions = {}): string {
  const affine = (): [string, string] => [param(`${name}.weight`, [dim], { kind: 'ones' }, { noDecay: true }), param(`${name}.bias`, [dim], { kind: 'zeros' }, { noDecay: true })];
  if (b.fusedNormalization) return b.opN('LayerNormalization', [x, ...affine()], { axis: -1, epsilon: opts.eps ?? 1e-5 }, { outputs: 3 })[0]!;
  const y = normalizeLastAxis(b, x, opts.eps ?? 1e-5); // before the parameters: the composed graph's bytes as before the fused form existed
  const [gamma, beta] = affine();
  return b.op('Add', [b.op('Mul', [y, gamma]), beta]);
}

/** Options of {@link resnetBlock2d}. */
export interface ResnetBlockOptions {
  /** GroupNorm groups. */
  readonly groups: number;
  /** GroupNorm ε (diffusers `resnet_eps`: the U-Net's `norm_eps`, 1e-6 in the VAE). */
  readonly eps: number;
  /** SiLU of the time embedding `[B, tembDim]` and its width (U-Net ResNets; absent in the VAE). */
  readonly temb?: { readonly value: string; readonly dim: number };
  /** Batch size (default `'dynamic'`). */
  readonly batch?: BatchDim;
  /** Height and width read at run time (see {@link GroupNormOptions.dynamicSpatial}; default false). */
  readonly dynamicSpatial?: boolean;
  /** Input side `hw` (static graphs and the MAC tally). */
  readonly hw?: number;
  /** MAC tally to add to (needs `hw`). */
  readonly tally?: MacTally;
}

/**
 * diffusers `ResnetBlock2D`: GN–SiLU–`conv1`, + `time_emb_proj`(SiLU(temb)) when there is a time
 * embedding, GN–SiLU–`conv2`, + the input (through a 1×1 `conv_shortcut` when the channels
 * change). Parameters `<name>.norm1`, `.conv1`, `.time_emb_proj`, `.norm2`, `.conv2`, `.conv_shortcut`.
 */
export function resnetBlock2d(b: GraphBuilder, param: ParamFn, name: string, x: string, cin: number, cout: number, opts: ResnetBlockOptions): string {
  const batch = opts.batch ?? 'dynamic';
  const hw = opts.hw ?? 1;
  const gn = { eps: opts.eps, batch, dynamicSpatial: opts.dynamicSpatial === true };
  const cv = opts.tally === undefined ? {} : { tally: opts.tally, hw: [hw, hw] as const };
  let h = conv2d(b, param, `${name}.conv1`, silu(b, groupNorm(b, param, `${name}.norm1`, x, cin, opts.groups, hw, hw, gn)), cin, cout, cv);
  if (opts.temb !== undefined) {
    const t = linear(b, param, `${name}.time_emb_proj`, opts.temb.value, opts.temb.dim, cout, opts.tally === undefined ? {} : { tally: opts.tally });
    h = b.op('Add', [h, reshape(b, t, [batchDim(batch), cout, 1, 1])]);
  }
  h = conv2d(b, param, `${name}.conv2`, silu(b, groupNorm(b, param, `${name}.norm2`, h, cout, opts.groups, hw, hw, gn)), cout, cout, cv);
  const skip = cin === cout ? x : conv2d(b, param, `${name}.conv_shortcut`, x, cin, cout, { k: 1, ...cv });
  return b.op('Add', [skip, h]);
}

/**
 * Nearest-neighbour 2× up-sampling of `[B, C, H, W]` (torch `F.interpolate(scale_factor=2,
 * mode='nearest')` as in diffusers `Upsample2D`): one Resize with scales `[1, 1, 2, 2]`,
 * `mode='nearest'`, `coordinate_transformation_mode='asymmetric'`, `nearest_mode='floor'`
 * (output pixel `(i, j)` = input `(⌊i/2⌋, ⌊j/2⌋)`).
 */
export function upsample2x(b: GraphBuilder, x: string): string {
  return b.op('Resize', [x, '', b.constF32([1, 1, 2, 2])], { mode: 'nearest', coordinate_transformation_mode: 'asymmetric', nearest_mode: 'floor' });
}

/** Options of {@link attention}. */
export interface AttentionOptions {
  /** Inner width `heads · headDim` of the query/key/value projections. */
  readonly dim: number;
  /** Number of heads (must divide `dim`). */
  readonly heads: number;
  /** Query tokens per image. */
  readonly qLen: number;
  /** Key/value tokens per image. */
  readonly kvLen: number;
  /** Width of the query input, also the output width (default `dim`). */
  readonly qDim?: number;
  /** Width of the key/value input (default `qDim`). */
  readonly kvDim?: number;
  /** Biases on the q/k/v projections (default false as in diffusers `Attention`; CLIP uses true). */
  readonly qkvBias?: boolean;
  /** Batch size (default `'dynamic'`). */
  readonly batch?: BatchDim;
  /** MAC tally to add to (projections and both attention matmuls). */
  readonly tally?: MacTally;
  /**
   * A value added to the attention logits `q kᵀ/√headDim` before the softmax, broadcastable to
   * `[B, heads, qLen, kvLen]` (e.g. `[B, 1, 1, kvLen]`: a per-token bias; `log w` multiplies the
   * unnormalised weight of a token by w — Ren et al. 2024's token re-weighting). Default none.
   */
  readonly logitBias?: string;
  /** Called with the name of the attention probabilities `[B, heads, qLen, kvLen]` (after the softmax). */
  readonly onProbs?: (probs: string) => void;
  /**
   * ONNX node name of the Softmax (default: the builder's `Softmax_<n>`). Names only label the
   * graph (e.g. torch.onnx's `/down_blocks.1/attentions.0/transformer_blocks.0/attn2/Softmax`);
   * they change no value.
   */
  readonly softmaxName?: string;
  /**
   * Take the softmax on `[B·heads, qLen, kvLen]` as diffusers' classic `AttnProcessor`
   * (`head_to_batch_dim` + `baddbmm`) exports it, instead of `[B, heads, qLen, kvLen]` (SDPA
   * decomposed); the values are identical. Default false.
   */
  readonly foldHeadsIntoBatch?: boolean;
  /**
   * Token counts read from the inputs at run time (`qLen`, and `kvLen` of a self-attention, then
   * only size the MAC tally): the reshapes copy the batch (`0`) and infer the length (`−1`), so one
   * graph serves any number of query tokens (a U-Net with dynamic height and width). Same values.
   * Default false.
   */
  readonly dynamicLength?: boolean;
  /**
   * Compute `softmax(q kᵀ/√headDim)·v` with onnxruntime's fused `com.microsoft.MultiHeadAttention`
   * kernel (faster and leaner on the CPU at long token counts) instead of MatMul / Softmax / MatMul.
   * Same values to float32 round-off. Ignored (decomposed) when `logitBias`, `onProbs`,
   * `softmaxName` or `foldHeadsIntoBatch` is given: those need the softmax as a node. Not
   * differentiable by memscope's `autodiff`. Default false.
   */
  readonly fused?: boolean;
}

/**
 * Multi-head scaled dot-product attention (diffusers `Attention` / torch
 * `nn.MultiheadAttention` without masks or dropout): `q = q_in·Wq`, `k = kv_in·Wk`,
 * `v = kv_in·Wv` (`<name>.to_q/to_k/to_v`, no bias by default), split into heads,
 * `softmax(q kᵀ / √headDim)` over the last (key) axis, `· v`, heads merged, then
 * `<name>.to_out` (Linear with bias) back to `qDim`. Inputs `[B, qLen, qDim]` and
 * `[B, kvLen, kvDim]` (pass the same name twice for self-attention); output `[B, qLen, qDim]`.
 */
export function attention(b: GraphBuilder, param: ParamFn, name: string, qIn: string, kvIn: string, opts: AttentionOptions): string {
  const { dim, heads, qLen, kvLen } = opts;
  if (dim % heads !== 0) throw new Error(`attention '${name}': dim ${dim} is not divisible by ${heads} heads`);
  const hd = dim / heads;
  const qDim = opts.qDim ?? dim;
  const kvDim = opts.kvDim ?? qDim;
  const bd = batchDim(opts.batch ?? 'dynamic');
  const bias = opts.qkvBias === true;
  const t = opts.tally;
  const lin = (n: string, x: string, cin: number, cout: number, rows: number, withBias: boolean): string =>
    linear(b, param, `${name}.${n}`, x, cin, cout, t === undefined ? { bias: withBias } : { bias: withBias, tally: t, rows });
  const dyn = opts.dynamicLength === true;
  if (opts.fused === true && opts.logitBias === undefined && opts.onProbs === undefined && opts.softmaxName === undefined && opts.foldHeadsIntoBatch !== true) {
    const ctx = b.op('MultiHeadAttention', [lin('to_q', qIn, qDim, dim, qLen, bias), lin('to_k', kvIn, kvDim, dim, kvLen, bias), lin('to_v', kvIn, kvDim, dim, kvLen, bias)], { num_heads: heads }, { domain: 'com.microsoft' });
    if (t !== undefined) t.macs += 2 * qLen * kvLen * dim;
    return lin('to_out', ctx, dim, qDim, qLen, true);
  }
  const q = b.op('Transpose', [reshape(b, lin('to_q', qIn, qDim, dim, qLen, bias), dyn ? [0, -1, heads, hd] : [bd, qLen, heads, hd])], { perm: [0, 2, 1, 3] });
  const k = b.op('Transpose', [reshape(b, lin('to_k', kvIn, kvDim, dim, kvLen, bias), dyn ? [0, -1, heads, hd] : [bd, kvLen, heads, hd])], { perm: [0, 2, 3, 1] });
  const v = b.op('Transpose', [reshape(b, lin('to_v', kvIn, kvDim, dim, kvLen, bias), dyn ? [0, -1, heads, hd] : [bd, kvLen, heads, hd])], { perm: [0, 2, 1, 3] });
  let scores = b.op('Mul', [b.op('MatMul', [q, k]), b.constF32(1 / Math.sqrt(hd))]); // [B, h, qLen, kvLen]
  if (opts.logitBias !== undefined) scores = b.op('Add', [scores, opts.logitBias]);
  const smOpts = opts.softmaxName === undefined ? {} : { name: opts.softmaxName };
  let probs: string;
  if (opts.foldHeadsIntoBatch !== true) probs = b.op('Softmax', [scores], { axis: -1 }, smOpts);
  else if (!dyn) probs = reshape(b, b.op('Softmax', [reshape(b, scores, [-1, qLen, kvLen])], { axis: -1 }, smOpts), [bd, heads, qLen, kvLen]);
  else {
    const folded = b.op('Reshape', [scores, b.op('Concat', [b.constI64([-1]), b.op('Shape', [scores], { start: 2 })], { axis: 0 })]);
    probs = b.op('Reshape', [b.op('Softmax', [folded], { axis: -1 }, smOpts), b.op('Shape', [scores])]);
  }
  opts.onProbs?.(probs);
  const ctx = b.op('MatMul', [probs, v]); // [B, h, qLen, hd]
  if (t !== undefined) t.macs += 2 * qLen * kvLen * dim;
  const merged = reshape(b, b.op('Transpose', [ctx], { perm: [0, 2, 1, 3] }), dyn ? [0, -1, dim] : [bd, qLen, dim]);
  return lin('to_out', merged, dim, qDim, qLen, true);
}

/**
 * The sinusoid frequencies of diffusers `get_timestep_embedding(t, freqDim,
 * flip_sin_to_cos=True, downscale_freq_shift=0, max_period)`:
 * `exp(−ln(max_period) · i / (freqDim/2))`, `i = 0 … freqDim/2 − 1`, rounded to float32 after
 * every step as torch computes them in float32.
 */
export function timestepFrequencies(freqDim: number, maxPeriod = 10000): Float32Array {
  if (!Number.isInteger(freqDim) || freqDim < 2 || freqDim % 2 !== 0) throw new Error(`timestep embedding: freqDim must be an even integer ≥ 2, got ${freqDim}`);
  const half = freqDim / 2;
  const f = Math.fround;
  const c = f(-Math.log(maxPeriod));
  return Float32Array.from({ length: half }, (_, i) => f(Math.exp(f(f(c * i) / half))));
}

/** Options of {@link sinusoidalEmbedding} and {@link timestepEmbedding}. */
export interface TimestepEmbeddingOptions {
  /** Width of the sinusoidal features (even; default: `dim`; the diffusers U-Net uses `block_out_channels[0]`). */
  readonly freqDim?: number;
  /** `max_period` (default 10000). */
  readonly maxPeriod?: number;
  /** Batch size (default `'dynamic'`). */
  readonly batch?: BatchDim;
  /** MAC tally to add to (the two linear layers). */
  readonly tally?: MacTally;
}

/**
 * Sinusoidal features of float timesteps `t` `[B]` → `[B, freqDim]`: `[cos(t·f), sin(t·f)]` with
 * the frequencies of {@link timestepFrequencies} (diffusers `Timesteps(freqDim,
 * flip_sin_to_cos=True, downscale_freq_shift=0)`, as `UNet2DConditionModel` uses it).
 */
export function sinusoidalEmbedding(b: GraphBuilder, t: string, freqDim: number, opts: Omit<TimestepEmbeddingOptions, 'freqDim' | 'tally'> = {}): string {
  const freqs = timestepFrequencies(freqDim, opts.maxPeriod ?? 10000);
  const arg = b.op('Mul', [reshape(b, t, [batchDim(opts.batch ?? 'dynamic'), 1]), b.constF32(freqs, [1, freqs.length])]);
  return b.op('Concat', [b.op('Cos', [arg]), b.op('Sin', [arg])], { axis: 1 });
}

/**
 * The time embedding of diffusers `UNet2DConditionModel`: {@link sinusoidalEmbedding} of `t`
 * (float `[B]`) with `freqDim` features (default `dim`), then `TimestepEmbedding`:
 * `<name>.linear_1` (freqDim → dim), SiLU, `<name>.linear_2` (dim → dim). Output `[B, dim]`
 * (not activated; diffusers resnets apply SiLU before their projection).
 */
export function timestepEmbedding(b: GraphBuilder, param: ParamFn, name: string, t: string, dim: number, opts: TimestepEmbeddingOptions = {}): string {
  const freqDim = opts.freqDim ?? dim;
  const s = sinusoidalEmbedding(b, t, freqDim, { ...(opts.maxPeriod !== undefined ? { maxPeriod: opts.maxPeriod } : {}), ...(opts.batch !== undefined ? { batch: opts.batch } : {}) });
  const lo = opts.tally === undefined ? {} : { tally: opts.tally };
  const h = silu(b, linear(b, param, `${name}.linear_1`, s, freqDim, dim, lo));
  return linear(b, param, `${name}.linear_2`, h, dim, dim, lo);
}

/** Options of {@link geglu} / {@link feedForward}. */
export interface FeedForwardOptions {
  /** Hidden width multiplier (default 4, diffusers `FeedForward(mult=4)`). */
  readonly mult?: number;
  /** Tokens per image (for the tally). */
  readonly rows?: number;
  /** MAC tally to add to. */
  readonly tally?: MacTally;
  /** The gate's GELU: `'tanh'` (default; memscope's trained models) or `'erf'` (exact, as diffusers' GEGLU). */
  readonly gelu?: 'tanh' | 'erf';
}

/**
 * The feed-forward of diffusers `BasicTransformerBlock` (`FeedForward(dim, mult,
 * activation_fn="geglu")`; GELU tanh by default, exact with `gelu: 'erf'`): `<name>.proj`
 * Linear(dim → 2·mult·dim), Split into value and gate, `value · gelu(gate)`, `<name>.out`
 * Linear(mult·dim → dim).
 */
export function feedForward(b: GraphBuilder, param: ParamFn, name: string, x: string, dim: number, opts: FeedForwardOptions = {}): string {
  const inner = (opts.mult ?? 4) * dim;
  const lo = opts.tally === undefined ? {} : { tally: opts.tally, rows: opts.rows ?? 1 };
  const proj = linear(b, param, `${name}.proj`, x, dim, 2 * inner, lo);
  const [val, gate] = b.opN('Split', [proj, b.constI64([inner, inner])], { axis: -1 }, { outputs: 2 });
  const h = b.op('Mul', [val!, opts.gelu === 'erf' ? geluErf(b, gate!) : geluTanh(b, gate!)]);
  return linear(b, param, `${name}.out`, h, inner, dim, lo);
}
