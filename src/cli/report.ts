/** `memscope report --store DIR`: one self-contained HTML page across the study runs of a results store. */
import { z } from 'zod';
import { join } from 'node:path';
import { parseFlags, validate } from './args.ts';
import { commandHelp, flagDocs } from './help.ts';
import { SqliteStore, defaultStoreDir, type StudyRunRow } from '../store/sqlite-store.ts';
import { checkResultsTarget, withResultsDir } from '../io/results.ts';
import { writeFileAtomic } from '../io/atomic.ts';
import { storeReport } from '../study/store-report.ts';

const Schema = z.object({
  store: z.string().min(1).optional().register(flagDocs, { value: 'DIR', help: 'the results store (default $MEMSCOPE_STORE, else runs/store)' }),
  study: z.string().min(1).optional().register(flagDocs, { value: 'ID[,ID…]', help: 'study run ids as `results ls` lists them (or unique prefixes); default every run, newest first' }),
  out: z.string().min(1).default(join('runs', 'report')).register(flagDocs, { value: 'DIR', help: 'where report.html goes; replaced only when it is missing, empty or a results folder memscope wrote' }),
});

/** The help of `memscope report`. */
export const REPORT_HELP = commandHelp(Schema, {
  title: 'memscope report — one self-contained HTML page across the studies of a results store',
  usage: ['memscope report [--store DIR] [--study ID[,ID…]] [--out DIR]'],
  blocks: [
    { flags: ['store', 'study', 'out'] },
    `For each study run: its settings, how many units are stored, and its tables and figures from
the stored units — Kim et al.'s claims table and curves (analyze kim), Jain et al.'s guidance
curves (curves), transition steps (transition), the detectors' ROC and AUC (detect), the d_t
curves of sampling runs (sample, demo, validate), Dodson & Gao's regimes and per-σ curves
(geometry) — and an index from every prompt to the runs that hold it. No model is loaded.
Studies whose tables need their model (evaluate, sweep, swap) are listed with their settings and
the command that re-renders them.
The store may be read while a study writes it: an unfinished run is marked incomplete.`,
  ],
  examples: ['memscope report --store runs/store --out runs/report', 'memscope report --study 4cdacb73,6e9b4b46'],
});

/** Parse and run `memscope report`. */
export async function reportCommand(argv: string[]): Promise<void> {
  const o = validate(Schema, parseFlags(argv, { store: { type: 'string' }, study: { type: 'string' }, out: { type: 'string' } }));
  await checkResultsTarget(o.out, { command: 'report' });
  const dir = o.store ?? defaultStoreDir();
  const store = await SqliteStore.open(dir, { mustExist: true, readonly: true });
  let html: string;
  let runs: StudyRunRow[];
  try {
    runs = o.study === undefined ? store.studies() : o.study.split(',').map((id) => store.findStudy(id.trim()));
    html = await storeReport(store, { runs });
  } finally {
    store.close();
  }
  await withResultsDir(o.out, async (d) => writeFileAtomic(join(d, 'report.html'), html), { command: 'report' });
  process.stdout.write(`${runs.length} study run(s)\n${join(o.out, 'report.html')}\n`);
}
