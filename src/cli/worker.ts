/** `memscope worker --queue URL`: run the units of queued studies (issue 18) until stopped. */
import { z } from 'zod';
import { parseFlags, validate, positiveInt } from './args.ts';
import { commandHelp, flagDocs } from './help.ts';
import { checkQueue } from '../queue/connection.ts';
import { probeExecutionProvider } from '../graph/session.ts';
import { InputError } from '../io/errors.ts';
import { startWorker, type ResolvedContext } from '../queue/worker.ts';
import type { JobContext } from '../queue/jobs.ts';
import { sampleWorkerContext } from './sample.ts';
import { kimWorkerContext } from './analyze.ts';
import { transitionWorkerContext } from './transition.ts';
import { evaluateWorkerContext } from './evaluate.ts';
import { detectWorkerContext } from './detect.ts';
import { validateWorkerContext } from './validate.ts';
import { curvesWorkerContext } from './curves.ts';
import { sweepWorkerContext } from './sweep.ts';

const Schema = z.object({
  queue: z.string().min(1).register(flagDocs, { value: 'URL', help: 'the queue: redis://HOST:PORT/DB, as given to the study command' }),
  concurrency: positiveInt('concurrency', 64).default(1).register(flagDocs, { value: 'N', help: 'jobs run at once' }),
  provider: z.enum(['cpu', 'cuda']).default('cpu').register(flagDocs, { value: 'P', help: "cpu | cuda: onnxruntime's execution provider for every model this worker loads (cuda: docs/install.md#gpu-workers)" }),
  threads: positiveInt('threads', 256).optional().register(flagDocs, { value: 'N', help: 'onnxruntime threads per model (default $MEMSCOPE_THREADS, else 2)' }),
});

/** The commands whose units a worker runs, and how it rebuilds their study and source. */
const COMMANDS: Readonly<Record<string, (ctx: JobContext) => Promise<ResolvedContext>>> = {
  sample: sampleWorkerContext,
  'analyze kim': kimWorkerContext,
  transition: transitionWorkerContext,
  evaluate: evaluateWorkerContext,
  detect: detectWorkerContext,
  validate: validateWorkerContext,
  curves: curvesWorkerContext,
  sweep: sweepWorkerContext,
};

/** The help of `memscope worker`. */
export const WORKER_HELP = commandHelp(Schema, {
  title: 'memscope worker — run queued study units (memscope <command> --queue URL) until stopped',
  usage: ['memscope worker --queue URL [--provider cpu|cuda] [--concurrency N] [--threads N]'],
  blocks: [
    { flags: ['queue', 'provider', 'concurrency', 'threads'] },
    `Takes jobs (batches of units) from the queue, loads each job's model once (from the flags the
coordinator recorded; relative paths resolve against the coordinator's folder, so a worker on
another host needs the same paths, e.g. a shared mount), runs the units and returns their outputs:
the coordinator commits them to its store. Start any number of workers on any hosts. A worker
killed mid-job loses nothing: the job's lock expires and another worker runs it. Commands whose
units run on workers so far: ${Object.keys(COMMANDS).join(', ')}. Ctrl-C stops after the running jobs.`,
  ],
  examples: ['memscope worker --queue redis://10.0.0.5:6379/0', 'memscope worker --queue redis://10.0.0.5:6379/0 --provider cuda', 'MEMSCOPE_THREADS=1 memscope worker --queue redis://127.0.0.1:6379/0 --concurrency 2'],
});

/** Parse and run `memscope worker`. */
export async function workerCommand(argv: string[]): Promise<void> {
  const o = validate(Schema, parseFlags(argv, { queue: { type: 'string' }, provider: { type: 'string' }, concurrency: { type: 'string' }, threads: { type: 'string' } }));
  if (o.provider !== 'cpu') {
    const why = await probeExecutionProvider(o.provider);
    if (why !== null) {
      throw new InputError(
        `--provider ${o.provider}: this onnxruntime-node installation cannot run the ${o.provider.toUpperCase()} execution provider (${why.split('\n')[0]}); ` +
          'fetch the provider with ONNXRUNTIME_NODE_INSTALL=cuda12 npm rebuild onnxruntime-node (linux x64, NVIDIA driver with CUDA 12 and cuDNN 9; docs/install.md#gpu-workers), or start the worker with --provider cpu',
      );
    }
  }
  await checkQueue(o.queue);
  // every model this worker loads runs on its provider (the coordinator's --provider describes the coordinator's machine)
  process.env['MEMSCOPE_PROVIDER'] = o.provider;
  if (o.threads !== undefined) process.env['MEMSCOPE_THREADS'] = String(o.threads);
  const lockMs = Number(process.env['MEMSCOPE_QUEUE_LOCK_MS'] ?? 30_000);
  const w = await startWorker(
    o.queue,
    async (ctx) => {
      const make = COMMANDS[ctx.command];
      const { provider: _coordinatorProvider, ...flags } = ctx.flags;
      void _coordinatorProvider;
      if (!make) throw new Error(`this worker (memscope ${process.env['npm_package_version'] ?? ''}) runs units of ${Object.keys(COMMANDS).join(', ')} only, not of ${ctx.command}`);
      return make({ ...ctx, flags });
    },
    {
      provider: o.provider,
      concurrency: o.concurrency,
      lockMs: Number.isFinite(lockMs) && lockMs > 0 ? lockMs : 30_000,
      onJob: (e) => process.stdout.write(`${e.error === undefined ? 'done' : 'FAILED'} ${e.jobId.slice(0, 16)}: ${e.units} unit${e.units === 1 ? '' : 's'} in ${e.seconds.toFixed(2)} s${e.error === undefined ? '' : ` — ${e.error}`}\n`),
    },
  );
  process.stdout.write(`memscope worker ${w.name} on ${o.queue}\n`);
  await new Promise<void>((resolve) => {
    const stop = (): void => {
      void w.close().then(resolve);
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
}
