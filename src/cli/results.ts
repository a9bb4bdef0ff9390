/** `memscope results`: list the study runs of a results store and export their tables. */
import { z } from 'zod';
import { join } from 'node:path';
import { parseFlags, validate, UsageError, didYouMean } from './args.ts';
import { commandHelp, flagDocs } from './help.ts';
import { SqliteStore, defaultStoreDir } from '../store/sqlite-store.ts';
import { withResultsDir } from '../io/results.ts';
import { writeFileAtomic } from '../io/atomic.ts';

const ExportSchema = z.object({
  store: z.string().min(1).optional().register(flagDocs, { value: 'DIR', help: 'the store (default $MEMSCOPE_STORE, else runs/store)' }),
  study: z.string().min(1).register(flagDocs, { value: 'ID', help: 'a study run id as listed by `results ls` (or a unique prefix of it)' }),
  format: z.enum(['parquet', 'csv', 'jsonl']).default('parquet').register(flagDocs, { value: 'F', help: 'parquet | csv | jsonl' }),
  out: z.string().min(1).optional().register(flagDocs, { value: 'DIR', help: 'where the tables go (default runs/export-<study run id>); replaced only when it is missing, empty or an export memscope wrote' }),
});
const LsSchema = z.object({ store: ExportSchema.shape.store });

/** The help of `memscope results`, generated from the schema of `results export` (whose flags include those of `results ls`). */
export const RESULTS_HELP = commandHelp(ExportSchema, {
  title: 'memscope results — the results store: list study runs, export their tables',
  usage: ['memscope results ls [--store DIR]', 'memscope results export --study ID [--store DIR] [--format parquet|csv|jsonl] [--out DIR]'],
  blocks: [
    { flags: ['store', 'study', 'format', 'out'] },
    `export writes units.<ext> (one row per unit: key, study, run_id, seconds, host, version,
finished_at, the spec and result fields flattened with dots — spec.seed, result.switchStep —
and blob.<name> content hashes) and steps.<ext> (one row per unit × sampler step: key, step and
each per-step series of the result, e.g. t, alphaBar, s, d).`,
  ],
  examples: [
    'memscope results ls',
    'memscope results export --study 4cdacb73 --format parquet --out runs/tables',
    `python -c "import pandas as pd; print(pd.read_parquet('runs/tables/steps.parquet'))"`,
  ],
});

const SUBCOMMANDS = ['ls', 'export'];

/** Parse and run `memscope results`. */
export async function resultsCommand(argv: string[]): Promise<void> {
  const [sub, ...rest] = argv;
  if (sub === 'ls') return ls(rest);
  if (sub === 'export') return exportCmd(rest);
  if (sub === undefined) throw new UsageError(`expected a subcommand: ${SUBCOMMANDS.join(' | ')}`);
  throw new UsageError(`unknown subcommand "${sub}"${didYouMean(sub, SUBCOMMANDS)}; expected one of ${SUBCOMMANDS.join(', ')}`);
}

async function ls(argv: string[]): Promise<void> {
  const o = validate(LsSchema, parseFlags(argv, { store: { type: 'string' } }));
  const dir = o.store ?? defaultStoreDir();
  const store = await SqliteStore.open(dir, { mustExist: true, readonly: true });
  try {
    const studies = store.studies();
    const lines = [`store ${store.dir}: ${studies.length} study run${studies.length === 1 ? '' : 's'}`];
    if (studies.length) {
      lines.push(`${'study run'.padEnd(18)}${'study'.padEnd(12)}${'units'.padEnd(14)}created`);
      for (const s of studies) lines.push(`${s.runId.padEnd(18)}${s.name.padEnd(12)}${`${s.stored}/${s.units}`.padEnd(14)}${s.createdAt}`);
    }
    process.stdout.write(lines.join('\n') + '\n');
  } finally {
    store.close();
  }
}

async function exportCmd(argv: string[]): Promise<void> {
  const o = validate(ExportSchema, parseFlags(argv, { store: { type: 'string' }, study: { type: 'string' }, format: { type: 'string' }, out: { type: 'string' } }));
  const dir = o.store ?? defaultStoreDir();
  const store = await SqliteStore.open(dir, { mustExist: true, readonly: true });
  try {
    const run = store.findStudy(o.study);
    const rows = store.studyRows(run.runId);
    // loaded here, not at start-up: the Parquet writer is needed by this command only
    const { encodeTable, exportTables } = await import('../store/export.ts');
    const { units, steps } = exportTables(rows);
    const out = o.out ?? join('runs', `export-${run.runId}`);
    await withResultsDir(
      out,
      async (d) => {
        await writeFileAtomic(join(d, `units.${o.format}`), encodeTable(units, o.format));
        await writeFileAtomic(join(d, `steps.${o.format}`), encodeTable(steps, o.format));
      },
      { command: 'results export' },
    );
    process.stdout.write(`${join(out, `units.${o.format}`)} (${units.rows.length} rows)\n${join(out, `steps.${o.format}`)} (${steps.rows.length} rows)\n`);
  } finally {
    store.close();
  }
}
