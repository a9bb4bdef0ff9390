/**
 * Exact k-nearest training images under squared Euclidean distance, through one ONNX graph
 * (a GEMM for ‖q‖² − 2⟨q, x_i⟩ + ‖x_i‖² and TopK). Used by copy detection (SPEC §5.4 ratio test,
 * "nearest training image" of SPEC §3.8 and §4.5).
 */
import { GraphBuilder } from '../graph/builder.ts';
import { createSession, type Session } from '../graph/session.ts';
import type { Tensor } from '../tensor/tensor.ts';
import { rowSize, batchSize } from '../tensor/tensor.ts';

/** k nearest neighbours of each query: indices and squared distances, `[m, k]` row-major. */
export interface Neighbours {
  readonly k: number;
  readonly index: Int32Array;
  readonly dist2: Float64Array;
}

/** A reusable exact nearest-neighbour index over a fixed reference set `[n, ...]`. */
export class NearestIndex {
  private constructor(
    private readonly session: Session,
    readonly n: number,
    readonly d: number,
  ) {}

  /** Build the index (one ONNX session holding the reference images and their norms). */
  static async create(reference: Tensor): Promise<NearestIndex> {
    const n = batchSize(reference);
    const d = rowSize(reference);
    const b = new GraphBuilder({ name: 'nearest' });
    const q = b.input('q', 'float32', ['M', d]);
    const k = b.input('k', 'int64', [1]);
    const X = b.initializer('x', reference.data, [n, d]);
    const XN = b.op('Reshape', [b.op('ReduceSum', [b.op('Mul', [X, X]), b.constI64([1])], { keepdims: 0 }), b.constI64([1, n])]);
    const dot = b.op('Gemm', [q, X], { transB: 1 });
    const qn = b.op('ReduceSum', [b.op('Mul', [q, q]), b.constI64([1])], { keepdims: 1 });
    const dist = b.op('Add', [b.op('Sub', [qn, b.op('Mul', [dot, b.constF32(2)])]), XN]);
    const [vals, idx] = b.opN('TopK', [dist, k], { axis: 1, largest: 0, sorted: 1 }, { outputs: 2 });
    b.output(vals!, 'float32', ['M', null], 'dist2');
    b.output(idx!, 'int64', ['M', null], 'index');
    return new NearestIndex(await createSession(b.toBytes()), n, d);
  }

  /** The k nearest reference rows of every query row (`[m, ...]` with the reference's row size). */
  async query(queries: Tensor, k = 2): Promise<Neighbours> {
    if (rowSize(queries) !== this.d) throw new Error(`nearest: query rows have ${rowSize(queries)} values, the reference has ${this.d}`);
    if (!Number.isInteger(k) || k < 1 || k > this.n) throw new Error(`nearest: k must be an integer in 1..${this.n}, got ${k}`);
    const m = batchSize(queries);
    const out = await this.session.runRaw({ q: { dims: [m, this.d], data: queries.data }, k: { type: 'int64', dims: [1], data: BigInt64Array.of(BigInt(k)) } });
    const idx = out['index']!.data as BigInt64Array;
    const dist = out['dist2']!.data as Float32Array;
    return { k, index: Int32Array.from(idx, (x) => Number(x)), dist2: Float64Array.from(dist, (x) => Math.max(0, x)) };
  }

  /** Release the session. */
  async dispose(): Promise<void> {
    await this.session.release();
  }
}
