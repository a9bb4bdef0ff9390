/**
 * The model-agnostic training loop: batches, one gradient step supplied by the caller, gradient
 * clipping, AdamW with warmup, EMA, periodic atomic checkpoints and exact resumption.
 *
 * Step `s` (0-based) does, in this order:
 *
 *     batch  = makeBatch(s)
 *     {loss, grads} = step(batch, params, s)
 *     scale  = clipNorm ? min(1, clipNorm / (‖grads‖₂ + 1e-6)) : 1      (clip_grad_norm_)
 *     AdamW update of params with lr = warmupLr(lr, s, warmupSteps) and grads · scale
 *     EMA update with the new params
 *
 * and after it `s + 1` steps are complete; a checkpoint `step-<s+1>` is written when `s + 1` is a
 * multiple of `checkpointEvery` and after the last step.
 *
 * **Resume guarantee.** When `checkpointDir` holds a checkpoint, `train` continues from the
 * newest one (after checking that its config equals this run's, see {@link resumeConfig}). The
 * state a step depends on — parameters, AdamW moments and per-parameter step counts, EMA weights
 * and update count, the state of `rng` — is stored exactly (float32 bit patterns, integers,
 * JSON), the learning rate is a function of the step number, and `makeBatch(s)` must be a pure
 * function of `s` (or of `s` and the stored `rng` state). Provided `step` is deterministic (same
 * batch and parameters → same bits, true of the ONNX Runtime CPU provider with a fixed thread
 * count, and of any JS computation), a run interrupted at any point — killed, thrown out of,
 * or aborted through `signal` — and resumed gives parameters, EMA, optimizer state and loss
 * history bit-identical to an uninterrupted run.
 */
import type { EmaOptions, EmaState } from './ema.ts';
import { Ema, resolveEmaOptions } from './ema.ts';
import { AdamW, clipCoefficient, resolveAdamWOptions, warmupLr, type AdamWOptions, type AdamWState, type ResolvedAdamWOptions } from '../optim/adamw.ts';
import { loadLatestCheckpoint, writeCheckpoint, type Checkpoint, type LoadedCheckpoint } from './checkpoint.ts';
import type { ParamSpec, ParamValues } from '../models/params.ts';
import { ProgressLine, type ProgressOptions } from './progress.ts';
import type { Tensor } from '../tensor/tensor.ts';

/** One batch: its graph inputs by name and its size (images, for throughput). Extend as needed. */
export interface TrainBatch {
  /** Number of training examples in the batch. */
  readonly size: number;
  /** Named inputs of the training graph (data, noise, timesteps, weights…). */
  readonly inputs: ReadonlyMap<string, Tensor>;
}

/** What one gradient evaluation returns: the loss and ∂loss/∂p by parameter name. */
export interface StepOutput {
  /** The (weighted) training loss of the batch; must be finite. */
  readonly loss: number;
  /** Gradients by parameter name; a parameter without an entry is not updated this step (torch's `grad is None`). */
  readonly grads: ReadonlyMap<string, Float32Array>;
}

/** A stateful random generator whose state travels in checkpoints (e.g. a `DataOrder`). */
export interface TrainRng {
  /** Its state as JSON. */
  state(): unknown;
  /** Restore a state returned by `state()`. */
  restore(state: unknown): void;
}

/** What the trainer reports after each step. */
export interface TrainStepInfo {
  /** Steps completed (the step just done is `step − 1`, 0-based). */
  readonly step: number;
  /** Total steps of the run. */
  readonly steps: number;
  /** Loss of the step just done. */
  readonly loss: number;
  /** Learning rate used by this step. */
  readonly lr: number;
  /** Global gradient norm before clipping (null when clipping is off). */
  readonly gradNorm: number | null;
  /** Factor the gradients were multiplied by (1 when not clipped). */
  readonly gradScale: number;
  /** Batch size of this step. */
  readonly batchSize: number;
  /** Training time so far, all sessions, in seconds. */
  readonly elapsedSeconds: number;
}

/** Optimizer options of {@link train}: AdamW's plus the warmup length. */
export interface TrainOptimizerOptions extends AdamWOptions {
  /** Linear warmup length in steps (default 0), see `warmupLr`. */
  readonly warmupSteps?: number;
}

/** Options of {@link train}. */
export interface TrainOptions<B extends TrainBatch = TrainBatch> {
  /** Parameter declarations and initial values (copied; the caller's arrays are never modified). */
  readonly params: ParamValues;
  /**
   * One gradient evaluation at the current parameters; must be deterministic. `params` holds the
   * live arrays, which the optimizer updates in place once the returned promise settles.
   */
  readonly step: (batch: B, params: ReadonlyMap<string, Float32Array>, step: number) => Promise<StepOutput>;
  /** The batch of 0-based step `s`; must be a pure function of `s` (and the `rng` state). */
  readonly makeBatch: (step: number) => B | Promise<B>;
  /** Run until this many steps are complete. */
  readonly steps: number;
  /** AdamW options (torch defaults: lr 1e-3, betas (0.9, 0.999), eps 1e-8, weightDecay 0.01) and warmupSteps (0). */
  readonly optimizer?: TrainOptimizerOptions;
  /** Clip the global gradient L2 norm to this (default: no clipping). */
  readonly clipNorm?: number | null;
  /** Keep an EMA of the weights: options, `true` for the defaults (decay 0.999), or false/absent for none. */
  readonly ema?: EmaOptions | boolean;
  /** Where checkpoints go; without it nothing is written and nothing is resumed. */
  readonly checkpointDir?: string;
  /** Write a checkpoint every K completed steps (default 1000) and always after the last. */
  readonly checkpointEvery?: number;
  /** Checkpoints kept on disk (default 2). */
  readonly keepCheckpoints?: number;
  /** Write a checkpoint of the completed steps when `signal` aborts (default true). */
  readonly checkpointOnAbort?: boolean;
  /** Run configuration (JSON) stored in checkpoints; resuming with a different one is refused. */
  readonly config?: unknown;
  /** A stateful generator to save and restore with checkpoints. */
  readonly rng?: TrainRng;
  /**
   * The caller's own state, saved in every checkpoint (`state()`, JSON) and handed back on resume
   * (`restore(v, step)`, with null when the checkpoint holds none: written without it or before it
   * existed; `step` is the checkpoint's).
   */
  readonly extra?: { readonly state: () => unknown; readonly restore: (v: unknown, step: number) => void };
  /** Called after every step. */
  readonly onStep?: (info: TrainStepInfo) => void | Promise<void>;
  /** Called after every checkpoint write with its directory. */
  readonly onCheckpoint?: (path: string, step: number) => void | Promise<void>;
  /** Show a progress line on stderr: true, or options (default false). */
  readonly progress?: boolean | Omit<ProgressOptions, 'total' | 'start'>;
  /** Abort between steps (then a checkpoint is written, see `checkpointOnAbort`, and the promise rejects with the signal's reason). */
  readonly signal?: AbortSignal;
}

/** The outcome of {@link train}. */
export interface TrainResult {
  /** Steps completed. */
  readonly step: number;
  /** Final parameters. */
  readonly params: Map<string, Float32Array>;
  /** Final optimizer state. */
  readonly optimizer: AdamWState;
  /** Final EMA state (null without EMA). */
  readonly ema: EmaState | null;
  /** Loss of every step since step 0 (across resumes). */
  readonly lossHistory: number[];
  /** The step the run resumed from (null for a fresh start). */
  readonly resumedFrom: number | null;
  /** Training time, all sessions, in seconds. */
  readonly elapsedSeconds: number;
  /** The last checkpoint written or resumed from (null when none). */
  readonly checkpoint: string | null;
}

/** The configuration a resumed run must match: everything that changes the computation except the step count. */
export interface ResumeConfig {
  /** The caller's `config`, normalised through JSON (null when absent). */
  readonly user: unknown;
  /** Parameter names, shapes and decay exclusion. */
  readonly params: readonly { readonly name: string; readonly dims: readonly number[]; readonly noDecay: boolean }[];
  /** AdamW options with defaults filled in, and the warmup length. */
  readonly optimizer: ResolvedAdamWOptions & { readonly warmupSteps: number };
  /** Gradient clipping norm, null when off. */
  readonly clipNorm: number | null;
  /** EMA options with defaults filled in, null without EMA. */
  readonly ema: { readonly decay: number; readonly warmup: boolean } | null;
}

function resolveEma(o: EmaOptions | boolean | undefined): EmaOptions | null {
  if (o === undefined || o === false) return null;
  return o === true ? {} : o;
}

/**
 * The config stored in checkpoints and compared on resume: the caller's `config` (normalised
 * through JSON), parameter names/shapes/noDecay, resolved AdamW options with warmupSteps,
 * clipNorm and EMA options. `steps`, `checkpointEvery`, callbacks and progress may change
 * between sessions.
 */
export function resumeConfig(opts: Pick<TrainOptions, 'config' | 'params' | 'optimizer' | 'clipNorm' | 'ema'>): ResumeConfig {
  const o = opts.optimizer ?? {};
  const { warmupSteps: _w, ...adam } = o;
  const warmupSteps = o.warmupSteps ?? 0;
  if (!Number.isInteger(warmupSteps) || warmupSteps < 0) throw new Error(`train: warmupSteps must be a non-negative integer, got ${warmupSteps}`);
  const ema = resolveEma(opts.ema);
  const user = opts.config === undefined ? null : (JSON.parse(JSON.stringify(opts.config)) as unknown);
  return {
    user,
    params: opts.params.specs.map((s) => ({ name: s.name, dims: [...s.dims], noDecay: s.noDecay === true })),
    optimizer: { ...resolveAdamWOptions(adam), warmupSteps },
    clipNorm: opts.clipNorm ?? null,
    ema: ema === null ? null : resolveEmaOptions(ema),
  };
}

function canonical(x: unknown): unknown {
  if (Array.isArray(x)) return x.map(canonical);
  if (x !== null && typeof x === 'object') {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(x).sort()) out[k] = canonical((x as Record<string, unknown>)[k]);
    return out;
  }
  return x;
}

/** Paths where two JSON values differ (at most `limit`), e.g. `optimizer.lr: 0.001 vs 0.002`. */
function jsonDiff(a: unknown, b: unknown, path = '', out: string[] = [], limit = 8): string[] {
  if (out.length >= limit) return out;
  const isObj = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);
  if (isObj(a) && isObj(b)) {
    for (const k of [...new Set([...Object.keys(a), ...Object.keys(b)])].sort()) jsonDiff(a[k], b[k], path === '' ? k : `${path}.${k}`, out, limit);
  } else if (Array.isArray(a) && Array.isArray(b) && a.length === b.length) {
    a.forEach((v, i) => jsonDiff(v, b[i], `${path}[${i}]`, out, limit));
  } else if (JSON.stringify(canonical(a)) !== JSON.stringify(canonical(b))) {
    const show = (v: unknown) => (v === undefined ? '(absent)' : JSON.stringify(v).slice(0, 80));
    out.push(`${path === '' ? '(root)' : path}: checkpoint ${show(a)} vs now ${show(b)}`);
  }
  return out;
}

function abortReason(signal: AbortSignal): unknown {
  return signal.reason ?? new DOMException('train: aborted', 'AbortError');
}

/**
 * Train: resume from the newest checkpoint in `checkpointDir` if there is one (refusing with an
 * error naming the differences when its config differs from this run's), then run steps until
 * `steps` are complete (see the module note for what one step does and the resume guarantee).
 * Rejects with the signal's reason when aborted, with the error of `step`/`makeBatch` when they
 * throw, and on a non-finite loss.
 */
export async function train<B extends TrainBatch = TrainBatch>(opts: TrainOptions<B>): Promise<TrainResult> {
  const { steps } = opts;
  if (!Number.isSafeInteger(steps) || steps < 0) throw new Error(`train: steps must be a non-negative integer, got ${steps}`);
  const every = opts.checkpointEvery ?? 1000;
  if (!Number.isSafeInteger(every) || every < 1) throw new Error(`train: checkpointEvery must be a positive integer, got ${every}`);
  if (opts.clipNorm !== undefined && opts.clipNorm !== null && !(opts.clipNorm > 0)) throw new Error(`train: clipNorm must be > 0, got ${opts.clipNorm}`);
  const specs: readonly ParamSpec[] = opts.params.specs;
  const config = resumeConfig(opts);
  const params = new Map<string, Float32Array>();
  for (const s of specs) {
    const v = opts.params.values.get(s.name);
    if (v === undefined) throw new Error(`train: parameter "${s.name}" has no initial value`);
    const n = s.dims.reduce((a, b) => a * b, 1);
    if (v.length !== n) throw new Error(`train: parameter "${s.name}" has dims [${s.dims.join(', ')}] but ${v.length} values`);
    params.set(s.name, v.slice());
  }
  const optimizer = new AdamW(specs, opts.optimizer ?? {});
  const emaOpts = resolveEma(opts.ema);
  const ema = emaOpts === null ? null : new Ema(params, emaOpts);
  const { warmupSteps } = config.optimizer;
  const baseLr = config.optimizer.lr;
  const clipNorm = config.clipNorm;

  let done = 0;
  let lossHistory: number[] = [];
  let priorSeconds = 0;
  let resumedFrom: number | null = null;
  let lastCheckpoint: string | null = null;
  let lastCheckpointStep = -1;

  if (opts.checkpointDir !== undefined) {
    const ck: LoadedCheckpoint | null = await loadLatestCheckpoint(opts.checkpointDir);
    if (ck !== null) {
      const diffs = jsonDiff(canonical(ck.config), canonical(config));
      if (diffs.length > 0) {
        throw new Error(
          `train: the checkpoint ${ck.path} was written with a different configuration; refusing to resume ` +
            `(use another checkpointDir or the original settings):\n  ${diffs.join('\n  ')}`,
        );
      }
      if (ck.step > steps) throw new Error(`train: the checkpoint ${ck.path} is at step ${ck.step}, past steps = ${steps}`);
      for (const [name, v] of ck.params) params.get(name)!.set(v);
      optimizer.setState(ck.optimizer);
      if (ema !== null) {
        if (ck.ema === null) throw new Error(`train: the checkpoint ${ck.path} has no EMA`);
        ema.setState(ck.ema);
      }
      if (opts.rng !== undefined) {
        if (ck.rng === null || ck.rng === undefined) throw new Error(`train: the checkpoint ${ck.path} holds no rng state, but this run passes an rng to restore`);
        opts.rng.restore(ck.rng);
      }
      opts.extra?.restore(ck.extra ?? null, ck.step);
      done = ck.step;
      lossHistory = [...ck.lossHistory];
      priorSeconds = ck.elapsedSeconds;
      resumedFrom = ck.step;
      lastCheckpoint = ck.path;
      lastCheckpointStep = ck.step;
    }
  }

  const t0 = performance.now();
  const elapsed = () => priorSeconds + (performance.now() - t0) / 1000;
  const snapshot = (): Checkpoint => ({
    step: done,
    specs,
    params,
    optimizer: optimizer.getState(),
    ema: ema === null ? null : ema.getState(),
    rng: opts.rng === undefined ? null : opts.rng.state(),
    config,
    lossHistory,
    elapsedSeconds: elapsed(),
    ...(opts.extra === undefined ? {} : { extra: opts.extra.state() }),
  });
  const checkpoint = async (): Promise<void> => {
    if (opts.checkpointDir === undefined || done === lastCheckpointStep || done === 0) return;
    const keep = opts.keepCheckpoints ?? 2;
    lastCheckpoint = await writeCheckpoint(opts.checkpointDir, snapshot(), { keep });
    lastCheckpointStep = done;
    await opts.onCheckpoint?.(lastCheckpoint, done);
  };

  const progress =
    opts.progress === undefined || opts.progress === false
      ? null
      : new ProgressLine({ ...(opts.progress === true ? {} : opts.progress), total: steps, start: done });

  try {
    while (done < steps) {
      if (opts.signal?.aborted === true) {
        if (opts.checkpointOnAbort ?? true) await checkpoint();
        throw abortReason(opts.signal);
      }
      const s = done;
      const batch = await opts.makeBatch(s);
      const out = await opts.step(batch, params, s);
      if (!Number.isFinite(out.loss)) throw new Error(`train: loss is ${out.loss} at step ${s}; stopping (the last checkpoint is unaffected)`);
      const present: Float32Array[] = [];
      for (const sp of specs) {
        const g = out.grads.get(sp.name);
        if (g !== undefined) present.push(g);
      }
      if (present.length !== out.grads.size) {
        const unknown = [...out.grads.keys()].filter((k) => !params.has(k));
        throw new Error(`train: step returned gradients for unknown parameters: ${unknown.join(', ')}`);
      }
      const lr = warmupLr(baseLr, s, warmupSteps);
      let gradNorm: number | null = null;
      let gradScale = 1;
      if (clipNorm !== null) {
        const c = clipCoefficient(present, clipNorm);
        gradNorm = c.totalNorm;
        gradScale = c.scale;
      }
      optimizer.step(params, out.grads, { lr, gradScale });
      ema?.update(params);
      lossHistory.push(out.loss);
      done = s + 1;
      progress?.update(done, out.loss, batch.size);
      await opts.onStep?.({ step: done, steps, loss: out.loss, lr, gradNorm, gradScale, batchSize: batch.size, elapsedSeconds: elapsed() });
      if (done % every === 0 || done === steps) await checkpoint();
    }
  } finally {
    progress?.finish();
  }

  return {
    step: done,
    params,
    optimizer: optimizer.getState(),
    ema: ema === null ? null : ema.getState(),
    lossHistory,
    resumedFrom,
    elapsedSeconds: elapsed(),
    checkpoint: lastCheckpoint,
  };
}
