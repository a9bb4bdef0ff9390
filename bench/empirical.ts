/**
 * Benchmark of the exact empirical denoiser (SPEC §2.1): achieved GFLOP/s of `predict` on
 * n = 12000 training images of d = 784 at batch B = 32, counting the two GEMMs (2·2·B·n·d
 * flops), and its ratio to numpy doing the same two float32 GEMMs (`/usr/bin/python3`, run as a
 * subprocess with the same thread count) — target ratio ≥ 0.7. Also: the f64 and exact paths,
 * and the 784×784 symmetric eigendecomposition (flat tred2/tql2 vs ml-matrix).
 *
 * Standalone: `node --import tsx bench/empirical.ts` prints JSON.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { EigenvalueDecomposition, Matrix } from 'ml-matrix';
import { makeEmpiricalDenoiser } from '../src/denoisers/empirical.ts';
import { eigh } from '../src/linalg/eigh.ts';
import { defaultThreads } from '../src/graph/session.ts';
import { mulberry32 } from '../test/helpers/random.ts';

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

async function timeIt(fn: () => Promise<unknown>, warm: number, runs: number): Promise<number[]> {
  for (let i = 0; i < warm; i++) await fn();
  const out: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await fn();
    out.push(performance.now() - t0);
  }
  return out;
}

const NUMPY = `
import sys, time, json
import numpy as np
n, d, B, runs = (int(a) for a in sys.argv[1:5])
rng = np.random.default_rng(0)
X = (rng.random((n, d), dtype=np.float32) * 2 - 1)
Y = rng.standard_normal((B, d), dtype=np.float32)
W = rng.random((B, n), dtype=np.float32)
def once():
    G = Y @ X.T
    D = W @ X
    return G, D
for _ in range(3): once()
ts = []
for _ in range(runs):
    t0 = time.perf_counter(); once(); ts.append((time.perf_counter() - t0) * 1e3)
out = {"numpy": np.__version__, "ms": sorted(ts)[len(ts)//2]}
try:
    import torch
    torch.set_num_threads(int(sys.argv[5]))
    Xt = torch.from_numpy(X); Yt = torch.from_numpy(Y); Wt = torch.from_numpy(W)
    for _ in range(3): Yt @ Xt.T; Wt @ Xt
    ts = []
    for _ in range(runs):
        t0 = time.perf_counter(); Yt @ Xt.T; Wt @ Xt; ts.append((time.perf_counter() - t0) * 1e3)
    out["torch"] = torch.__version__; out["torchMs"] = sorted(ts)[len(ts)//2]
except Exception as e:
    out["torchError"] = str(e)
print(json.dumps(out))
`;

function numpyGemm(n: number, d: number, B: number, runs: number, threads: number): Record<string, unknown> | null {
  const py = '/usr/bin/python3';
  if (!existsSync(py)) return null;
  try {
    const env = { ...process.env, OPENBLAS_NUM_THREADS: String(threads), OMP_NUM_THREADS: String(threads), MKL_NUM_THREADS: String(threads) };
    const out = execFileSync(py, ['-c', NUMPY, String(n), String(d), String(B), String(runs), String(threads)], { env, encoding: 'utf8', timeout: 300_000 });
    return JSON.parse(out.trim().split('\n').pop()!) as Record<string, unknown>;
  } catch (e) {
    return { error: (e as Error).message.slice(0, 300) };
  }
}

/** Run the benchmark; returns a flat JSON-able record (see the module comment). */
export async function benchEmpirical(): Promise<Record<string, unknown>> {
  const n = 12000;
  const d = 784;
  const B = 32;
  const runs = 15;
  const threads = defaultThreads();
  const rng = mulberry32(1);
  const X = new Float32Array(n * d);
  for (let i = 0; i < X.length; i++) X[i] = rng() * 2 - 1;
  const t0 = performance.now();
  const den = await makeEmpiricalDenoiser({ dims: [n, 1, 28, 28], data: X });
  const xt = new Float32Array(B * d);
  for (let i = 0; i < xt.length; i++) xt[i] = rng() * 2 - 1;
  const cond = new Array<null>(B).fill(null);
  const flops = 2 * 2 * B * n * d;
  const level = (sigma: number): { t: number; alphaBar: number } => ({ t: 500, alphaBar: 1 / (1 + sigma * sigma) });
  // σ large enough for the f32 path, medium for f64, tiny for exact
  const sigF32 = 20;
  const check = await den.posterior({ dims: [B, 1, 28, 28], data: xt.map((v) => v * Math.sqrt(1 + sigF32 * sigF32)) }, sigF32, cond);
  const setupMs = performance.now() - t0;
  // V8 needs ~40 calls before the per-element JS loops around the graph are fully optimised
  // (≈ 10 ms per call before, ≈ 6 ms after on the reference machine): warm up past that
  const f32a = await timeIt(() => den.predict({ dims: [B, 1, 28, 28], data: xt }, level(sigF32), cond), 60, runs);
  const np = numpyGemm(n, d, B, runs, threads);
  const f32b = await timeIt(() => den.predict({ dims: [B, 1, 28, 28], data: xt }, level(sigF32), cond), 1, runs);
  const f32 = median([...f32a, ...f32b]);
  const f64 = median(await timeIt(() => den.predict({ dims: [B, 1, 28, 28], data: xt }, level(1), cond), 5, 9));
  const exact = median(await timeIt(() => den.predict({ dims: [B, 1, 28, 28], data: xt }, level(1e-5), cond), 1, 3));
  await den.dispose();

  // eigendecomposition of a 784×784 covariance-like SPD matrix
  const m = 784;
  const G = new Float64Array(m * 200);
  for (let i = 0; i < G.length; i++) G[i] = rng() - 0.5;
  const A = new Float64Array(m * m);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j <= i; j++) {
      let s = 0;
      for (let k = 0; k < 200; k++) s += G[i * 200 + k]! * G[j * 200 + k]!;
      A[i * m + j] = s;
      A[j * m + i] = s;
    }
  }
  let te = performance.now();
  eigh(A, m);
  const eighMs = performance.now() - te;
  const M = new Matrix(m, m);
  for (let i = 0; i < m; i++) for (let j = 0; j < m; j++) M.set(i, j, A[i * m + j]!);
  te = performance.now();
  new EigenvalueDecomposition(M, { assumeSymmetric: true });
  const mlMatrixMs = performance.now() - te;

  const gflops = flops / (f32 * 1e6);
  const npMs = np !== null && typeof np['ms'] === 'number' ? (np['ms'] as number) : null;
  const npGflops = npMs === null ? null : flops / (npMs * 1e6);
  const torchMs = np !== null && typeof np['torchMs'] === 'number' ? (np['torchMs'] as number) : null;
  return {
    n,
    d,
    batch: B,
    threads,
    flopsPerCall: flops,
    setupMs: Math.round(setupMs),
    f32PathCheck: check.path,
    predictF32Ms: +f32.toFixed(2),
    gflops: +gflops.toFixed(1),
    numpyMs: npMs === null ? null : +npMs.toFixed(2),
    numpyGflops: npGflops === null ? null : +npGflops.toFixed(1),
    ratioVsNumpy: npGflops === null ? null : +(gflops / npGflops).toFixed(2),
    torchMs: torchMs === null ? null : +torchMs.toFixed(2),
    ratioVsTorch: torchMs === null ? null : +(torchMs / f32).toFixed(2),
    numpyInfo: np,
    predictF64Ms: +f64.toFixed(2),
    gflopsF64Path: +(flops / (f64 * 1e6)).toFixed(1),
    predictExactMs: +exact.toFixed(2),
    eigh784Ms: Math.round(eighMs),
    mlMatrixEig784Ms: Math.round(mlMatrixMs),
  };
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  benchEmpirical().then(
    (r) => console.log(JSON.stringify(r, null, 2)),
    (e: unknown) => {
      console.error(e);
      process.exit(1);
    },
  );
}
