/**
 * `memscope study run SPEC.yaml` (issue 15 §8): one spec file that combines models × prompt sets ×
 * seeds × samplers × guidance / methods × analyses into one results store and one results folder.
 * The spec expands into a plan of command runs (each a study of keyed units in the same store, so
 * runs that share units share them, and a rerun of the whole file computes nothing new); each run
 * writes its own results folder under OUT, and OUT/index.html and OUT/study.json list them.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { parse as parseYaml } from 'yaml';
import { parseFlags, flagsOf, validate, UsageError, InputError, didYouMean } from './args.ts';
import { STORE_FIELDS, QUEUE_FIELDS, checkQueueFlags, storeDirOf } from './study-run.ts';
import { commandHelp, flagDocs, schemaDefault } from './help.ts';
import { checkResultsTarget, withResultsDir } from '../io/results.ts';
import { writeJsonAtomic, writeFileAtomic } from '../io/atomic.ts';
import { page, table, escapeHtml } from '../report/html.ts';
import { sampleCommand } from './sample.ts';
import { analyzeCommand } from './analyze.ts';
import { transitionCommand } from './transition.ts';
import { evaluateCommand } from './evaluate.ts';
import { detectCommand } from './detect.ts';

/** The spec file's schema (defaults here). */
export const StudyFileSchema = z
  .object({
    models: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]).transform((v) => (typeof v === 'string' ? [v] : v)),
    prompts: z.string().min(1).optional(),
    seeds: z.union([z.string().min(1), z.number().int().min(0)]).transform(String).optional(),
    samplers: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]).transform((v) => (typeof v === 'string' ? [v] : v)).default(['ddim']),
    steps: z.number().int().min(1).max(1000).default(50),
    guidance: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]).transform((v) => (typeof v === 'string' ? [v] : v)).default(['constant:7.5']),
    analyses: z.array(z.enum(['kim', 'transition', 'evaluate', 'detect'])).default([]),
    out: z.string().min(1).optional(),
    store: z.string().min(1).optional(),
  })
  .strict();

/** A resolved spec file. */
export type StudyFile = z.infer<typeof StudyFileSchema>;

/** One command run of the plan. */
export interface StudyFileRun {
  /** Folder under OUT. */
  readonly name: string;
  readonly command: 'sample' | 'analyze kim' | 'transition' | 'evaluate' | 'detect';
  /** The command's flags (without --out / --store / --dry-run). */
  readonly args: readonly string[];
}

/** A folder-safe name of a model path or guidance spec. */
function slug(s: string): string {
  const base = s.replace(/\/+$/, '').split('/').pop() ?? s;
  return base.replace(/[^A-Za-z0-9._-]+/g, '_').replace(/^[._]+/, '') || 'x';
}

/** Expand a spec into its command runs: models × samplers × (guidance → sample, analyses → their command). */
export function planStudyFile(f: StudyFile): StudyFileRun[] {
  const runs: StudyFileRun[] = [];
  const common = (withPrompts: boolean): string[] => [...(withPrompts && f.prompts !== undefined ? ['--prompts', f.prompts] : []), ...(f.seeds !== undefined ? ['--seeds', f.seeds] : [])];
  const modelNames = new Map<string, number>();
  for (const model of f.models) {
    // two models with the same folder name get distinct folders
    const base = slug(model);
    const k = modelNames.get(base) ?? 0;
    modelNames.set(base, k + 1);
    const m = k === 0 ? base : `${base}-${k + 1}`;
    for (const sampler of f.samplers) {
      const shared = ['--model', model, '--sampler', sampler, '--steps', String(f.steps)];
      for (const g of f.guidance) runs.push({ name: `${m}/${sampler}/sample-${slug(g)}`, command: 'sample', args: [...shared, '--guidance', g, ...common(true)] });
      for (const a of f.analyses) {
        runs.push({ name: `${m}/${sampler}/${a}`, command: a === 'kim' ? 'analyze kim' : a, args: [...shared, ...common(true)] });
      }
    }
  }
  const seen = new Set<string>();
  for (const r of runs) {
    if (seen.has(r.name)) throw new UsageError(`SPEC: two runs would write ${r.name} (the same guidance or sampler listed twice?)`);
    seen.add(r.name);
  }
  return runs;
}

const Schema = z.object({
  out: z.string().min(1).optional().register(flagDocs, { value: 'DIR', help: 'the results folder (overrides the spec\'s out; default runs/study)' }),
  ...STORE_FIELDS,
  ...QUEUE_FIELDS,
});

/** A spec key's default as the study help shows it: `[a, b]` for a list. */
function specDefault(key: keyof typeof StudyFileSchema.shape): string {
  const v = schemaDefault(StudyFileSchema.shape[key]);
  return Array.isArray(v) ? `[${v.join(', ')}]` : String(v);
}

/** The help of `memscope study`, generated from its schema (and the spec file's defaults from {@link StudyFileSchema}). */
export const STUDY_HELP = commandHelp(Schema, {
  title: 'memscope study — run a spec file that combines models, prompts, seeds, samplers, guidance and analyses',
  usage: 'memscope study run SPEC.yaml [--out DIR] [--store DIR] [--queue URL [--blobs DIR]] [--dry-run]',
  blocks: [
    `The spec (YAML or JSON; every key but models optional):
  models:    [testbed, models/duplication]   each --model value (a list or one string)
  prompts:   caption:0-3,class:0             the conditions (as --prompts; default: each command's own)
  seeds:     0-3                             seeds (as --seeds)
  samplers:  [ddim, dpmpp2m]                 each sampler (default ${specDefault('samplers')})
  steps:     50                              inference steps (default ${specDefault('steps')})
  guidance:  [constant:7.5, dtp, og+dtp]     each guidance schedule of memscope sample (default ${specDefault('guidance')})
  analyses:  [kim, transition, evaluate, detect]  studies run once per model and sampler (kim = analyze kim)
  out:       runs/study                      the results folder (--out overrides it)
  store:     runs/store                      the results store (--store overrides it)`,
    { heading: 'Flags:', flags: ['out', 'store', 'queue', 'blobs', 'dry-run'] },
    `Runs one memscope sample per model × sampler × guidance and each analysis per model × sampler, all
into the same results store (units shared between runs are computed once; a rerun of the file
computes nothing), each into its own folder OUT/<model>/<sampler>/<name>/ with its run.json (which
memscope <command> --config takes; the spec file is the study's own configuration), then
OUT/study.json (the resolved spec and every run) and OUT/index.html. --dry-run prints each run's
units and how many are already in the store. With --queue every run's units go to the queue's
workers (memscope worker --queue URL), one run after the other; this process commits them.`,
  ],
  examples: ['memscope study run study.yaml --out runs/study'],
});

/** Read and validate a spec file, naming the file and the key on error. */
export async function readStudyFile(path: string): Promise<StudyFile> {
  const text = await readFile(path, 'utf8').catch((e: Error) => {
    throw new InputError(`SPEC: cannot read ${path}: ${e.message}`);
  });
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (e) {
    throw new InputError(`SPEC: ${path} is not valid YAML or JSON: ${(e as Error).message.split('\n')[0]}`);
  }
  const r = StudyFileSchema.safeParse(raw ?? {});
  if (!r.success) {
    const i = r.error.issues[0]!;
    if (i.code === 'unrecognized_keys') {
      const known = Object.keys(StudyFileSchema.shape);
      throw new InputError(`SPEC: ${path}: unknown key "${i.keys[0]}"${didYouMean(i.keys[0]!, known)}; expected some of ${known.join(', ')}`);
    }
    throw new InputError(`SPEC: ${path}: ${i.path.join('.') || 'the file'}: ${i.message}`);
  }
  return r.data;
}

const RUNNERS: Record<StudyFileRun['command'], (argv: string[]) => Promise<void>> = {
  sample: sampleCommand,
  'analyze kim': (argv) => analyzeCommand(['kim', ...argv]),
  transition: transitionCommand,
  evaluate: evaluateCommand,
  detect: detectCommand,
};

/** Parse and run `memscope study run SPEC.yaml`. */
export async function studyCommand(argv: string[]): Promise<void> {
  const [verb, file, ...rest] = argv;
  if (verb !== 'run') throw new UsageError(`expected "run SPEC.yaml" (got ${verb === undefined ? 'nothing' : `"${verb}"`})${verb === undefined ? '' : didYouMean(verb, ['run'])}`);
  if (file === undefined || file.startsWith('--')) throw new UsageError('run: expected the spec file, e.g. memscope study run study.yaml');
  const o = validate(Schema, parseFlags(rest, flagsOf(Schema)));
  await checkQueueFlags({ ...o, 'dry-run': true }); // --blobs without --queue, before anything
  const spec = await readStudyFile(file);
  const out = o.out ?? spec.out ?? 'runs/study';
  const store = storeDirOf(o.store ?? spec.store);
  const runs = planStudyFile(spec);
  if (o['dry-run']) {
    for (const r of runs) {
      process.stdout.write(`== ${r.name}: memscope ${r.command} ${r.args.join(' ')}\n`);
      await RUNNERS[r.command]([...r.args, '--store', store, '--dry-run']);
    }
    return;
  }
  await checkResultsTarget(out);
  await checkQueueFlags(o);
  const queue = [...(o.queue === undefined ? [] : ['--queue', o.queue]), ...(o.blobs === undefined ? [] : ['--blobs', o.blobs])];
  const done: { name: string; command: string; args: readonly string[]; seconds: number }[] = [];
  await withResultsDir(out, async (dir) => {
    for (const r of runs) {
      process.stderr.write(`memscope study: ${r.name} (memscope ${r.command} ${r.args.join(' ')})\n`);
      const t0 = performance.now();
      await RUNNERS[r.command]([...r.args, '--store', store, '--out', join(dir, r.name), ...queue]);
      done.push({ ...r, seconds: (performance.now() - t0) / 1000 });
    }
    await writeJsonAtomic(join(dir, 'study.json'), { command: 'study run', file, spec, store, runs: done });
    const links = done.map((r) => `<li><a href="${escapeHtml(r.name)}/report.html">${escapeHtml(r.name)}</a></li>`).join('\n');
    const rows = done.map((r) => [r.name, `memscope ${r.command} ${r.args.join(' ')}`, r.seconds]);
    await writeFileAtomic(join(dir, 'index.html'), page('memscope study', [`<h1>memscope study: ${escapeHtml(file)}</h1>`, `<p>Results store: <code>${escapeHtml(store)}</code>; each run's run.json names its units.</p>`, `<ul>${links}</ul>`, table(['run', 'command', 'seconds'], rows)].join('\n')));
  }, { command: 'study run' });
  process.stdout.write(`${join(out, 'index.html')}\n`);
}
