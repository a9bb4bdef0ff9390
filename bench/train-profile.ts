/**
 * Where a training step of the lab U-Net spends its time (issue 16 §6): onnxruntime's profiler on
 * the gradient graph of `memscope train` (forward + backward in one session, as src/train/run.ts
 * runs it), per op type, for the 16/32/32 and 32/64/64 models at batch 64 — plus the achieved
 * FLOP/s (3 × 2 × forward MACs per image × batch ÷ session time per step: backward ≈ 2× forward)
 * and its fraction of this machine's sgemm peak measured in the same run (bench/peak.ts).
 *
 * The optimizer (AdamW in JS) is not in the session and not profiled here; `bench train` times it.
 * Standalone: `node --import tsx bench/train-profile.ts [--steps N] [--warmup N] [--threads N]`.
 */
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { createSession } from '../src/graph/session.ts';
import { gradientGraph } from '../src/graph/autodiff.ts';
import { buildTrainingGraph } from '../src/models/diffusion-model.ts';
import { initParams } from '../src/models/init.ts';
import { TRAIN_BENCH_MODELS, benchModelConfig, forwardMacs, makeBatch, stepFeeds } from './train.ts';
import { gemmPeak } from './peak.ts';

/** One Chrome-trace event of onnxruntime's profiler. */
interface TraceEvent {
  readonly cat: string;
  readonly name: string;
  readonly ts: number;
  readonly dur: number;
  readonly args?: { readonly op_name?: string };
}

const r3 = (x: number): number => Math.round(x * 1000) / 1000;

async function profileOne(channels: readonly number[], B: number, steps: number, warmup: number, threads: number): Promise<Record<string, unknown>> {
  const model = benchModelConfig(channels);
  const g = buildTrainingGraph(model, B);
  const wrt = g.specs.map((p) => p.name);
  const gradBytes = gradientGraph(g.bytes, { loss: g.loss, wrt, inputShapes: g.inputShapes });
  const dir = await mkdtemp(join(tmpdir(), 'memscope-train-profile-'));
  try {
    const session = await createSession(gradBytes, { threads, profile: join(dir, 'ort') });
    const params = new Map(initParams(g.specs, 0).values);
    const feeds = stepFeeds(makeBatch(model, B), g.specs, params);
    const outs = ['loss', ...wrt.map((n) => `grad/${n}`)];
    for (let i = 0; i < warmup + steps; i++) await session.run(feeds, outs);
    session.endProfiling();
    await session.release();
    const file = (await readdir(dir)).find((f) => f.startsWith('ort') && f.endsWith('.json'));
    if (file === undefined) throw new Error('bench train-profile: onnxruntime wrote no profile');
    const events = JSON.parse(await readFile(join(dir, file), 'utf8')) as TraceEvent[];
    const runs = events.filter((e) => e.cat === 'Session' && e.name === 'model_run').sort((a, b) => a.ts - b.ts);
    if (runs.length !== warmup + steps) throw new Error(`bench train-profile: expected ${warmup + steps} model_run events, got ${runs.length}`);
    const timed = runs.slice(warmup);
    const from = timed[0]!.ts;
    const byOp = new Map<string, number>();
    let nodeTotal = 0;
    for (const e of events) {
      if (e.cat !== 'Node' || !e.name.endsWith('_kernel_time') || e.ts < from) continue;
      const op = e.args?.op_name ?? '?';
      byOp.set(op, (byOp.get(op) ?? 0) + e.dur);
      nodeTotal += e.dur;
    }
    const runUs = timed.reduce((a, e) => a + e.dur, 0);
    const msPerStep = runUs / 1000 / steps;
    const macs = forwardMacs(model);
    const gflops = (6 * macs * B) / (msPerStep / 1000) / 1e9;
    const ops = [...byOp].sort((a, b) => b[1] - a[1]).map(([op, us]) => ({ op, msPerStep: r3(us / 1000 / steps), share: r3(us / runUs) }));
    return { channels, batch: B, steps, msPerStep: r3(msPerStep), kernelShare: r3(nodeTotal / runUs), forwardMacsPerImage: macs, gflops: r3(gflops), ops };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Per-op profile of one training step of each lab size, FLOP/s and the fraction of the sgemm peak. */
export async function benchTrainProfile(o: { steps?: number; warmup?: number; threads?: number; batch?: number } = {}): Promise<Record<string, unknown>> {
  const steps = o.steps ?? 5;
  const warmup = o.warmup ?? 2;
  const threads = o.threads ?? 2;
  const batch = o.batch ?? 64;
  const peak = gemmPeak(threads);
  const models: Record<string, unknown>[] = [];
  for (const m of TRAIN_BENCH_MODELS) {
    const r = await profileOne(m.channels, batch, steps, warmup, threads);
    models.push({ model: m.name, ...r, ...('gflops' in peak ? { fractionOfPeak: r3((r['gflops'] as number) / peak.gflops) } : {}) });
  }
  return {
    what: 'onnxruntime profile of one training step (gradient graph: forward + backward) of the lab U-Net + text encoder, per op type; GFLOP/s = 6 × forward MACs × batch ÷ session time; fraction of the numpy sgemm peak measured in the same run',
    threads,
    peak,
    models,
    target: 'fractionOfPeak ≥ 0.4 on the shipped architectures (issue 16 §6)',
  };
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  const { values } = parseArgs({ options: { steps: { type: 'string' }, warmup: { type: 'string' }, threads: { type: 'string' }, batch: { type: 'string' } } });
  const num = (v: string | undefined): number | undefined => (v === undefined ? undefined : Number(v));
  const opts = Object.fromEntries(Object.entries({ steps: num(values.steps), warmup: num(values.warmup), threads: num(values.threads), batch: num(values.batch) }).filter(([, v]) => v !== undefined));
  process.stdout.write(JSON.stringify(await benchTrainProfile(opts), null, 2) + '\n');
}
