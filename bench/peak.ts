/**
 * This machine's fp32 GEMM peak as the issue defines it (issue 16 §6): numpy's OpenBLAS sgemm at
 * 2048² × 2048², `threads` threads, with `OPENBLAS_CORETYPE` / `OPENBLAS_L2_SIZE` unset for that
 * command only (they are set machine-wide here and slow OpenBLAS down). Best of `reps` timed
 * products after one warmup; GFLOP/s = 2n³ / t. Skipped (with the reason) when `/usr/bin/python3`
 * has no numpy, or when its numpy runs on Debian's reference BLAS (libblas3 without
 * libopenblas0: ≈ 6 GFLOP/s here, which would make any fraction of "peak" meaningless).
 */
import { spawnSync } from 'node:child_process';

/** The measured peak, or why it could not be measured. */
export type GemmPeak = { readonly gflops: number; readonly n: number; readonly threads: number; readonly reps: number; readonly numpy: string } | { readonly skipped: string };

const SCRIPT = `
import sys, time, numpy as np
n, reps = int(sys.argv[1]), int(sys.argv[2])
rng = np.random.default_rng(0)
a = rng.standard_normal((n, n), dtype=np.float32); b = rng.standard_normal((n, n), dtype=np.float32)
a @ b
best = min((lambda t0: (a @ b, time.perf_counter() - t0)[1])(time.perf_counter()) for _ in range(reps))
libs = sorted({l.split()[-1] for l in open('/proc/self/maps') if 'blas' in l.lower() and '/' in l})
print(2 * n ** 3 / best / 1e9, np.__version__, ','.join(libs) or '?')
`;

/** Measure the sgemm peak now (call it in the same run as the figure it divides). */
export function gemmPeak(threads = 2, n = 2048, reps = 5): GemmPeak {
  const env: NodeJS.ProcessEnv = { ...process.env, OMP_NUM_THREADS: String(threads), OPENBLAS_NUM_THREADS: String(threads), MKL_NUM_THREADS: String(threads) };
  delete env['OPENBLAS_CORETYPE'];
  delete env['OPENBLAS_L2_SIZE'];
  const why: string[] = [];
  // Debian's numpy (python3-numpy, as the issue measured it), else the python3 on PATH
  for (const py of ['/usr/bin/python3', 'python3']) {
    const r = spawnSync(py, ['-c', SCRIPT, String(n), String(reps)], { encoding: 'utf8', env });
    if (r.status !== 0) {
      why.push(`${py}: ${(r.stderr || r.error?.message || '').trim().split('\n').slice(-1)[0]}`);
      continue;
    }
    const [g, v, libs] = r.stdout.trim().split(/\s+/);
    // Debian's reference libblas (no libopenblas installed: update-alternatives points numpy at it) is ~30× slower: no peak
    const blas = (libs ?? '').split(',').find((l) => /\/libblas\.so/.test(l));
    if (blas !== undefined && !/openblas|mkl|blis|atlas/i.test(blas)) {
      return { skipped: `numpy (${py}) runs on a reference BLAS (${blas}: ${Number(g).toFixed(1)} GFLOP/s), not an optimised one; install libopenblas0-pthread (apt) for the peak` };
    }
    return { gflops: Math.round(Number(g) * 10) / 10, n, threads, reps, numpy: `${v ?? '?'} (${py}; ${libs ?? '?'})` };
  }
  return { skipped: `numpy sgemm failed: ${why.join('; ')}` };
}
