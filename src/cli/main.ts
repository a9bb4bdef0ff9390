/** The `memscope` command line: one file per command, dispatched here. */
import { UsageError, InputError, didYouMean } from './args.ts';
import { ZodError } from 'zod';
import type { CommandHelp } from './help.ts';
import { sampleCommand, SAMPLE_HELP } from './sample.ts';
import { demoCommand, DEMO_HELP } from './demo.ts';
import { trainCommand, TRAIN_HELP } from './train.ts';
import { exportCommand, EXPORT_HELP } from './export.ts';
import { validateCommand, VALIDATE_HELP } from './validate.ts';
import { analyzeCommand, ANALYZE_HELP } from './analyze.ts';
import { sweepCommand, SWEEP_HELP } from './sweep.ts';
import { detectCommand, DETECT_HELP } from './detect.ts';
import { curvesCommand, CURVES_HELP } from './curves.ts';
import { evaluateCommand, EVALUATE_HELP } from './evaluate.ts';
import { geometryCommand, GEOMETRY_HELP } from './geometry.ts';
import { resultsCommand, RESULTS_HELP } from './results.ts';
import { transitionCommand, TRANSITION_HELP } from './transition.ts';
import { studyCommand, STUDY_HELP } from './study.ts';
import { reportCommand, REPORT_HELP } from './report.ts';
import { serveCommand, SERVE_HELP } from './serve.ts';
import { workerCommand, WORKER_HELP } from './worker.ts';
import { queueCommand, QUEUE_HELP } from './queue.ts';
import { promptsCommand, PROMPTS_HELP } from './prompts.ts';

/** Every command: its entry point, its help (generated from its flag schema, src/cli/help.ts) and its one-line summary. */
export const COMMANDS: Readonly<Record<string, { run: (argv: string[]) => Promise<void>; help: CommandHelp; summary: string }>> = {
  demo: { run: demoCommand, help: DEMO_HELP, summary: 'memorized vs generalizing conditions under CFG, DTP and OG+DTP on the embedded data (= npm start)' },
  sample: { run: sampleCommand, help: SAMPLE_HELP, summary: 'sample a testbed condition, a trained model or an ONNX model with any sampler and guidance schedule, tracing every step' },
  train: { run: trainCommand, help: TRAIN_HELP, summary: 'train a scenario model (duplication, small-set, class, edm-*) on the embedded data; resumes killed runs' },
  validate: { run: validateCommand, help: VALIDATE_HELP, summary: 'measure how a trained model copies its memorized captions and generalizes on class prompts' },
  analyze: { run: analyzeCommand, help: ANALYZE_HELP, summary: 'the Kim et al. analysis suite (loss, overestimation, diversity, decomposition, score) with its claims table' },
  sweep: { run: sweepCommand, help: SWEEP_HELP, summary: 'the CFG-start sweep of Jain et al.: one sample per guidance start step and the empirical transition point' },
  detect: { run: detectCommand, help: DETECT_HELP, summary: 'memorization detection (Wen et al., Webster, Ren et al.) over a labelled prompt set: scores, ROC AUC, TPR at 1 / 3 / 5 / 10 % FPR' },
  curves: { run: curvesCommand, help: CURVES_HELP, summary: 'guidance-magnitude curves under zero CFG, CFG and OG, and the static transition point (Jain et al.)' },
  transition: { run: transitionCommand, help: TRANSITION_HELP, summary: 'per prompt and seed: the sweep transition step, the DTP switch step and the zero-CFG d_t curve (Jain et al. Fig. 2)' },
  evaluate: { run: evaluateCommand, help: EVALUATE_HELP, summary: 'the mitigation table of Jain et al.: copy similarity, memorization rate, alignment, Fréchet distance, s/image per method' },
  geometry: { run: geometryCommand, help: GEOMETRY_HELP, summary: 'Dodson & Gao geometry: posterior concentration, shell coverage, noise regimes, per-σ memorization, generalization gap' },
  export: { run: exportCommand, help: EXPORT_HELP, summary: 'write a trained model as standalone ONNX files with the diffusers U-Net signature' },
  study: { run: studyCommand, help: STUDY_HELP, summary: 'run a spec file (YAML): models × prompts × seeds × samplers × guidance × analyses into one store and one results folder' },
  report: { run: reportCommand, help: REPORT_HELP, summary: 'one self-contained HTML page across the study runs of a results store: figures, claims tables, settings, prompt → runs' },
  serve: { run: serveCommand, help: SERVE_HELP, summary: 'a dashboard over a results store on 127.0.0.1: study progress, interactive figures, two runs side by side, a prompt across runs' },
  worker: { run: workerCommand, help: WORKER_HELP, summary: 'run the units of studies queued with --queue (BullMQ on Redis) until stopped; any number of hosts' },
  queue: { run: queueCommand, help: QUEUE_HELP, summary: 'watch and stop the studies queued with --queue: units done / in flight / failed / remaining, workers, ETA; drain or cancel one' },
  prompts: { run: promptsCommand, help: PROMPTS_HELP, summary: 'the public memorized-prompt sets of the papers (Wen, Ren, NeMo): list them, fetch one (pinned, SHA-256 checked) for --prompt-set NAME' },
  results: { run: resultsCommand, help: RESULTS_HELP, summary: 'the results store: list study runs (results ls), export their per-unit and per-step tables (results export)' },
};

const MAIN_HELP = `memscope — see how and why diffusion models memorize their training data

Usage: memscope <command> [flags]     (memscope <command> --help for details)

Commands:
${Object.entries(COMMANDS).map(([k, v]) => `  ${k.padEnd(10)} ${v.summary}`).join('\n')}

Examples:
  memscope demo
  memscope sample --prompts caption:0-3,class:0 --guidance dtp:7.5 --seeds 0-7 --out runs/dtp
`;

/** Run the CLI with `argv` (without node and script); returns the process exit code. */
export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (cmd === undefined || cmd === '--help' || cmd === '-h' || cmd === 'help') {
    const sub = cmd === 'help' ? rest[0] : undefined;
    if (sub !== undefined && !COMMANDS[sub]) return unknownCommand(sub);
    process.stdout.write(sub ? COMMANDS[sub]!.help.text : MAIN_HELP);
    return cmd === undefined ? 2 : 0;
  }
  const c = COMMANDS[cmd];
  if (!c) return unknownCommand(cmd);
  if (rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(c.help.text);
    return 0;
  }
  try {
    await c.run(rest);
    return 0;
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`memscope ${cmd}: ${e.message}\n(see memscope ${cmd} --help)\n`);
      return 2;
    }
    if (e instanceof InputError) {
      process.stderr.write(`memscope ${cmd}: ${e.message}\n`);
      return 2;
    }
    // a schema check inside the library: one line per issue, never the JSON dump of ZodError.message
    const msg = e instanceof ZodError ? e.issues.map((i) => `${i.path.join('.') || 'value'}: ${i.message}`).join('; ') : (e as Error).message;
    process.stderr.write(`memscope ${cmd}: ${msg}\n`);
    if (process.env['MEMSCOPE_DEBUG']) process.stderr.write(`${(e as Error).stack}\n`);
    return 1;
  }
}

function unknownCommand(cmd: string): number {
  const names = Object.keys(COMMANDS);
  process.stderr.write(`memscope: unknown command "${cmd}"${didYouMean(cmd, names)}; expected one of ${names.join(', ')}\n`);
  return 2;
}
