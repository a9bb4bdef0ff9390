/**
 * `memscope queue status|drain|cancel URL`: watch and stop the studies queued with `--queue`
 * (issue 18 §3). Status reads what each coordinator last wrote (units done / in flight / waiting /
 * retrying / failed / remaining, per-worker throughput, ETA) and the workers connected now. Drain
 * removes a study's waiting jobs, lets the running ones finish and be committed, and stops its
 * coordinator; cancel removes every job of the study that no worker holds and stops its coordinator
 * at once. Neither touches the store: rerunning the study's command finishes it.
 */
import { z } from 'zod';
import { Queue } from 'bullmq';
import { parseFlags, validate, UsageError, didYouMean } from './args.ts';
import { commandHelp, flagDocs } from './help.ts';
import { checkQueue, QUEUE_NAME, redisConnection } from '../queue/connection.ts';
import { readStatus, readStatuses, requestStop, statusLines, type StopMode } from '../queue/status.ts';
import type { JobData } from '../queue/jobs.ts';

const Schema = z.object({
  study: z
    .string()
    .regex(/^[0-9a-f]{12}$/, 'expected the 12-hex-digit study id that the coordinator printed (memscope queue status lists them)')
    .optional()
    .register(flagDocs, { value: 'ID', help: 'the study (required by drain and cancel; status shows only it)' }),
  json: z.boolean().default(false).register(flagDocs, { help: 'status as JSON' }),
});

const VERBS = ['status', 'drain', 'cancel'] as const;

/** The help of `memscope queue`. */
export const QUEUE_HELP = commandHelp(Schema, {
  title: 'memscope queue — watch and stop the studies queued with --queue',
  usage: ['memscope queue status URL [--study ID] [--json]', 'memscope queue drain URL --study ID', 'memscope queue cancel URL --study ID'],
  blocks: [
    { flags: ['study', 'json'] },
    `status: every study in the queue (as its coordinator last wrote it: units done, in flight,
waiting, retrying, failed and remaining, each worker's committed units and throughput, an ETA) and
the workers connected now (host:pid:provider).
drain: no new job of the study starts (its waiting jobs are removed); the running ones finish, the
coordinator commits them and stops with a message. cancel: every job of the study that no worker
holds is removed and the coordinator stops at once (a worker's running batch finishes; its result
stays in the queue and is committed by the next run). Neither removes anything from the store:
running the study's command again finishes it.`,
  ],
  examples: ['memscope queue status redis://10.0.0.5:6379/0', 'memscope queue drain redis://10.0.0.5:6379/0 --study 3f2a9c0b1d4e'],
});

/** Parse and run `memscope queue …`. */
export async function queueCommand(argv: string[]): Promise<void> {
  const [verb, url, ...rest] = argv;
  if (verb === undefined || !(VERBS as readonly string[]).includes(verb)) throw new UsageError(`expected status, drain or cancel (got ${verb === undefined ? 'nothing' : `"${verb}"`})${verb === undefined ? '' : didYouMean(verb, [...VERBS])}`);
  if (url === undefined || url.startsWith('--')) throw new UsageError(`${verb}: expected the queue URL, e.g. memscope queue ${verb} redis://127.0.0.1:6379/0`);
  const o = validate(Schema, parseFlags(rest, { study: { type: 'string' }, json: { type: 'boolean' } }));
  if (verb !== 'status' && o.study === undefined) throw new UsageError(`--study: required by memscope queue ${verb} (memscope queue status ${url} lists the studies)`);
  await checkQueue(url, 'URL');
  const redis = redisConnection(url);
  redis.on('error', () => {});
  const queue = new Queue<JobData<unknown>>(QUEUE_NAME, { connection: redis });
  try {
    if (verb === 'status') {
      const studies = (await readStatuses(redis)).filter((s) => o.study === undefined || s.study === o.study);
      const workers = (await queue.getWorkers()).map((w) => String(w['rawname'] ?? w['name'] ?? '').replace(/^.*:w:/, ''));
      const counts = await queue.getJobCounts('waiting', 'active', 'delayed', 'completed', 'failed', 'prioritized');
      if (o.json) {
        process.stdout.write(`${JSON.stringify({ queue: url, jobs: counts, workers, studies }, null, 2)}\n`);
        return;
      }
      const lines = [`queue ${url}: jobs ${Object.entries(counts).map(([k, v]) => `${v} ${k}`).join(', ')}`, `workers connected: ${workers.length === 0 ? 'none' : workers.join(', ')}`];
      if (studies.length === 0) lines.push(o.study === undefined ? 'no study has run on this queue (in the last week)' : `no study ${o.study} on this queue`);
      for (const s of studies) lines.push(...statusLines(s));
      process.stdout.write(`${lines.join('\n')}\n`);
      return;
    }
    const study = o.study!;
    const s = await readStatus(redis, study);
    if (s === null) throw new UsageError(`--study: no study ${study} on ${url} (memscope queue status ${url} lists the studies)`);
    const mode: StopMode = verb === 'drain' ? 'drain' : 'cancel';
    await requestStop(redis, study, mode);
    // the jobs no worker holds: waiting ones for a drain; for a cancel also those finished or failed and not yet committed
    const states = mode === 'drain' ? (['waiting', 'delayed', 'prioritized'] as const) : (['waiting', 'delayed', 'prioritized', 'completed', 'failed'] as const);
    let removed = 0;
    for (const state of states) {
      for (const job of await queue.getJobs([state])) {
        if (job?.data.run !== study) continue;
        // a job a worker took meanwhile is locked: remove() refuses it, and it finishes
        if (await job.remove().then(() => true, () => false)) removed++;
      }
    }
    process.stdout.write(`study ${study} (memscope ${s.command}): ${mode === 'drain' ? 'draining' : 'cancelled'}; ${removed} job${removed === 1 ? '' : 's'} removed from the queue; its coordinator stops at its next poll. The store keeps every committed unit: run the same command again to finish the study.\n`);
  } finally {
    await queue.close().catch(() => {});
    redis.disconnect();
  }
}
