/**
 * Pixel-space copy detection against a training set: nearest and second-nearest training
 * images, the ratio test of SPEC §5.4 (‖x̂ − NN1‖/‖x̂ − NN2‖ < 1/3 ⇒ memorized), whether the
 * nearest image is the condition's own target, and a mean-centred pixel cosine similarity.
 */
import type { Tensor } from '../tensor/tensor.ts';
import { rowSize, batchSize } from '../tensor/tensor.ts';
import { meanBatch } from '../tensor/ops.ts';
import { NearestIndex } from './nearest.ts';
import { takeRows } from '../data/indices.ts';

/** Copy statistics of one generated sample. */
export interface CopyStat {
  /** Index of the nearest training image. */
  readonly nn1: number;
  /** ‖x̂ − NN1‖ / ‖x̂ − NN2‖ (SPEC §5.4). */
  readonly ratio: number;
  /** ratio < ratioThreshold. */
  readonly ratioCopy: boolean;
  /** Mean-centred cosine similarity between the sample and its nearest training image. */
  readonly similarity: number;
  /** Whether the nearest training image is this sample's target (null when it has none). */
  readonly nearestIsTarget: boolean | null;
}

/** Options of `CopyDetector.stats`. */
export interface CopyOptions {
  /** Ratio-test threshold (SPEC §5.4 default 1/3). */
  readonly ratioThreshold?: number;
}

/** Copy detection against a fixed training set. */
export class CopyDetector {
  private constructor(
    private readonly index: NearestIndex,
    private readonly train: Tensor,
    private readonly mean: Float32Array,
    private readonly rows: readonly number[] | null,
  ) {}

  /**
   * Index a training set `[n, ...]`, or only its rows `pool` (a model's image pool, model.json
   * `imagePool`: the images it was trained on); `nn1` and the targets stay indices into `train`.
   */
  static async create(train: Tensor, pool: readonly number[] | null = null): Promise<CopyDetector> {
    const set = pool === null ? train : takeRows(train, pool);
    if (batchSize(set) < 2) throw new Error(`copy detection needs at least 2 training images, got ${batchSize(set)}`);
    return new CopyDetector(await NearestIndex.create(set), set, meanBatch(set).data, pool === null ? null : [...pool]);
  }

  /** Statistics for each sample; `targets[i]` is sample i's target training index or null. */
  async stats(samples: Tensor, targets: readonly (number | null)[], opts: CopyOptions = {}): Promise<CopyStat[]> {
    const thr = opts.ratioThreshold ?? 1 / 3;
    const m = batchSize(samples);
    if (targets.length !== m) throw new Error(`copy stats: need one target entry per sample (${m}), got ${targets.length}`);
    const nb = await this.index.query(samples, 2);
    const d = rowSize(samples);
    const out: CopyStat[] = [];
    for (let i = 0; i < m; i++) {
      const local = nb.index[2 * i]!;
      const nn1 = this.rows === null ? local : this.rows[local]!;
      const ratio = Math.sqrt(nb.dist2[2 * i]! / Math.max(nb.dist2[2 * i + 1]!, 1e-30));
      let ab = 0;
      let aa = 0;
      let bb = 0;
      for (let j = 0; j < d; j++) {
        const a = samples.data[i * d + j]! - this.mean[j]!;
        const b = this.train.data[local * d + j]! - this.mean[j]!;
        ab += a * b;
        aa += a * a;
        bb += b * b;
      }
      const t = targets[i];
      out.push({
        nn1,
        ratio,
        ratioCopy: ratio < thr,
        similarity: aa > 0 && bb > 0 ? ab / Math.sqrt(aa * bb) : 0,
        nearestIsTarget: t === null || t === undefined ? null : t === nn1,
      });
    }
    return out;
  }

  /** Release the index. */
  async dispose(): Promise<void> {
    await this.index.dispose();
  }
}
