#!/usr/bin/python3
"""Write test/fixtures/train_adamw.json: reference AdamW steps, gradient clipping and warmup from torch.

The fixture pins src/optim/adamw.ts (AdamW, clipGradNorm, warmupLr) to PyTorch:
`torch.optim.AdamW(..., foreach=False)` (the single-tensor loop, torch's CPU default),
`torch.nn.utils.clip_grad_norm_(params, max_norm)` and a `LambdaLR` with diffusers'
`get_constant_schedule_with_warmup` lambda. Run it with the interpreter that has torch installed
(on the project machine the Debian package under /usr/bin/python3, not the `python3` on PATH):

    /usr/bin/python3 scripts/reference/train_adamw.py            # writes the fixture
    /usr/bin/python3 scripts/reference/train_adamw.py --out PATH # somewhere else

Each scenario lists the initial parameters, then for every step the gradients handed to the
optimizer (before clipping; `null` = the parameter has no gradient that step, so torch skips it),
and what torch reports after the step: the learning rate used, the total gradient norm returned
by clip_grad_norm_, the parameters, exp_avg (m), exp_avg_sq (v) and each parameter's step count.
Values are float32 printed with 9 significant digits (which round-trips float32 exactly).

A second section, "noise", pins the per-step draws of src/train/noise.ts to torch: for a few
(seed, step) pairs, with g = torch.Generator().manual_seed(key) and
key = seed * 1_000_003 + step + offset (offset 0 for the noise stream, 2**30 for the level
stream), the VP timesteps torch.randint(0, 1000, (B,), generator=g_level), the EDM draws
ln sigma = -1.2 + 1.2 * torch.randn([B], generator=g_level) mapped to the nearest timestep in
ln sigma and interpolated (k-diffusion's sigma_to_t), the noise torch.randn(x.shape,
generator=g_noise) and diffusers' add_noise x_t = sqrt(abar) x + sqrt(1 - abar) eps in float32,
on the scaled_linear schedule (0.00085 -> 0.012, 1000 steps).
"""
import argparse
import json
import os
import sys

import torch

STEPS = 5


def fmt(t):
    return [float(format(float(v), ".9g")) for v in t.detach().flatten().tolist()]


def warmup_lambda(num_warmup_steps):
    # diffusers.optimization.get_constant_schedule_with_warmup
    def lr_lambda(current_step):
        if current_step < num_warmup_steps:
            return float(current_step) / float(max(1.0, num_warmup_steps))
        return 1.0
    return lr_lambda


def scenario(name, shapes, no_decay, opts, clip, warmup, grad_scale, missing, seed):
    g = torch.Generator("cpu").manual_seed(seed)
    params = {}
    for pname, shape in shapes:
        params[pname] = torch.nn.Parameter(torch.randn(shape, generator=g, dtype=torch.float32))
    decay = [p for n, p in params.items() if n not in no_decay]
    nodecay = [p for n, p in params.items() if n in no_decay]
    groups = [{"params": decay}]
    if nodecay:
        groups.append({"params": nodecay, "weight_decay": 0.0})
    opt = torch.optim.AdamW(groups, lr=opts["lr"], betas=tuple(opts["betas"]), eps=opts["eps"],
                            weight_decay=opts["weightDecay"], foreach=False)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_lambda(warmup))
    initial = {n: {"dims": list(p.shape), "values": fmt(p)} for n, p in params.items()}
    steps = []
    for k in range(STEPS):
        grads = {}
        lr_used = opt.param_groups[0]["lr"]
        for n, p in params.items():
            if (k, n) in missing:
                p.grad = None
                grads[n] = None
                continue
            gr = torch.randn(p.shape, generator=g, dtype=torch.float32) * grad_scale[k]
            p.grad = gr.clone()
            grads[n] = fmt(gr)
        total = None
        if clip is not None:
            with_grad = [p for p in params.values() if p.grad is not None]
            total = float(torch.nn.utils.clip_grad_norm_(with_grad, clip))
        opt.step()
        sched.step()
        after = {}
        for n, p in params.items():
            st = opt.state.get(p)
            after[n] = {
                "param": fmt(p),
                "m": fmt(st["exp_avg"]) if st else None,
                "v": fmt(st["exp_avg_sq"]) if st else None,
                "step": int(st["step"].item()) if st else 0,
            }
        steps.append({"grads": grads, "lr": lr_used, "totalNorm": total, "after": after})
    return {
        "name": name,
        "options": opts,
        "noDecay": sorted(no_decay),
        "clipNorm": clip,
        "warmupSteps": warmup,
        "initial": initial,
        "steps": steps,
    }


STREAM_OFFSET = {"noise": 0, "level": 2**30}
NOISE_CASES = [(0, 0), (0, 1), (7, 123), (1234, 99999)]
NOISE_BATCH = 6
NOISE_SHAPE = [NOISE_BATCH, 1, 3, 3]


def key(seed, step, stream):
    return seed * 1_000_003 + step + STREAM_OFFSET[stream]


def noise_section():
    betas = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=torch.float32) ** 2
    alphas_cumprod = torch.cumprod(1.0 - betas, dim=0)
    log_sigmas = (((1 - alphas_cumprod) / alphas_cumprod) ** 0.5).log().double()
    x = torch.linspace(-1, 1, NOISE_BATCH * 9, dtype=torch.float32).reshape(NOISE_SHAPE)
    cases = []
    for seed, step in NOISE_CASES:
        g_level = torch.Generator("cpu").manual_seed(key(seed, step, "level"))
        t_vp = torch.randint(0, 1000, (NOISE_BATCH,), generator=g_level)
        g_level = torch.Generator("cpu").manual_seed(key(seed, step, "level"))
        z = torch.randn([NOISE_BATCH], generator=g_level)
        sigma = (z.double() * 1.2 - 1.2).exp()
        ls = sigma.log()
        nearest = (ls[:, None] - log_sigmas[None, :]).abs().argmin(dim=1)
        # k-diffusion DiscreteSchedule.sigma_to_t (after clamping ln sigma to the table)
        lsc = ls.clamp(log_sigmas[0], log_sigmas[-1])
        dists = lsc[:, None] - log_sigmas[None, :]
        low_idx = dists.ge(0).cumsum(dim=1).argmax(dim=1).clamp(max=log_sigmas.shape[0] - 2)
        high_idx = low_idx + 1
        low, high = log_sigmas[low_idx], log_sigmas[high_idx]
        w = ((low - lsc) / (low - high)).clamp(0, 1)
        t_interp = (1 - w) * low_idx + w * high_idx
        g_noise = torch.Generator("cpu").manual_seed(key(seed, step, "noise"))
        eps = torch.randn(NOISE_SHAPE, generator=g_noise)
        sqrt_a = alphas_cumprod[t_vp] ** 0.5
        sqrt_1a = (1 - alphas_cumprod[t_vp]) ** 0.5
        xt = sqrt_a[:, None, None, None] * x + sqrt_1a[:, None, None, None] * eps
        cases.append({"seed": seed, "step": step, "tVp": t_vp.tolist(), "edmZ": fmt(z),
                      "tNearest": nearest.tolist(), "tInterp": [float(v) for v in t_interp.tolist()],
                      "eps": fmt(eps), "xt": fmt(xt)})
    return {"schedule": "scaled_linear", "betaStart": 0.00085, "betaEnd": 0.012, "shape": NOISE_SHAPE,
            "x": fmt(x), "cases": cases}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    here = os.path.dirname(os.path.abspath(__file__))
    default_out = os.path.normpath(os.path.join(here, "..", "..", "test", "fixtures", "train_adamw.json"))
    ap.add_argument("--out", default=default_out)
    args = ap.parse_args()
    torch.set_num_threads(1)

    scenarios = [
        # torch's defaults (lr 1e-3, betas (0.9, 0.999), eps 1e-8, weight_decay 0.01), no clipping.
        scenario("defaults", [("w", [3, 4]), ("b", [4])], set(),
                 {"lr": 1e-3, "betas": [0.9, 0.999], "eps": 1e-8, "weightDecay": 0.01},
                 None, 0, [1.0] * STEPS, set(), 0),
        # Everything at once: a no-decay group, clipping that binds on some steps only, a
        # 2-step linear warmup (lr 0 at the first step), a 37-element tensor (vector body + tail
        # in torch's kernels) and a parameter without a gradient at one step.
        scenario("clip-decay-warmup", [("w", [3, 4]), ("b", [4]), ("big", [37]), ("s", [1])], {"b", "s"},
                 {"lr": 0.05, "betas": [0.8, 0.99], "eps": 1e-6, "weightDecay": 0.1},
                 1.0, 2, [3.0, 0.05, 2.0, 0.1, 5.0], {(2, "s")}, 1),
        # Strong weight decay and a large lr, clipping below every norm.
        scenario("heavy-decay", [("w", [5, 3]), ("b", [3])], {"b"},
                 {"lr": 0.3, "betas": [0.9, 0.999], "eps": 1e-8, "weightDecay": 0.5},
                 0.25, 0, [1.0] * STEPS, set(), 2),
    ]
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"generatedBy": "scripts/reference/train_adamw.py", "torch": torch.__version__,
                   "scenarios": scenarios, "noise": noise_section()}, f, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {args.out} ({os.path.getsize(args.out)} bytes, torch {torch.__version__})", file=sys.stderr)


if __name__ == "__main__":
    main()
