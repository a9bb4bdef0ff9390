/**
 * Benchmark of Dodson & Gao's posterior statistics (SPEC §5.1, issue 6): `posteriorStats` of the
 * exact empirical denoiser over the 12,000 embedded Fashion-MNIST training images for the 2,000
 * test images at 40 log-spaced σ (0.002 … 80), timed end to end (noise, distance GEMM, softmax
 * statistics, the precision path the denoiser picks per σ). GFLOP/s counts the distance GEMM
 * only (2·m·n·d per σ). Peer in the same run: numpy (`/usr/bin/python3`, same thread count)
 * computing the same statistics (float32 GEMM, float64 row softmax max weight and Σw²) on the
 * same data; the figure is the time ratio numpy / memscope (target ≥ 0.7), and the two runs'
 * m_σ agree (max difference reported).
 *
 * Standalone: `node --import tsx bench/geometry.ts` prints JSON.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { loadFashionMnist } from '../src/data/fashion-mnist.ts';
import { makeEmpiricalDenoiser } from '../src/denoisers/empirical.ts';
import { logSigmaGrid, posteriorStats } from '../src/analysis/geometry.ts';
import { TorchGenerator } from '../src/random/torch.ts';
import { defaultThreads } from '../src/graph/session.ts';

const NUMPY = `
import sys, time, json
import numpy as np
d = json.load(open(sys.argv[1]))
n, m, dim = d["n"], d["m"], d["d"]
X = np.fromfile(sys.argv[2], dtype=np.float32).reshape(n, dim)
T = np.fromfile(sys.argv[3], dtype=np.float32).reshape(m, dim)
Z = np.fromfile(sys.argv[4], dtype=np.float32).reshape(m, dim)
sig = d["sigmas"]; B = d["batch"]
xx = (X.astype(np.float64) ** 2).sum(1)
def run():
    ms = []
    for s in sig:
        mx = np.empty(m); neff = np.empty(m)
        for r0 in range(0, m, B):
            Y = T[r0:r0+B] + np.float32(s) * Z[r0:r0+B]
            G = Y @ X.T
            yy = (Y.astype(np.float64) ** 2).sum(1)
            D2 = yy[:, None] - 2 * G.astype(np.float64) + xx[None, :]
            L = -D2 / (2 * s * s)
            L -= L.max(1, keepdims=True)
            W = np.exp(L); W /= W.sum(1, keepdims=True)
            mx[r0:r0+B] = W.max(1); neff[r0:r0+B] = 1 / (W * W).sum(1)
        ms.append(float(mx.mean()))
    return ms
t0 = time.perf_counter(); ms = run(); t = time.perf_counter() - t0
print(json.dumps({"numpy": np.__version__, "seconds": t, "mSigma": ms}))
`;

/** Run the benchmark; returns a flat JSON-able record (see the module comment). */
export async function benchGeometry(): Promise<Record<string, unknown>> {
  const train = loadFashionMnist({ split: 'train' }).images;
  const test = loadFashionMnist({ split: 'test' }).images;
  const n = train.dims[0]!;
  const m = test.dims[0]!;
  const d = train.data.length / n;
  const sigmas = logSigmaGrid(0.002, 80, 40);
  const batch = 256;
  const seed = 0;
  const threads = defaultThreads();
  const den = await makeEmpiricalDenoiser(train);
  // warm-up on a few rows (graph load, V8)
  await posteriorStats(den, { dims: [32, ...test.dims.slice(1)], data: test.data.subarray(0, 32 * d) }, { sigmas: sigmas.slice(0, 3), seed, batch });
  const t0 = performance.now();
  const r = await posteriorStats(den, test, { sigmas, seed, batch });
  const seconds = (performance.now() - t0) / 1000;
  await den.dispose();
  const flops = 2 * m * n * d * sigmas.length;

  let peer: Record<string, unknown> | null = null;
  const py = '/usr/bin/python3';
  if (existsSync(py)) {
    const dir = mkdtempSync(join(tmpdir(), 'memscope-bench-geometry-'));
    try {
      // the same noise z as posteriorStats draws (TorchGenerator(seed).randn over x's shape)
      const z = new TorchGenerator(seed).randn([m * d]);
      writeFileSync(join(dir, 'meta.json'), JSON.stringify({ n, m, d, sigmas, batch }));
      writeFileSync(join(dir, 'X.f32'), Buffer.from(train.data.buffer, train.data.byteOffset, train.data.byteLength));
      writeFileSync(join(dir, 'T.f32'), Buffer.from(test.data.buffer, test.data.byteOffset, test.data.byteLength));
      writeFileSync(join(dir, 'Z.f32'), Buffer.from(z.buffer, z.byteOffset, z.byteLength));
      const env = { ...process.env, OPENBLAS_NUM_THREADS: String(threads), OMP_NUM_THREADS: String(threads), MKL_NUM_THREADS: String(threads) };
      const out = execFileSync(py, ['-c', NUMPY, join(dir, 'meta.json'), join(dir, 'X.f32'), join(dir, 'T.f32'), join(dir, 'Z.f32')], { env, encoding: 'utf8', timeout: 900_000 });
      peer = JSON.parse(out.trim().split('\n').pop()!) as Record<string, unknown>;
    } catch (e) {
      peer = { error: (e as Error).message.slice(0, 300) };
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  const peerSeconds = peer !== null && typeof peer['seconds'] === 'number' ? (peer['seconds'] as number) : null;
  const peerM = peer !== null && Array.isArray(peer['mSigma']) ? (peer['mSigma'] as number[]) : null;
  return {
    what: 'posteriorStats (m_σ, 1/Σw²) of the exact empirical denoiser: 12,000 train × 2,000 test × 40 σ',
    n,
    m,
    d,
    sigmas: sigmas.length,
    threads,
    seconds: +seconds.toFixed(2),
    gemmGflop: +(flops / 1e9).toFixed(1),
    gflops: +(flops / 1e9 / seconds).toFixed(1),
    numpySeconds: peerSeconds === null ? null : +peerSeconds.toFixed(2),
    numpyGflops: peerSeconds === null ? null : +(flops / 1e9 / peerSeconds).toFixed(1),
    ratioVsNumpy: peerSeconds === null ? null : +(peerSeconds / seconds).toFixed(2),
    target: 'ratioVsNumpy ≥ 0.7',
    maxAbsDiffMSigmaVsNumpy: peerM === null ? null : Math.max(...peerM.map((v, i) => Math.abs(v - r.mSigma[i]!))),
    numpy: peer === null ? null : (peer['numpy'] ?? peer['error'] ?? null),
  };
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  benchGeometry().then(
    (r) => console.log(JSON.stringify(r, null, 2)),
    (e: unknown) => {
      console.error(e);
      process.exit(1);
    },
  );
}
