/**
 * Where a training step of the lab U-Net spends its time (issue 16 §6): onnxruntime's profiler on
 * the gradient graph of `memscope train` (forward + backward in one session, as src/train/run.ts
 * runs it), per op type, for the 16/32/32 and 32/64/64 models at batch 64 — plus the achieved
 * FLOP/s (3 × 2 × forward MACs per image × batch ÷ session time per step: backward ≈ 2× forward)
 * and its fraction of this machine's sgemm peak measured in the same run (bench/peak.ts), the
 * share of the step spent in GEMM kernels (Conv/MatMul/Gemm) and their own rate, and the same
 * graph with composed normalisations (`fusedNormalization: false`, the graph before the fusion)
 * profiled in the same run as the peer (`fusedVsComposed` = ratio of median step times).
 *
 * The optimizer (AdamW in JS) is not in the session and not profiled here; `bench train` times it.
 * Standalone: `node --import tsx bench/train-profile.ts [--steps N] [--warmup N] [--threads N]
 * [--batch N] [--only small|base] [--top N]` (`--top`: the N slowest nodes with their output shapes).
 */
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { createSession, type Feed } from '../src/graph/session.ts';
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
  readonly args?: { readonly op_name?: string; readonly output_type_shape?: readonly Record<string, readonly number[]>[] };
}

const r3 = (x: number): number => Math.round(x * 1000) / 1000;

/** Op types that run GEMM kernels (MLAS sgemm / conv); the rest is memory-bound elementwise, reduction and layout work. */
const GEMM_OPS = new Set(['Conv', 'FusedConv', 'ConvTranspose', 'MatMul', 'FusedMatMul', 'Gemm']);

/** The gradient graph of one training step, its feeds (seed-0 parameters, a fixed batch) and outputs. */
function stepGraph(channels: readonly number[], B: number, fusedNormalization: boolean): { bytes: Uint8Array; feeds: Record<string, Feed>; outs: string[]; macs: number } {
  const model = benchModelConfig(channels);
  const g = buildTrainingGraph(model, B, { fusedNormalization });
  const wrt = g.specs.map((p) => p.name);
  const bytes = gradientGraph(g.bytes, { loss: g.loss, wrt, inputShapes: g.inputShapes });
  const params = new Map(initParams(g.specs, 0).values);
  return { bytes, feeds: stepFeeds(makeBatch(model, B), g.specs, params), outs: ['loss', ...wrt.map((n) => `grad/${n}`)], macs: forwardMacs(model) };
}

const median = (a: readonly number[]): number => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!;

/**
 * Median step time (no profiler) of the trainer's graph (fused normalisations) and of the composed
 * one, interleaved: both sessions open, `rounds` alternations of `steps` runs each after `warmup`.
 */
async function timeBoth(channels: readonly number[], B: number, steps: number, warmup: number, threads: number, rounds: number): Promise<{ fused: number; composed: number; maxLossDiff: number }> {
  const sides = [stepGraph(channels, B, true), stepGraph(channels, B, false)];
  const sessions = await Promise.all(sides.map((s) => createSession(s.bytes, { threads })));
  try {
    const times: number[][] = [[], []];
    const losses: number[] = [];
    for (let k = 0; k < 2; k++) for (let i = 0; i < warmup; i++) losses[k] = (await sessions[k]!.run(sides[k]!.feeds, sides[k]!.outs))['loss']!.data[0]!;
    for (let r = 0; r < rounds; r++) {
      for (let k = 0; k < 2; k++) {
        for (let i = 0; i < steps; i++) {
          const t0 = performance.now();
          await sessions[k]!.run(sides[k]!.feeds, sides[k]!.outs);
          times[k]!.push(performance.now() - t0);
        }
      }
    }
    return { fused: median(times[0]!), composed: median(times[1]!), maxLossDiff: Math.abs(losses[0]! - losses[1]!) };
  } finally {
    for (const s of sessions) await s.release();
  }
}

async function profileOne(channels: readonly number[], B: number, steps: number, warmup: number, threads: number, top: number): Promise<Record<string, unknown>> {
  const { bytes: gradBytes, feeds, outs, macs } = stepGraph(channels, B, true);
  const dir = await mkdtemp(join(tmpdir(), 'memscope-train-profile-'));
  try {
    const session = await createSession(gradBytes, { threads, profile: join(dir, 'ort') });
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
    const byNode = new Map<string, { op: string; us: number; out: string }>();
    let nodeTotal = 0;
    for (const e of events) {
      if (e.cat !== 'Node' || !e.name.endsWith('_kernel_time') || e.ts < from) continue;
      const op = e.args?.op_name ?? '?';
      byOp.set(op, (byOp.get(op) ?? 0) + e.dur);
      nodeTotal += e.dur;
      const node = e.name.slice(0, -'_kernel_time'.length);
      const prev = byNode.get(node);
      if (prev) prev.us += e.dur;
      else byNode.set(node, { op, us: e.dur, out: (e.args?.output_type_shape ?? []).map((o) => JSON.stringify(Object.values(o)[0])).join(' ') });
    }
    const runUs = timed.reduce((a, e) => a + e.dur, 0);
    const sorted = timed.map((e) => e.dur).sort((a, b) => a - b);
    const msPerStep = median(sorted) / 1000; // median: a stray slow run does not move it
    const gflops = (6 * macs * B) / (msPerStep / 1000) / 1e9;
    const ops = [...byOp].sort((a, b) => b[1] - a[1]).map(([op, us]) => ({ op, msPerStep: r3(us / 1000 / steps), share: r3(us / runUs) }));
    const nodes = [...byNode].sort((a, b) => b[1].us - a[1].us).slice(0, top).map(([name, v]) => ({ name, op: v.op, out: v.out, msPerStep: r3(v.us / 1000 / steps) }));
    const gemmUs = [...byOp].filter(([op]) => GEMM_OPS.has(op)).reduce((a, [, us]) => a + us, 0);
    return {
      channels,
      batch: B,
      steps,
      profiledMsPerStep: r3(msPerStep),
      kernelShare: r3(nodeTotal / runUs),
      gemmShare: r3(gemmUs / runUs),
      gemmGflops: r3((6 * macs * B) / (gemmUs / steps / 1e6) / 1e9),
      forwardMacsPerImage: macs,
      profiledGflops: r3(gflops),
      nodeCount: byNode.size,
      ops,
      ...(top > 0 ? { nodes } : {}),
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Per-op profile of one training step of each lab size, FLOP/s and the fraction of the sgemm peak. */
export async function benchTrainProfile(o: { steps?: number; warmup?: number; threads?: number; batch?: number; top?: number; only?: string } = {}): Promise<Record<string, unknown>> {
  const steps = o.steps ?? 5;
  const warmup = o.warmup ?? 3; // onnxruntime's first two or three runs of a session are up to 2× slower
  const batch = o.batch ?? 64;
  const top = o.top ?? 0;
  // 2 threads (the peak) and 1 (how the lab trainings run: two processes, one thread each), each against its own peak
  const runs: Record<string, unknown>[] = [];
  for (const threads of o.threads === undefined ? [2, 1] : [o.threads]) {
    const peak = gemmPeak(threads);
    const models: Record<string, unknown>[] = [];
    for (const m of TRAIN_BENCH_MODELS) {
      if (o.only !== undefined && o.only !== m.name) continue;
      // the trainer's graph and, as the peer, the same graph with composed normalisations (before the fusion), interleaved without the profiler
      const t = await timeBoth(m.channels, batch, steps, warmup, threads, 2);
      const r = await profileOne(m.channels, batch, steps, warmup, threads, top);
      const flop = 6 * (r['forwardMacsPerImage'] as number) * batch;
      const gflops = flop / (t.fused / 1000) / 1e9;
      const composedGflops = flop / (t.composed / 1000) / 1e9;
      models.push({
        model: m.name,
        msPerStep: r3(t.fused),
        gflops: r3(gflops),
        ...('gflops' in peak ? { fractionOfPeak: r3(gflops / peak.gflops) } : {}),
        composedNormalization: { msPerStep: r3(t.composed), gflops: r3(composedGflops), ...('gflops' in peak ? { fractionOfPeak: r3(composedGflops / peak.gflops) } : {}), lossDiff: t.maxLossDiff },
        fusedVsComposed: r3(t.fused / t.composed),
        profile: r,
      });
    }
    runs.push({ threads, peak, models });
  }
  return {
    what: 'one training step (gradient graph: forward + backward) of the lab U-Net + text encoder at 2 and 1 threads: median session time without the profiler, interleaved with the same graph with composed normalisations (before the fusion; fusedVsComposed = ratio); GFLOP/s = 6 × forward MACs × batch ÷ median step time; fraction of the numpy sgemm peak at the same thread count measured in the same run; profile: onnxruntime profiler per op type, gemmShare = time in Conv/MatMul/Gemm kernels (gemmGflops: their own rate), the rest memory-bound',
    runs,
    target: 'fractionOfPeak ≥ 0.4 on the shipped architectures (issue 16 §6)',
  };
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  const { values } = parseArgs({ options: { steps: { type: 'string' }, warmup: { type: 'string' }, threads: { type: 'string' }, batch: { type: 'string' }, top: { type: 'string' }, only: { type: 'string' } } });
  const num = (v: string | undefined): number | undefined => (v === undefined ? undefined : Number(v));
  const opts = Object.fromEntries(Object.entries({ steps: num(values.steps), warmup: num(values.warmup), threads: num(values.threads), batch: num(values.batch), top: num(values.top), only: values.only }).filter(([, v]) => v !== undefined));
  process.stdout.write(JSON.stringify(await benchTrainProfile(opts), null, 2) + '\n');
}
