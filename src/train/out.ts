/**
 * Where `memscope train` may write (issue 14 §1): a new folder, an empty one, or a training run of
 * the same kind that it can resume from its checkpoints. It never starts over in a folder that
 * holds a finished model without a checkpoint (the shipped models have none: `checkpoints/` is not
 * shipped), never writes into a folder of other files, and never into the package's shipped
 * `models/` folder unless asked to (`--into-models`).
 */
import { lstat, readdir, readFile, readlink, stat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { UsageError } from '../io/errors.ts';
import { isSameOrAncestor, packageRootReal, realish } from '../io/results.ts';
import { listCheckpoints } from './checkpoint.ts';

/** What is trained: a scenario's diffusion model, the classifier or the copy descriptor. */
export type TrainTargetKind = 'model' | 'classifier' | 'descriptor';

/** The default `--out` of `memscope train --scenario NAME`: `runs/train/<NAME>` (relative to the current directory). */
export function defaultTrainOut(scenario: string): string {
  return join('runs', 'train', scenario);
}

const JSON_FILE: Record<TrainTargetKind, string> = { model: 'model.json', classifier: 'classifier.json', descriptor: 'descriptor.json' };
const FORMAT: Record<TrainTargetKind, string> = { model: 'memscope-trained-model', classifier: 'memscope-classifier', descriptor: 'memscope-descriptor' };

/** Options of {@link checkTrainTarget}. */
export interface TrainTargetOptions {
  /** What is trained. */
  readonly kind: TrainTargetKind;
  /** The scenario name (`classifier` / `descriptor` for those). */
  readonly scenario: string;
  /** The steps the run will train to. */
  readonly steps: number;
  /** Allow a folder inside the package's shipped `models/` (the `--into-models` flag). */
  readonly intoModels?: boolean;
}

/** What {@link checkTrainTarget} found: the step a run will resume from (null: a fresh start). */
export interface TrainTarget {
  readonly resumeFrom: number | null;
}

/**
 * Preflight of `memscope train --out DIR`, before any graph is built: throws a {@link UsageError}
 * naming `--out` (or `--steps`) unless DIR is missing, empty, or a training run of the same kind
 * (and scenario) with a checkpoint to resume from at or below `steps`.
 */
export async function checkTrainTarget(out: string, o: TrainTargetOptions): Promise<TrainTarget> {
  const target = resolve(out);
  const refuse = (what: string): UsageError => new UsageError(`--out "${out}" ${what}. Nothing was written.`);
  const real = await realish(target);
  const pkg = await packageRootReal();
  if (pkg !== null) {
    if (isSameOrAncestor(real, pkg)) throw refuse(`${real === pkg ? 'is' : 'contains'} the memscope package folder. Give a new folder, e.g. --out ${defaultTrainOut(o.scenario)}`);
    const models = join(pkg, 'models');
    if (!o.intoModels && isSameOrAncestor(models, real)) {
      throw refuse(`is inside memscope's shipped models folder (${models}); training there would replace a shipped model. Give another folder (default ${defaultTrainOut(o.scenario)}), or pass --into-models to write there on purpose`);
    }
  }
  let st;
  try {
    st = await lstat(target);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return parentProblem(target, refuse);
    throw refuse(`cannot be read (${code ?? (e as Error).message})`);
  }
  if (st.isSymbolicLink()) {
    const ok = await stat(target).then((s) => s.isDirectory(), () => false);
    if (!ok) throw refuse(`is a broken symbolic link (to ${await readlink(target).catch(() => '?')})`);
  } else if (st.isFile()) {
    throw refuse(`is a file (${st.size} bytes), not a model folder. Give a new folder, e.g. --out ${defaultTrainOut(o.scenario)}`);
  } else if (!st.isDirectory()) {
    throw refuse('is not a folder');
  }
  const entries = (await readdir(target)).sort();
  const jsonName = JSON_FILE[o.kind];
  const allowed = new Set(['checkpoints', 'weights.safetensors', jsonName, 'validation']);
  const foreign = entries.filter((n) => !allowed.has(n) && !/^\..*\.tmp$/.test(n));
  if (foreign.length) {
    const shown = foreign.slice(0, 6).join(', ') + (foreign.length > 6 ? `, … (${foreign.length} in all)` : '');
    throw refuse(`holds files that are not a memscope ${o.kind === 'model' ? 'training run' : `${o.kind} run`} (${shown}). Give a new or empty folder, e.g. --out ${defaultTrainOut(o.scenario)}`);
  }
  const checkpoints = await listCheckpoints(join(target, 'checkpoints'));
  const latest = checkpoints.length ? checkpoints[checkpoints.length - 1]!.step : null;
  let finishedSteps: number | null = null;
  if (entries.includes(jsonName)) {
    let meta: Record<string, unknown>;
    try {
      meta = JSON.parse(await readFile(join(target, jsonName), 'utf8')) as Record<string, unknown>;
    } catch (e) {
      throw refuse(`holds a ${jsonName} memscope cannot read (${(e as Error).message})`);
    }
    if (meta['format'] !== FORMAT[o.kind]) throw refuse(`holds a ${jsonName} that is not a ${FORMAT[o.kind]} file`);
    if (o.kind === 'model' && meta['scenario'] !== o.scenario) throw refuse(`holds a trained ${String(meta['scenario'])} model, not ${o.scenario}. Give a new folder, e.g. --out ${defaultTrainOut(o.scenario)}`);
    const training = meta['training'] as Record<string, unknown> | undefined;
    const n = o.kind === 'classifier' ? meta['steps'] : training?.['steps'];
    finishedSteps = typeof n === 'number' ? n : null;
  }
  if (latest === null && (finishedSteps !== null || entries.includes('weights.safetensors'))) {
    throw refuse(
      `holds a finished ${o.scenario} model${finishedSteps === null ? '' : ` (${finishedSteps} steps)`} and no checkpoint to resume from (checkpoints/ is not shipped with memscope's models), ` +
        `so training there would start again from step 0 and replace it. Give a new folder, e.g. --out ${defaultTrainOut(o.scenario)}-2`,
    );
  }
  if (latest !== null && latest > o.steps) {
    throw new UsageError(`--steps ${o.steps}: the run in "${out}" is already at step ${latest}; pass --steps ${latest} or more to continue it, or give a new --out`);
  }
  return { resumeFrom: latest };
}

async function parentProblem(target: string, refuse: (what: string) => UsageError): Promise<TrainTarget> {
  let p = dirname(target);
  for (;;) {
    const st = await stat(p).catch((e: NodeJS.ErrnoException) => e);
    if (st instanceof Error) {
      const parent = dirname(p);
      if (parent === p) throw refuse('cannot be created');
      p = parent;
      continue;
    }
    if (!st.isDirectory()) throw refuse(`cannot be created: ${p} is a file, not a folder`);
    return { resumeFrom: null };
  }
}
