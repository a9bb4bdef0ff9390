/**
 * Training-step throughput of memscope's ONNX differentiator against PyTorch on the same
 * architecture, batch and thread count: a ResNet-style conv block (batch 64, 32→64 channels,
 * 32×32; three 3×3 convs, two GroupNorms, SiLU, a 1×1 skip conv, MSE loss). memscope: forward +
 * backward through `gradientGraph` in onnxruntime (2 threads). PyTorch 1.13 CPU (`/usr/bin/python3`,
 * `torch.set_num_threads(2)`): `loss.backward()` with the same layers (nn.Conv2d, nn.GroupNorm,
 * F.silu). Rounds alternate between the two (each side warmed up first); medians are compared.
 * Target ratio ≥ 0.5.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { GraphBuilder } from '../src/graph/builder.ts';
import { createSession } from '../src/graph/session.ts';
import { gradientGraph } from '../src/graph/autodiff.ts';

/** Shape of the benchmarked block (default: batch 64, 32 → 64 channels, 32×32, GroupNorm with 8 groups). */
export interface BlockConfig {
  /** Batch size. */
  readonly batch: number;
  /** Input channels. */
  readonly cin: number;
  /** Block channels. */
  readonly c: number;
  /** Height = width. */
  readonly size: number;
  /** GroupNorm groups. */
  readonly groups: number;
}

const DEFAULT: BlockConfig = { batch: 64, cin: 32, c: 64, size: 32, groups: 8 };

function median(v: readonly number[]): number {
  const s = [...v].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

/** Deterministic pseudo-random values in ±scale (no Math.random). */
function values(n: number, seed: number, scale: number): Float32Array {
  const a = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    a[i] = ((s / 4294967296) * 2 - 1) * scale;
  }
  return a;
}

/** The block as a float32 ONNX forward graph with an MSE loss output (`cfg` default: the benchmarked shape); returns the model, parameter shapes and all input shapes. */
export function buildBlock(cfg: BlockConfig = DEFAULT): { model: Uint8Array; params: Record<string, number[]>; inputShapes: Record<string, number[]> } {
  const { batch: N, cin, c: C, size: S, groups: G } = cfg;
  const b = new GraphBuilder({ name: 'conv_block' });
  const params: Record<string, number[]> = {
    'conv1.w': [C, cin, 3, 3],
    'conv1.b': [C],
    'gn1.g': [C],
    'gn1.b': [C],
    'conv2.w': [C, C, 3, 3],
    'conv2.b': [C],
    'gn2.g': [C],
    'gn2.b': [C],
    'conv3.w': [C, C, 3, 3],
    'conv3.b': [C],
    'skip.w': [C, cin, 1, 1],
    'skip.b': [C],
  };
  const x = b.input('x', 'float32', [N, cin, S, S]);
  const target = b.input('target', 'float32', [N, C, S, S]);
  for (const [k, d] of Object.entries(params)) b.input(k, 'float32', d);
  const conv = (inp: string, w: string, bias: string, k: number): string => b.op('Conv', [inp, w, bias], { kernel_shape: [k, k], pads: k === 3 ? [1, 1, 1, 1] : [0, 0, 0, 0] });
  const gn = (inp: string, g: string, beta: string): string => {
    const r = b.op('Reshape', [inp, b.constI64([N, G, (C / G) * S * S])]);
    const mean = b.op('ReduceMean', [r], { axes: [2], keepdims: 1 });
    const d = b.op('Sub', [r, mean]);
    const v = b.op('ReduceMean', [b.op('Mul', [d, d])], { axes: [2], keepdims: 1 });
    const n = b.op('Div', [d, b.op('Sqrt', [b.op('Add', [v, b.constF32(1e-5)])])]);
    const back = b.op('Reshape', [n, b.constI64([N, C, S, S])]);
    return b.op('Add', [b.op('Mul', [back, b.op('Reshape', [g, b.constI64([C, 1, 1])])]), b.op('Reshape', [beta, b.constI64([C, 1, 1])])]);
  };
  const silu = (v: string): string => b.op('Mul', [v, b.op('Sigmoid', [v])]);
  const h1 = silu(gn(conv(x, 'conv1.w', 'conv1.b', 3), 'gn1.g', 'gn1.b'));
  const h2 = silu(gn(conv(h1, 'conv2.w', 'conv2.b', 3), 'gn2.g', 'gn2.b'));
  const out = b.op('Add', [conv(h2, 'conv3.w', 'conv3.b', 3), conv(x, 'skip.w', 'skip.b', 1)]);
  const diff = b.op('Sub', [out, target]);
  b.output(b.op('ReduceMean', [b.op('Mul', [diff, diff])], { keepdims: 0 }), 'float32', [], 'loss');
  const inputShapes: Record<string, number[]> = { x: [N, cin, S, S], target: [N, C, S, S], ...params };
  return { model: b.toBytes(), params, inputShapes };
}

const TORCH = `
import json, sys, time, torch, torch.nn as nn, torch.nn.functional as F
torch.set_num_threads(2)
N, CIN, C, S, G, REPS = [int(v) for v in sys.argv[1:7]]
class Block(nn.Module):
    def __init__(s):
        super().__init__()
        s.conv1 = nn.Conv2d(CIN, C, 3, padding=1); s.gn1 = nn.GroupNorm(G, C)
        s.conv2 = nn.Conv2d(C, C, 3, padding=1); s.gn2 = nn.GroupNorm(G, C)
        s.conv3 = nn.Conv2d(C, C, 3, padding=1); s.skip = nn.Conv2d(CIN, C, 1)
    def forward(s, x):
        h = F.silu(s.gn1(s.conv1(x))); h = F.silu(s.gn2(s.conv2(h)))
        return s.conv3(h) + s.skip(x)
torch.manual_seed(0)
m = Block(); x = torch.randn(N, CIN, S, S); t = torch.randn(N, C, S, S)
def step():
    m.zero_grad(set_to_none=True)
    F.mse_loss(m(x), t).backward()
for _ in range(2): step()
ts = []
for _ in range(REPS):
    t0 = time.perf_counter(); step(); ts.append(time.perf_counter() - t0)
print(json.dumps({"ms": [v * 1000 for v in ts], "torch": torch.__version__, "blas": sorted({l.split()[-1] for l in open("/proc/self/maps") if "blas" in l.lower() and "/" in l})}))
`;

function torchTimes(cfg: BlockConfig, reps: number): { ms: number[]; version: string; blas: string[] } | { skipped: string } {
  const py = '/usr/bin/python3';
  if (!existsSync(py)) return { skipped: `${py} not found` };
  const r = spawnSync(py, ['-c', TORCH, ...[cfg.batch, cfg.cin, cfg.c, cfg.size, cfg.groups, reps].map(String)], { encoding: 'utf8', env: { ...process.env, OMP_NUM_THREADS: '2' } });
  if (r.status !== 0) return { skipped: `PyTorch peer failed: ${(r.stderr || r.error?.message || '').trim().split('\n').slice(-1)[0]}` };
  const j = JSON.parse(r.stdout.trim().split('\n').slice(-1)[0]!) as { ms: number[]; torch: string; blas: string[] };
  return { ms: j.ms, version: j.torch, blas: j.blas };
}

/**
 * Time forward + backward of the conv block through the gradient graph (onnxruntime, 2 threads)
 * and the same block in PyTorch; `rounds` alternations of `reps` steps each (defaults 3 × 5).
 * Returns medians, the throughput ratio memscope / PyTorch and the target (≥ 0.5).
 */
export async function benchAutodiff(cfg: BlockConfig = DEFAULT, rounds = 3, reps = 5): Promise<Record<string, unknown>> {
  const { model, params, inputShapes } = buildBlock(cfg);
  const t0 = performance.now();
  const grad = gradientGraph(model, { loss: 'loss', wrt: Object.keys(params), inputShapes });
  const buildMs = performance.now() - t0;
  const session = await createSession(grad, { threads: 2 });
  const feeds: Record<string, { dims: number[]; data: Float32Array }> = {};
  let seed = 1;
  for (const [k, d] of Object.entries(inputShapes)) {
    const n = d.reduce((a, b) => a * b, 1);
    const fanIn = k.endsWith('.w') ? d.slice(1).reduce((a, b) => a * b, 1) : 1;
    feeds[k] = { dims: d, data: k.startsWith('gn') && k.endsWith('.g') ? new Float32Array(n).fill(1) : values(n, seed++, k.endsWith('.w') ? 1 / Math.sqrt(fanIn) : k.endsWith('.b') ? 0.05 : 1) };
  }
  for (let i = 0; i < 2; i++) await session.run(feeds);
  const ort: number[] = [];
  const torch: number[] = [];
  let torchInfo: string | undefined;
  let torchBlas: string[] = [];
  let skipped: string | undefined;
  for (let r = 0; r < rounds; r++) {
    await session.run(feeds); // untimed: the first step after the PyTorch process ran is slow (caches, page reclaim)
    for (let i = 0; i < reps; i++) {
      const s = performance.now();
      await session.run(feeds);
      ort.push(performance.now() - s);
    }
    if (skipped === undefined) {
      const t = torchTimes(cfg, reps);
      if ('skipped' in t) skipped = t.skipped;
      else {
        torch.push(...t.ms);
        torchInfo = t.version;
        torchBlas = t.blas;
      }
    }
  }
  await session.release();
  const ortMs = median(ort);
  const out: Record<string, unknown> = {
    what: 'training step (forward + backward, all parameter gradients) of a conv block: batch 64, 32→64 channels, 32×32, 3×3 convs ×3 + 1×1 skip, GroupNorm(8) ×2, SiLU, MSE; onnxruntime gradient graph vs PyTorch, 2 threads each',
    config: cfg,
    gradientGraphBuildMs: buildMs,
    memscopeMs: ortMs,
    memscopeRunsMs: ort,
  };
  if (skipped !== undefined) out['peer'] = { skipped };
  else {
    const torchMs = median(torch);
    out['peer'] = { name: 'PyTorch', version: torchInfo, blas: torchBlas, ms: torchMs, runsMs: torch };
    out['throughputRatio'] = torchMs / ortMs;
  }
  out['target'] = 'throughputRatio ≥ 0.5 (memscope steps/s ÷ PyTorch steps/s)';
  return out;
}
