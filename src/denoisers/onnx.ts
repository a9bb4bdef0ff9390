/**
 * A generic ONNX noise-prediction model with the diffusers U-Net signature (SPEC §2.3–2.4, §7):
 * inputs `sample` `[B, ...shape]`, `timestep` (int64/int32/float32/float16/float64 of rank 0 `[]`
 * or rank 1 `[B]`/`[1]` — read from the session metadata, never assumed), and optionally
 * `class_labels` `[B]` or `encoder_hidden_states` `[B, L, E]`; the first output is the
 * prediction (ε, v or x0 — converted to ε with `parameterization.ts`).
 */
import { type CondRef, type ConditionInfo, type Denoiser, type NoiseLevel, type Space, checkConds } from './denoiser.ts';
import { type PredictionType, toEps } from './parameterization.ts';
import { type Tensor, assertFinite, numel } from '../tensor/tensor.ts';
import { type Session, type TypedFeed, type ValueInfo, createSession } from '../graph/session.ts';

/** Options of {@link loadOnnxDenoiser}. */
export interface OnnxDenoiserOptions {
  /** Path of the `.onnx` file (external weights beside it are found by onnxruntime). */
  readonly path: string;
  /** The serialized model, when it is not read from `path` (then `path` only names it in messages). */
  readonly bytes?: Uint8Array;
  /**
   * Condition rows `[K, ...rowShape]`: class labels (`[K]` or `[K, 1]`, floats holding integers,
   * cast to the input's integer type) or `encoder_hidden_states` rows (`[K, L, E]`). Required when
   * the model has a conditioning input; must be omitted (or empty) when it has none.
   */
  readonly conditions?: Tensor;
  /** The null condition e_∅ as one row `[...rowShape]` or `[1, ...rowShape]` (default: zeros). */
  readonly uncond?: Tensor;
  /** What the model outputs (diffusers `prediction_type`, default `'epsilon'`). */
  readonly predictionType?: PredictionType;
  /** Per-sample shape when the model's `sample` dims are dynamic (e.g. `[4, 64, 64]`). */
  readonly shape?: readonly number[];
  /** Labels of the condition rows (default `class <value>` / `row <i>`). */
  readonly labels?: readonly string[];
  /** Data space (default `'pixel'`; `'latent'` for Stable Diffusion U-Nets). */
  readonly space?: Space;
  /** Name for reports (default: the path). */
  readonly name?: string;
  /** onnxruntime intra-op threads (default: `MEMSCOPE_THREADS` or 2). */
  readonly threads?: number;
  /**
   * Replace the batch's `encoder_hidden_states` (flattened `[B, L, E]`, uncond and cond rows as
   * gathered) before each call, from the timestep t (CADS: `guidance/cads.ts`); default none.
   */
  readonly contextTransform?: (context: Float32Array, t: number) => Float32Array;
}

type CondKind = 'class_labels' | 'encoder_hidden_states' | null;

const TIMESTEP_TYPES = new Set(['int64', 'int32', 'float32', 'float16', 'float64']);

/** How the model wants its timestep: element type and layout. */
export interface TimestepLayout {
  readonly type: TypedFeed['type'];
  /** `'scalar'` = rank 0 `[]`; `'one'` = `[1]`; `'batch'` = `[B]`. */
  readonly layout: 'scalar' | 'one' | 'batch';
}

/** Decide the timestep layout from the session metadata (exported for tests and tools). */
export function timestepLayout(info: ValueInfo, source: string): TimestepLayout {
  const type = info.type ?? 'float32';
  if (!TIMESTEP_TYPES.has(type)) throw new Error(`${source}: input 'timestep' has type ${type}; expected int64, int32, float32, float16 or float64`);
  const shape = info.shape;
  if (shape === null || shape.length === 0) return { type: type as TypedFeed['type'], layout: 'scalar' };
  if (shape.length !== 1) throw new Error(`${source}: input 'timestep' has rank ${shape.length} ([${shape.join(', ')}]); expected rank 0 or 1`);
  return { type: type as TypedFeed['type'], layout: shape[0] === 1 ? 'one' : 'batch' };
}

/**
 * An ONNX noise-prediction model as a {@link Denoiser}. Create with {@link loadOnnxDenoiser}.
 * A model with a fixed batch size is run in chunks of that size (the last one zero-padded).
 */
export class OnnxDenoiser implements Denoiser {
  readonly name: string;
  readonly space: Space;
  readonly shape: readonly number[];
  readonly conditions: readonly ConditionInfo[];
  /** Timestep element type and layout, from the metadata. */
  timestep: TimestepLayout;
  /** Which conditioning input the model has. */
  readonly condInput: CondKind;
  private readonly rowShape: readonly number[];
  private readonly condRows: Float32Array;
  private readonly uncondRow: Float32Array;
  private readonly fixedBatch: number | null;
  private timestepUnsure: boolean;

  /** Use {@link loadOnnxDenoiser}. */
  constructor(
    /** The loaded session. */
    readonly session: Session,
    private readonly opts: OnnxDenoiserOptions,
  ) {
    const src = opts.path;
    this.name = opts.name ?? src;
    this.space = opts.space ?? 'pixel';
    const names = session.inputNames;
    const missing = ['sample', 'timestep'].filter((n) => !names.includes(n));
    if (missing.length > 0) {
      throw new Error(`${src}: not a diffusers-style noise model: missing input${missing.length > 1 ? 's' : ''} ${missing.map((m) => `'${m}'`).join(', ')} (inputs: ${names.join(', ')})`);
    }
    const known = new Set(['sample', 'timestep', 'class_labels', 'encoder_hidden_states']);
    const extra = names.filter((n) => !known.has(n));
    if (extra.length > 0) throw new Error(`${src}: unsupported input${extra.length > 1 ? 's' : ''} ${extra.map((m) => `'${m}'`).join(', ')} (memscope feeds sample, timestep, and class_labels or encoder_hidden_states)`);
    if (names.includes('class_labels') && names.includes('encoder_hidden_states')) throw new Error(`${src}: has both 'class_labels' and 'encoder_hidden_states'; memscope feeds one conditioning input`);
    this.condInput = names.includes('class_labels') ? 'class_labels' : names.includes('encoder_hidden_states') ? 'encoder_hidden_states' : null;
    if (session.outputs.length === 0) throw new Error(`${src}: model has no outputs`);

    // sample shape
    const sInfo = session.input('sample');
    if (sInfo.type !== 'float32' && sInfo.type !== 'float16' && sInfo.type !== 'float64') throw new Error(`${src}: input 'sample' has type ${sInfo.type}; expected a float type`);
    const sShape = sInfo.shape;
    const metaTail = sShape !== null && sShape.length >= 2 ? sShape.slice(1) : null;
    if (opts.shape !== undefined) {
      if (metaTail !== null) {
        if (metaTail.length !== opts.shape.length || metaTail.some((v, i) => typeof v === 'number' && v !== opts.shape![i])) {
          throw new Error(`${src}: option shape [${opts.shape.join(', ')}] does not match the model's sample shape [${sShape!.join(', ')}]`);
        }
      }
      this.shape = [...opts.shape];
    } else {
      if (metaTail === null || metaTail.some((v) => typeof v !== 'number')) {
        throw new Error(`${src}: the model's sample shape [${(sShape ?? []).join(', ')}] is dynamic; pass options.shape (the per-sample shape, e.g. [4, 64, 64])`);
      }
      this.shape = metaTail as number[];
    }
    this.fixedBatch = sShape !== null && sShape.length >= 1 && typeof sShape[0] === 'number' && sShape[0] > 0 ? sShape[0] : null;
    this.timestep = timestepLayout(session.input('timestep'), src);
    this.timestepUnsure = this.timestep.layout === 'scalar';

    // conditions
    const conds = opts.conditions;
    let K = conds === undefined ? 0 : (conds.dims[0] ?? 0);
    if (this.condInput === null) {
      if (K > 0) throw new Error(`${src}: conditions were given (${K} rows) but the model has no 'class_labels' or 'encoder_hidden_states' input`);
      this.rowShape = [];
      this.condRows = new Float32Array(0);
      this.uncondRow = new Float32Array(0);
      this.conditions = [];
      return;
    }
    const cInfo = session.input(this.condInput);
    const cTail = cInfo.shape !== null && cInfo.shape.length >= 1 ? cInfo.shape.slice(1) : null;
    if (conds === undefined) throw new Error(`${src}: the model has a '${this.condInput}' input; pass options.conditions (rows of cond.npy: [K${this.condInput === 'class_labels' ? '' : ', L, E'}])`);
    let condT: Tensor = conds;
    // A single condition saved without its K axis (e.g. prompt_embeds[0] as [L, E]) is one row.
    if (this.condInput === 'encoder_hidden_states' && cTail !== null && conds.dims.length === cTail.length && cTail.every((v, i) => typeof v !== 'number' || v === conds.dims[i])) {
      condT = { dims: [1, ...conds.dims], data: conds.data };
      K = 1;
    }
    let rowShape = condT.dims.slice(1);
    if (this.condInput === 'class_labels') {
      if (!(rowShape.length === 0 || (rowShape.length === 1 && rowShape[0] === 1))) throw new Error(`${src}: class-label conditions must be [K] or [K, 1], got [${conds.dims.join(', ')}]`);
      rowShape = cTail !== null && cTail.length === 1 ? [1] : [];
      if (cTail !== null && cTail.length > 1) throw new Error(`${src}: input 'class_labels' has shape [${cInfo.shape!.join(', ')}]; expected [B]`);
    } else if (cTail !== null) {
      if (cTail.length !== rowShape.length || cTail.some((v, i) => typeof v === 'number' && v !== rowShape[i])) {
        throw new Error(`${src}: condition rows have shape [${rowShape.join(', ')}] but input '${this.condInput}' expects [${cInfo.shape!.join(', ')}] (batch first)`);
      }
    }
    this.rowShape = rowShape;
    const rs = numel(rowShape);
    this.condRows = conds.data;
    if (opts.uncond !== undefined) {
      if (opts.uncond.data.length !== rs) throw new Error(`${src}: uncond has ${opts.uncond.data.length} elements ([${opts.uncond.dims.join(', ')}]); one condition row has ${rs}`);
      this.uncondRow = opts.uncond.data;
    } else this.uncondRow = new Float32Array(rs);
    if (this.condInput === 'class_labels') {
      for (let i = 0; i < conds.data.length; i++) {
        if (!Number.isInteger(conds.data[i])) throw new Error(`${src}: class-label condition ${i} is ${conds.data[i]}, not an integer`);
      }
    }
    const labels = opts.labels;
    if (labels !== undefined && labels.length !== K) throw new Error(`${src}: ${labels.length} labels for ${K} condition rows`);
    this.conditions = Array.from({ length: K }, (_, i) =>
      this.condInput === 'class_labels'
        ? { id: `row:${i}`, kind: 'class' as const, label: labels?.[i] ?? `class ${conds.data[i]}` }
        : { id: `row:${i}`, kind: 'embedding' as const, label: labels?.[i] ?? `row ${i}` },
    );
  }

  private timestepFeed(t: number, B: number): TypedFeed {
    const isInt = this.timestep.type === 'int64' || this.timestep.type === 'int32';
    const v = isInt ? Math.round(t) : t;
    const { layout, type } = this.timestep;
    if (layout === 'scalar') return { type, dims: [], data: [v] };
    if (layout === 'one') return { type, dims: [1], data: [v] };
    return { type, dims: [B], data: new Array<number>(B).fill(v) };
  }

  private async runChunk(xt: Float32Array, B: number, t: number, cond: readonly CondRef[]): Promise<Float32Array> {
    const d = numel(this.shape);
    const feeds: Record<string, Tensor | TypedFeed> = {
      sample: { dims: [B, ...this.shape], data: xt },
      timestep: this.timestepFeed(t, B),
    };
    if (this.condInput !== null) {
      const rs = numel(this.rowShape);
      const c = new Float32Array(B * rs);
      for (let r = 0; r < B; r++) {
        const cr = cond[r] ?? null;
        c.set(cr === null ? this.uncondRow : this.condRows.subarray(cr * rs, (cr + 1) * rs), r * rs);
      }
      const tf = this.opts.contextTransform;
      feeds[this.condInput] = { dims: [B, ...this.rowShape], data: tf !== undefined && this.condInput === 'encoder_hidden_states' ? tf(c, t) : c };
    }
    const outName = this.session.outputNames[0]!;
    let res: Record<string, Tensor>;
    try {
      res = await this.session.run(feeds, [outName]);
    } catch (e) {
      // onnxruntime reports an undeclared timestep shape as [] (like rank 0): if a scalar was
      // refused, try [B] once and keep it
      if (this.timestep.layout === 'scalar' && this.timestepUnsure) {
        this.timestepUnsure = false;
        this.timestep = { type: this.timestep.type, layout: 'batch' };
        return this.runChunk(xt, B, t, cond);
      }
      throw new Error(`${this.name}: onnxruntime failed on a batch of ${B} at t = ${t}: ${(e as Error).message}`);
    }
    this.timestepUnsure = false;
    const out = res[outName]!;
    if (out.data.length !== B * d) throw new Error(`${this.name}: output '${outName}' has shape [${out.dims.join(', ')}]; expected [${B}, ${this.shape.join(', ')}]`);
    const o = out.data;
    for (let i = 0; i < o.length; i++) {
      if (!Number.isFinite(o[i]!)) {
        const row = Math.floor(i / d);
        const c = cond[row];
        throw new Error(`${this.name}: the model returned a non-finite value (${o[i]}) at t = ${t}, batch row ${row} (condition ${c === null || c === undefined ? 'null' : this.conditions[c]?.id ?? c}), flat index ${i} of output '${outName}'`);
      }
    }
    return o;
  }

  /** ε̂(x_t, t, e) for a batch (SPEC §2): runs the model and converts its prediction type to ε. */
  async predict(xt: Tensor, level: NoiseLevel, cond: readonly CondRef[]): Promise<Tensor> {
    if (xt.dims.length !== this.shape.length + 1 || xt.dims.slice(1).some((v, i) => v !== this.shape[i])) {
      throw new Error(`${this.name}: x_t must be [B, ${this.shape.join(', ')}], got [${xt.dims.join(', ')}]`);
    }
    const B = xt.dims[0]!;
    checkConds(this, cond, B);
    assertFinite(`${this.name}: x_t`, xt);
    const d = numel(this.shape);
    const type = this.opts.predictionType ?? 'epsilon';
    if (type !== 'epsilon' && !(level.alphaBar > 0 && level.alphaBar < 1)) throw new Error(`${this.name}: ${type} conversion needs 0 < ᾱ < 1, got ${level.alphaBar}`);
    let out: Float32Array;
    if (this.fixedBatch === null || this.fixedBatch === B) out = await this.runChunk(xt.data, B, level.t, cond);
    else {
      const fb = this.fixedBatch;
      out = new Float32Array(B * d);
      for (let s = 0; s < B; s += fb) {
        const m = Math.min(fb, B - s);
        const chunk = new Float32Array(fb * d);
        chunk.set(xt.data.subarray(s * d, (s + m) * d));
        const cs = cond.slice(s, s + m).concat(new Array<CondRef>(fb - m).fill(null));
        const o = await this.runChunk(chunk, fb, level.t, cs);
        out.set(o.subarray(0, m * d), s * d);
      }
    }
    return toEps(type, xt, { dims: [...xt.dims], data: out }, level.alphaBar);
  }

  /** Release the onnxruntime session. */
  async dispose(): Promise<void> {
    await this.session.release();
  }
}

/**
 * Load an ONNX noise-prediction model with the diffusers U-Net signature (SPEC §2.4, §7). The
 * timestep dtype and rank and the sample shape are read from the session metadata; errors name
 * what is missing or mismatched. The session is not shared (dispose it when done).
 */
export async function loadOnnxDenoiser(opts: OnnxDenoiserOptions): Promise<OnnxDenoiser> {
  const session = await createSession(opts.bytes ?? opts.path, opts.threads === undefined ? {} : { threads: opts.threads });
  try {
    return new OnnxDenoiser(session, opts);
  } catch (e) {
    await session.release();
    throw e;
  }
}
