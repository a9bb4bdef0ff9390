/**
 * Copy tests of stored samples for the dashboard: the nearest training image of a sample, the
 * ratio d1/d2 of its two nearest (SPEC §5.4: a copy when d1/d2 < 1/3 and the nearest image is the
 * prompt's own) and the mean-centred pixel similarity — the numbers `memscope validate` reports,
 * here for one sample at a time. The model of a run (its spec's `model`, resolved from the
 * dashboard's working folder) is opened on first use, only for its training images, image pool,
 * codec and the prompts' target images; a run whose model cannot be opened gets the reason instead.
 */
import { resolve } from 'node:path';
import type { Tensor } from '../tensor/tensor.ts';
import { CopyDetector, type CopyStat } from '../metrics/copy.ts';
import { loadStudySource, type StudySource } from '../study/source.ts';

/** One sample's copy test, with the nearest training image itself (`[1, C, H, W]`, image space in [−1, 1]). */
export interface SampleCopy extends CopyStat {
  /** The sample in image space (`[1, C, H, W]`; an SD export's decoded image, a padded model's cropped sample). */
  readonly sample: Tensor;
  /** The nearest training image. */
  readonly nearest: Tensor;
  /** The sample's prompt's target training image (null without one). */
  readonly target: number | null;
  /** How many training images the test searched (the model's image pool). */
  readonly poolSize: number;
}

/** A run's model, opened for copy tests. */
interface Oracle {
  readonly source: StudySource;
  readonly detector: CopyDetector;
  readonly poolSize: number;
}

/** The model spec of a run's resolved spec (`model`, and the testbed's `captions`), or null when it names none. */
function modelOf(runSpec: unknown): { model: string; captions?: number } | null {
  if (typeof runSpec !== 'object' || runSpec === null) return null;
  const s = runSpec as { model?: unknown; captions?: unknown };
  if (typeof s.model !== 'string') return null;
  return { model: s.model, ...(typeof s.captions === 'number' ? { captions: s.captions } : {}) };
}

/** Copy tests of stored samples against their runs' models (opened once each, then cached). */
export class CopyLookup {
  private readonly oracles = new Map<string, Promise<Oracle | string>>();
  private readonly results = new Map<string, Promise<SampleCopy | string>>();

  /** @param cwd the folder relative model paths of the runs resolve against (default the process's). */
  constructor(private readonly cwd: string = process.cwd()) {}

  /** The model of `runSpec`, opened (or why it cannot be). */
  private oracle(runSpec: unknown): Promise<Oracle | string> {
    const m = modelOf(runSpec);
    if (m === null) return Promise.resolve('the run names no model');
    const spec = m.model === 'testbed' ? 'testbed' : resolve(this.cwd, m.model);
    const id = `${spec}\0${m.captions ?? ''}`;
    let hit = this.oracles.get(id);
    if (!hit) {
      hit = (async (): Promise<Oracle | string> => {
        let source: StudySource;
        try {
          source = await loadStudySource(spec, m.captions === undefined ? {} : { testbed: { captions: m.captions } });
        } catch (e) {
          return `its model ${m.model} cannot be opened from here (${(e as Error).message})`;
        }
        if (source.trainImages.dims[0]! < 2) return `its model ${m.model} has no training images to compare with`;
        const pool = source.data.imagePool;
        return { source, detector: await CopyDetector.create(source.trainImages, pool), poolSize: pool === null ? source.trainImages.dims[0]! : pool.length };
      })();
      this.oracles.set(id, hit);
    }
    return hit;
  }

  /**
   * The copy test of the stored sample `x0` (model space, `[C, H, W]`) of unit `key`, prompted by
   * condition `conditionId` in a run with spec `runSpec`; a string says why there is none.
   */
  sample(key: string, x0: Tensor, conditionId: string | null, runSpec: unknown): Promise<SampleCopy | string> {
    let hit = this.results.get(key);
    if (!hit) {
      hit = (async (): Promise<SampleCopy | string> => {
        const o = await this.oracle(runSpec);
        if (typeof o === 'string') return o;
        const cond = conditionId === null ? undefined : o.source.denoiser.conditions.find((c) => c.id === conditionId);
        const target = cond?.targets?.[0] ?? null;
        const sample = await o.source.toImageSpace({ dims: [1, ...x0.dims], data: x0.data });
        const [stat] = await o.detector.stats(sample, [target]);
        const per = sample.data.length;
        const nearest = { dims: [...sample.dims], data: o.source.trainImages.data.slice(stat!.nn1 * per, (stat!.nn1 + 1) * per) };
        return { ...stat!, sample, nearest, target, poolSize: o.poolSize };
      })();
      this.results.set(key, hit);
    }
    return hit;
  }

  /** Release the models' sessions. */
  async dispose(): Promise<void> {
    for (const p of this.oracles.values()) {
      const o = await p;
      if (typeof o === 'string') continue;
      await o.detector.dispose();
      await o.source.denoiser.dispose?.();
    }
  }
}
