"""Reference values for src/denoisers/empirical.test.ts (SPEC §2.1, §5.1), computed in float64
with numpy directly from the distances (no GEMM expansion):
  w_i = softmax_i(-||y - x_i||^2 / (2 sigma^2)),  D = sum_i w_i x_i,
  max weight, effective count 1/sum w^2.
Run: /usr/bin/python3 scripts/reference/denoiser_empirical.py > test/fixtures/denoiser_empirical.json
"""
import json

import numpy as np

rng = np.random.default_rng(20241124)
n, d, B = 40, 10, 5
X = (rng.random((n, d)) * 2 - 1).astype(np.float32)
subset = list(range(0, n, 2))  # condition 0: the even indices
Y = (X[[3, 8, 15, 22, 37]] + 0.4 * rng.standard_normal((B, d))).astype(np.float32)
conds = [None, 0, None, 0, 0]
out = {"n": n, "d": d, "X": X.astype(float).tolist(), "Y": Y.astype(float).tolist(),
       "subset": subset, "conds": conds, "cases": []}
for sigma in [0.2, 0.7, 2.0]:
    D, maxw, neff = [], [], []
    for b in range(B):
        idx = np.arange(n) if conds[b] is None else np.array(subset)
        Xs = X[idx].astype(np.float64)
        dist = ((Y[b].astype(np.float64)[None, :] - Xs) ** 2).sum(axis=1)
        logit = -dist / (2 * sigma * sigma)
        w = np.exp(logit - logit.max())
        w /= w.sum()
        D.append((w[:, None] * Xs).sum(axis=0).tolist())
        maxw.append(float(w.max()))
        neff.append(float(1.0 / (w * w).sum()))
    out["cases"].append({"sigma": sigma, "D": D, "maxWeight": maxw, "effectiveCount": neff})
print(json.dumps(out))
