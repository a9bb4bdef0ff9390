/**
 * Float64 reference implementations of the layers in `layers.ts`, for tests only: plain loops on
 * row-major arrays, written from the PyTorch/diffusers definitions.
 */

/** Deterministic uniform numbers in [lo, hi) (mulberry32). */
export function seededArray(n: number, seed: number, lo = -1, hi = 1): Float32Array {
  let a = seed >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out[i] = lo + (hi - lo) * (((t ^ (t >>> 14)) >>> 0) / 4294967296);
  }
  return out;
}

/** `x [rows, cin] · W [cin, cout] + b`. */
export function linearRef(x: ArrayLike<number>, rows: number, cin: number, cout: number, w: ArrayLike<number>, bias?: ArrayLike<number>): Float64Array {
  const y = new Float64Array(rows * cout);
  for (let r = 0; r < rows; r++) {
    for (let o = 0; o < cout; o++) {
      let s = bias === undefined ? 0 : bias[o]!;
      for (let i = 0; i < cin; i++) s += x[r * cin + i]! * w[i * cout + o]!;
      y[r * cout + o] = s;
    }
  }
  return y;
}

/** LayerNorm over the last axis of `x [rows, dim]`. */
export function layerNormRef(x: ArrayLike<number>, rows: number, dim: number, g: ArrayLike<number>, b: ArrayLike<number>, eps = 1e-5): Float64Array {
  const y = new Float64Array(rows * dim);
  for (let r = 0; r < rows; r++) {
    let m = 0;
    for (let i = 0; i < dim; i++) m += x[r * dim + i]!;
    m /= dim;
    let v = 0;
    for (let i = 0; i < dim; i++) v += (x[r * dim + i]! - m) ** 2;
    v /= dim;
    const s = Math.sqrt(v + eps);
    for (let i = 0; i < dim; i++) y[r * dim + i] = ((x[r * dim + i]! - m) / s) * g[i]! + b[i]!;
  }
  return y;
}

/** GroupNorm of `x [B, C, H, W]`. */
export function groupNormRef(x: ArrayLike<number>, B: number, C: number, HW: number, G: number, g: ArrayLike<number>, b: ArrayLike<number>, eps = 1e-5): Float64Array {
  const y = new Float64Array(B * C * HW);
  const cg = C / G;
  const n = cg * HW;
  for (let bi = 0; bi < B; bi++) {
    for (let gi = 0; gi < G; gi++) {
      const off = (bi * C + gi * cg) * HW;
      let m = 0;
      for (let i = 0; i < n; i++) m += x[off + i]!;
      m /= n;
      let v = 0;
      for (let i = 0; i < n; i++) v += (x[off + i]! - m) ** 2;
      v /= n;
      const s = Math.sqrt(v + eps);
      for (let i = 0; i < n; i++) {
        const c = gi * cg + Math.floor(i / HW);
        y[off + i] = ((x[off + i]! - m) / s) * g[c]! + b[c]!;
      }
    }
  }
  return y;
}

/** Parameters of one attention layer (names as `attention()` declares them, without the prefix). */
export interface AttnParams {
  readonly wq: ArrayLike<number>;
  readonly wk: ArrayLike<number>;
  readonly wv: ArrayLike<number>;
  readonly wo: ArrayLike<number>;
  readonly bo: ArrayLike<number>;
  readonly bq?: ArrayLike<number>;
  readonly bk?: ArrayLike<number>;
  readonly bv?: ArrayLike<number>;
}

/** Multi-head attention: `qIn [B, Lq, qDim]`, `kvIn [B, Lk, kvDim]` → `[B, Lq, qDim]`. */
export function attentionRef(
  qIn: ArrayLike<number>,
  kvIn: ArrayLike<number>,
  B: number,
  Lq: number,
  Lk: number,
  qDim: number,
  kvDim: number,
  dim: number,
  heads: number,
  p: AttnParams,
): Float64Array {
  const hd = dim / heads;
  const out = new Float64Array(B * Lq * qDim);
  for (let bi = 0; bi < B; bi++) {
    const q = linearRef(Array.from({ length: Lq * qDim }, (_, i) => qIn[bi * Lq * qDim + i]!), Lq, qDim, dim, p.wq, p.bq);
    const kvRows = Array.from({ length: Lk * kvDim }, (_, i) => kvIn[bi * Lk * kvDim + i]!);
    const k = linearRef(kvRows, Lk, kvDim, dim, p.wk, p.bk);
    const v = linearRef(kvRows, Lk, kvDim, dim, p.wv, p.bv);
    const merged = new Float64Array(Lq * dim);
    for (let h = 0; h < heads; h++) {
      for (let i = 0; i < Lq; i++) {
        const s = new Float64Array(Lk);
        let mx = -Infinity;
        for (let j = 0; j < Lk; j++) {
          let d = 0;
          for (let e = 0; e < hd; e++) d += q[i * dim + h * hd + e]! * k[j * dim + h * hd + e]!;
          s[j] = d / Math.sqrt(hd);
          mx = Math.max(mx, s[j]!);
        }
        let z = 0;
        for (let j = 0; j < Lk; j++) z += (s[j] = Math.exp(s[j]! - mx));
        for (let e = 0; e < hd; e++) {
          let acc = 0;
          for (let j = 0; j < Lk; j++) acc += (s[j]! / z) * v[j * dim + h * hd + e]!;
          merged[i * dim + h * hd + e] = acc;
        }
      }
    }
    out.set(linearRef(merged, Lq, dim, qDim, p.wo, p.bo), bi * Lq * qDim);
  }
  return out;
}

/** diffusers `get_timestep_embedding(t, dim, flip_sin_to_cos=True, downscale_freq_shift=0)` in float64: `[cos, sin]`. */
export function sinusoidRef(ts: readonly number[], dim: number, maxPeriod = 10000): Float64Array {
  const half = dim / 2;
  const out = new Float64Array(ts.length * dim);
  ts.forEach((t, r) => {
    for (let i = 0; i < half; i++) {
      const a = t * Math.exp((-Math.log(maxPeriod) * i) / half);
      out[r * dim + i] = Math.cos(a);
      out[r * dim + half + i] = Math.sin(a);
    }
  });
  return out;
}

/** SiLU in float64. */
export function siluRef(x: number): number {
  return x / (1 + Math.exp(-x));
}

/** Largest absolute difference. */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`maxAbsDiff: lengths ${a.length} and ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** The op types the graph differentiator supports (its contract with the model builders). */
export const AUTODIFF_OPS: ReadonlySet<string> = new Set(
  'Conv Gemm MatMul Add Sub Mul Div Neg Pow Sqrt Exp Log Sigmoid Tanh Relu Softmax ReduceSum ReduceMean Reshape Transpose Concat Slice Split Gather Unsqueeze Squeeze Resize Identity Expand Where Sin Cos Cast'.split(' '),
);

/** What a built graph uses: op types, and every Reshape's constant target shape. */
export interface GraphAudit {
  readonly opTypes: ReadonlySet<string>;
  readonly nodeCount: number;
  /** Every Reshape: its data input and constant target shape. */
  readonly reshapes: readonly { readonly input: string; readonly target: readonly number[] }[];
  /** `Conv` nodes with a `group` other than 1, `Softmax` with an axis other than −1, `Gather` with an axis other than 0, `Pow` with a non-constant exponent. */
  readonly violations: readonly string[];
}

/** Inspect the nodes and initializers of `b.toModel()`. */
export function auditGraph(model: { graph?: { node?: unknown[] | null; initializer?: unknown[] | null } | null }): GraphAudit {
  type Attr = { name?: string | null; i?: number | { toNumber(): number } | null };
  type Node = { opType?: string | null; input?: string[] | null; attribute?: Attr[] | null };
  type Init = { name?: string | null; rawData?: Uint8Array | null; dims?: unknown[] | null };
  const nodes = (model.graph?.node ?? []) as Node[];
  const inits = new Map(((model.graph?.initializer ?? []) as Init[]).map((t) => [t.name ?? '', t]));
  const intAttr = (n: Node, name: string): number | undefined => {
    const a = (n.attribute ?? []).find((x) => x.name === name);
    if (a === undefined || a.i === null || a.i === undefined) return undefined;
    return typeof a.i === 'number' ? a.i : a.i.toNumber();
  };
  const opTypes = new Set<string>();
  const reshapes: { input: string; target: number[] }[] = [];
  const violations: string[] = [];
  for (const n of nodes) {
    const op = n.opType ?? '';
    opTypes.add(op);
    const ins = n.input ?? [];
    if (op === 'Reshape') {
      const t = inits.get(ins[1] ?? '');
      if (t === undefined || t.rawData === null || t.rawData === undefined) violations.push(`Reshape with non-constant target ${ins[1]}`);
      else {
        const raw = t.rawData;
        reshapes.push({ input: ins[0] ?? '', target: Array.from(new BigInt64Array(raw.slice().buffer), (v) => Number(v)) });
      }
    }
    if (op === 'Conv' && (intAttr(n, 'group') ?? 1) !== 1) violations.push('Conv with group != 1');
    if (op === 'Softmax' && intAttr(n, 'axis') !== -1) violations.push('Softmax not over axis -1');
    if (op === 'Gather' && (intAttr(n, 'axis') ?? 0) !== 0) violations.push('Gather axis != 0');
    if (op === 'Pow' && !inits.has(ins[1] ?? '')) violations.push('Pow with a non-constant exponent');
  }
  return { opTypes, nodeCount: nodes.length, reshapes, violations };
}
