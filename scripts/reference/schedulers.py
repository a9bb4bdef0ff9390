#!/usr/bin/python3
"""Write test/fixtures/schedulers.json and test/fixtures/schedulers_trajectories.json.

Golden numbers for src/schedules/ and src/samplers/ (memscope), written from the diffusers
formulas without diffusers itself (it is not installed here): `DDIMScheduler`,
`DPMSolverMultistepScheduler` (dpmsolver++, solver_order 2, midpoint), `EulerDiscreteScheduler`
(s_churn = 0) and the `StableDiffusionPipeline` loop (init_noise_sigma, scale_model_input, one
`scheduler.step` per timestep, a list of per-row generators for DDIM eta > 0).

Everything diffusers computes with torch float32 tensors is computed here with torch float32
tensors in the same order of operations (betas by torch.linspace, alphas_cumprod by
torch.cumprod, 0-d tensor coefficients, element-wise tensor updates); what diffusers computes
with numpy (the timestep grids, np.interp of sigmas) is computed with numpy. So this file is an
independent re-derivation of what diffusers would output on this machine.

A float64 re-run of every trajectory (same grids, every update in float64) is stored beside the
float32 one as `maxRelVsFloat64`, to show the size of float32 round-off on these problems.

The model is an analytic, nonlinear, deterministic noise predictor that the TypeScript tests
implement too:

    eps(x, t) = float32( tanh(0.3 x + 0.001 t) * 0.9 + 0.1 x )     (computed in float64)

Run with the interpreter that has torch (on the project machine: /usr/bin/python3):

    /usr/bin/python3 scripts/reference/schedulers.py            # writes both fixtures
    /usr/bin/python3 scripts/reference/schedulers.py --out DIR

torch's CPU linspace kernel rounds differently per CPU capability (the AVX2 build fuses
start + step*i into one FMA); the script pins ATEN_CPU_CAPABILITY=avx2 (the default on x86-64)
by re-executing itself, and records how many betas the portable build would change.
"""
import argparse
import json
import math
import os
import subprocess
import sys

if os.environ.get("ATEN_CPU_CAPABILITY") is None:
    env = dict(os.environ, ATEN_CPU_CAPABILITY="avx2")
    sys.exit(subprocess.call([sys.executable, *sys.argv], env=env))

import numpy as np  # noqa: E402
import torch  # noqa: E402

F32 = torch.float32
F64 = torch.float64

# --------------------------------------------------------------------------------------------
# Configs: diffusers scheduler_config.json dicts, and each scheduler's __init__ defaults.

SD = {  # runwayml / CompVis SD 1.x scheduler/scheduler_config.json (a PNDM config)
    "_class_name": "PNDMScheduler",
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "num_train_timesteps": 1000,
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "trained_betas": None,
    "clip_sample": False,
}

COMMON_DEFAULTS = {
    "num_train_timesteps": 1000,
    "beta_start": 0.0001,
    "beta_end": 0.02,
    "beta_schedule": "linear",
    "trained_betas": None,
    "prediction_type": "epsilon",
    "steps_offset": 0,
}
DEFAULTS = {
    "ddim": {**COMMON_DEFAULTS, "clip_sample": True, "set_alpha_to_one": True, "clip_sample_range": 1.0,
             "timestep_spacing": "leading"},
    "dpmpp2m": {**COMMON_DEFAULTS, "solver_order": 2, "lower_order_final": True, "euler_at_final": False,
                "final_sigmas_type": "zero", "lambda_min_clipped": -math.inf, "timestep_spacing": "linspace"},
    "euler": {**COMMON_DEFAULTS, "final_sigmas_type": "zero", "timestep_spacing": "linspace"},
}


def resolve(sampler, cfg):
    """What `XScheduler.from_config(cfg)` sees: keys of cfg over the class's own defaults."""
    out = dict(DEFAULTS[sampler])
    for k, v in cfg.items():
        if k in out:
            out[k] = v
    return out


# --------------------------------------------------------------------------------------------
# Betas and alphas_cumprod (scheduling_*.py __init__).

def betas_for_alpha_bar(n, max_beta=0.999):
    def f(t):
        return math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2
    return torch.tensor([min(1 - f((i + 1) / n) / f(i / n), max_beta) for i in range(n)], dtype=F32)


def make_betas(c):
    T = c["num_train_timesteps"]
    if c["trained_betas"] is not None:
        return torch.tensor(c["trained_betas"], dtype=F32)
    if c["beta_schedule"] == "linear":
        return torch.linspace(c["beta_start"], c["beta_end"], T, dtype=F32)
    if c["beta_schedule"] == "scaled_linear":
        return torch.linspace(c["beta_start"] ** 0.5, c["beta_end"] ** 0.5, T, dtype=F32) ** 2
    if c["beta_schedule"] == "squaredcos_cap_v2":
        return betas_for_alpha_bar(T)
    raise ValueError(c["beta_schedule"])


def alphas_cumprod(c):
    return torch.cumprod(1.0 - make_betas(c), dim=0)


# --------------------------------------------------------------------------------------------
# Timestep grids (set_timesteps).

def ddim_timesteps(c, n):
    T = c["num_train_timesteps"]
    sp = c["timestep_spacing"]
    if sp == "linspace":
        return np.linspace(0, T - 1, n).round()[::-1].copy().astype(np.int64)
    if sp == "leading":
        r = T // n
        ts = (np.arange(0, n) * r).round()[::-1].copy().astype(np.int64)
        return ts + c["steps_offset"]
    if sp == "trailing":
        r = T / n
        return np.round(np.arange(T, 0, -r)).astype(np.int64) - 1
    raise ValueError(sp)


def dpm_grid(c, n, ac):
    T = c["num_train_timesteps"]
    alpha_t = torch.sqrt(ac)
    sigma_t = torch.sqrt(1 - ac)
    lambda_t = torch.log(alpha_t) - torch.log(sigma_t)
    clipped_idx = torch.searchsorted(torch.flip(lambda_t, [0]), c["lambda_min_clipped"])
    last = int((T - clipped_idx).numpy().item())
    sp = c["timestep_spacing"]
    if sp == "linspace":
        ts = np.linspace(0, last - 1, n + 1).round()[::-1][:-1].copy().astype(np.int64)
    elif sp == "leading":
        r = last // (n + 1)
        ts = (np.arange(0, n + 1) * r).round()[::-1][:-1].copy().astype(np.int64)
        ts += c["steps_offset"]
    elif sp == "trailing":
        r = T / n
        ts = np.arange(last, 0, -r).round().copy().astype(np.int64)
        ts -= 1
    else:
        raise ValueError(sp)
    sig = np.array(((1 - ac) / ac) ** 0.5)
    sig = np.interp(ts, np.arange(0, len(sig)), sig)
    if c["final_sigmas_type"] == "sigma_min":
        last_sigma = ((1 - ac[0]) / ac[0]) ** 0.5
    else:
        last_sigma = 0
    sigmas = np.concatenate([sig, [last_sigma]]).astype(np.float32)
    return ts, sigmas


def euler_grid(c, n, ac):
    T = c["num_train_timesteps"]
    sp = c["timestep_spacing"]
    if sp == "linspace":
        ts = np.linspace(0, T - 1, n, dtype=np.float32)[::-1].copy()
    elif sp == "leading":
        r = T // n
        ts = (np.arange(0, n) * r).round()[::-1].copy().astype(np.float32)
        ts += c["steps_offset"]
    elif sp == "trailing":
        r = T / n
        ts = (np.arange(T, 0, -r)).round().copy().astype(np.float32)
        ts -= 1
    else:
        raise ValueError(sp)
    sig = np.array(((1 - ac) / ac) ** 0.5)
    sig = np.interp(ts, np.arange(0, len(sig)), sig)
    if c["final_sigmas_type"] == "sigma_min":
        last_sigma = ((1 - ac[0]) / ac[0]) ** 0.5
    else:
        last_sigma = 0
    sigmas = torch.from_numpy(np.concatenate([sig, [last_sigma]]).astype(np.float32))
    mx = sigmas.max()
    init = mx if sp in ("linspace", "trailing") else (mx ** 2 + 1) ** 0.5
    return ts, sigmas, init


# --------------------------------------------------------------------------------------------
# The analytic model both sides implement.

def eps_model(x, t):
    xd = x.to(F64)
    return (torch.tanh(0.3 * xd + 0.001 * float(t)) * 0.9 + 0.1 * xd).to(F32)


def f32list(t):
    """float32 values as the shortest decimal that rounds back to the same float32 (readers must
    round with Math.fround / np.float32 before comparing bit for bit)."""
    return [float(repr(v)) for v in np.asarray(t, dtype=np.float32).reshape(-1)]


# --------------------------------------------------------------------------------------------
# Samplers: diffusers step() bodies, with dtype a parameter (float32 = diffusers; float64 = exact).

def run_ddim(c, n, noise, eta=0.0, gens=None, use_clipped=False, dt=F32):
    ac = alphas_cumprod(c).to(dt)
    T = c["num_train_timesteps"]
    final = torch.tensor(1.0, dtype=dt) if c["set_alpha_to_one"] else ac[0]
    ts = ddim_timesteps(c, n)
    x = noise.to(dt) * 1.0  # init_noise_sigma = 1.0
    steps = []
    for t in ts:
        t = int(t)
        eps = eps_model(x.to(F32), t).to(dt)
        prev_t = t - T // n
        a_t = ac[t]
        a_p = ac[prev_t] if prev_t >= 0 else final
        b_t = 1 - a_t
        x0 = (x - b_t ** 0.5 * eps) / a_t ** 0.5
        if c["clip_sample"]:
            x0 = x0.clamp(-c["clip_sample_range"], c["clip_sample_range"])
        variance = ((1 - a_p) / b_t) * (1 - a_t / a_p)
        std = eta * variance ** 0.5
        pe = eps
        if use_clipped:
            pe = (x - a_t ** 0.5 * x0) / b_t ** 0.5
        direction = (1 - a_p - std ** 2) ** 0.5 * pe
        prev = a_p ** 0.5 * x0 + direction
        if eta > 0:
            vn = torch.cat([torch.randn((1, *x.shape[1:]), generator=g, dtype=F32) for g in gens]).to(dt)
            prev = prev + std * vn
        steps.append({"t": t, "alphaBar": float(a_t), "alphaBarPrev": float(a_p),
                      "xt": x, "xHat0": x0, "xPrev": prev})
        x = prev
    return x, steps


def alpha_sigma(s):
    a = 1 / ((s ** 2 + 1) ** 0.5)
    return a, s * a


def run_dpm(c, n, noise, dt=F32):
    ac = alphas_cumprod(c)
    ts, sig_np = dpm_grid(c, n, ac)
    sig = torch.from_numpy(sig_np).to(dt)
    N = len(ts)
    x = noise.to(dt) * 1.0
    outs = [None, None]
    lower_nums = 0
    steps = []
    for i, t in enumerate(ts):
        t = int(t)
        eps = eps_model(x.to(F32), t).to(dt)
        lof = (i == N - 1) and (c["euler_at_final"] or (c["lower_order_final"] and N < 15)
                                or c["final_sigmas_type"] == "zero")
        a_s, s_s = alpha_sigma(sig[i])
        x0 = (x - s_s * eps) / a_s
        outs = [outs[1], x0]
        a_t, s_t = alpha_sigma(sig[i + 1])
        lam_t = torch.log(a_t) - torch.log(s_t)
        lam_s = torch.log(a_s) - torch.log(s_s)
        h = lam_t - lam_s
        if c["solver_order"] == 1 or lower_nums < 1 or lof:
            prev = (s_t / s_s) * x - (a_t * (torch.exp(-h) - 1.0)) * x0
            order = 1
        else:
            a_s1, s_s1 = alpha_sigma(sig[i - 1])
            lam_s1 = torch.log(a_s1) - torch.log(s_s1)
            h0 = lam_s - lam_s1
            r0 = h0 / h
            m0, m1 = outs[1], outs[0]
            D0, D1 = m0, (1.0 / r0) * (m0 - m1)
            prev = (s_t / s_s) * x - (a_t * (torch.exp(-h) - 1.0)) * D0 - 0.5 * (a_t * (torch.exp(-h) - 1.0)) * D1
            order = 2
        if lower_nums < c["solver_order"]:
            lower_nums += 1
        s_next = float(sig[i + 1])
        steps.append({"t": t, "alphaBar": 1 / (1 + float(sig[i]) ** 2), "alphaBarPrev": 1 / (1 + s_next ** 2),
                      "order": order, "xt": x, "xHat0": x0, "xPrev": prev})
        x = prev
    return x, steps


def run_euler(c, n, noise, dt=F32):
    ac = alphas_cumprod(c)
    ts, sig, init = euler_grid(c, n, ac)
    sig = sig.to(dt)
    x = noise.to(dt) * init.to(dt)
    steps = []
    for i, t in enumerate(ts):
        s = sig[i]
        xin = x / ((s ** 2 + 1) ** 0.5)  # scale_model_input
        eps = eps_model(xin.to(F32), float(t)).to(dt)
        s_hat = s * (0.0 + 1)
        x0 = x - s_hat * eps
        deriv = (x - x0) / s_hat
        dtt = sig[i + 1] - s_hat
        prev = x + deriv * dtt
        sn = sig[i + 1]
        steps.append({"t": float(t), "alphaBar": 1 / (1 + float(s) ** 2), "alphaBarPrev": 1 / (1 + float(sn) ** 2),
                      "xt": xin, "xHat0": x0, "xPrev": prev / ((sn ** 2 + 1) ** 0.5)})
        x = prev
    return x, steps, float(init)


# --------------------------------------------------------------------------------------------

def grids_fixture():
    out = {"ddim": [], "dpmpp2m": [], "euler": []}
    spacings = [("leading", 0), ("leading", 1), ("linspace", 0), ("trailing", 0)]
    ns = [1, 2, 3, 7, 10, 13, 25, 50, 61, 100, 333, 999, 1000]
    for sched in ["scaled_linear", "squaredcos_cap_v2"]:
        for sp, off in spacings:
            for n in ns:
                if sched != "scaled_linear" and n > 50:
                    continue  # the grid itself does not depend on the betas; keep the file small
                base = {**SD, "beta_schedule": sched, "timestep_spacing": sp, "steps_offset": off}
                cd = resolve("ddim", base)
                out["ddim"].append({"config": base, "steps": n, "timesteps": [int(v) for v in ddim_timesteps(cd, n)]})
                cp = resolve("dpmpp2m", base)
                ac = alphas_cumprod(cp)
                ts, sg = dpm_grid(cp, n, ac)
                out["dpmpp2m"].append({"config": base, "steps": n, "timesteps": [int(v) for v in ts],
                                       "sigmas": f32list(sg)})
                ce = resolve("euler", base)
                ts, sg, init = euler_grid(ce, n, ac)
                out["euler"].append({"config": base, "steps": n, "timesteps": f32list(ts), "sigmas": f32list(sg),
                                     "initNoiseSigma": float(init)})
    # lambda_min_clipped and sigma_min variants
    extra = {**SD, "beta_schedule": "squaredcos_cap_v2", "lambda_min_clipped": -5.1, "final_sigmas_type": "sigma_min"}
    for n in [10, 25]:
        cp = resolve("dpmpp2m", extra)
        ts, sg = dpm_grid(cp, n, alphas_cumprod(cp))
        out["dpmpp2m"].append({"config": extra, "steps": n, "timesteps": [int(v) for v in ts], "sigmas": f32list(sg)})
        ce = resolve("euler", extra)
        ts, sg, init = euler_grid(ce, n, alphas_cumprod(ce))
        out["euler"].append({"config": extra, "steps": n, "timesteps": f32list(ts), "sigmas": f32list(sg),
                             "initNoiseSigma": float(init)})

    schedules = {}
    probe = [0, 1, 10, 100, 250, 500, 750, 999]
    for name, cfg in [("scaled_linear", {"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012}),
                      ("linear", {"beta_schedule": "linear"}),
                      ("squaredcos_cap_v2", {"beta_schedule": "squaredcos_cap_v2"})]:
        c = {**COMMON_DEFAULTS, **cfg}
        b = make_betas(c)
        ac = torch.cumprod(1.0 - b, dim=0)
        schedules[name] = {"config": cfg, "betas": f32list(b), "alphasCumprod": f32list(ac),
                           "probeT": probe, "probeAlphaBar": [float(ac[t]) for t in probe],
                           "sigmas": f32list(((1 - ac) / ac) ** 0.5)}
    # how the portable (non-AVX2) torch build would differ, for the record
    return out, schedules


def portable_beta_diffs():
    code = ("import torch,json;print(json.dumps([float(v) for v in torch.linspace(0.00085**0.5,0.012**0.5,1000,"
            "dtype=torch.float32)]+[float(v) for v in torch.linspace(0.0001,0.02,1000,dtype=torch.float32)]))")
    env = dict(os.environ, ATEN_CPU_CAPABILITY="default")
    res = json.loads(subprocess.check_output([sys.executable, "-c", code], env=env))
    mine = f32list(torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=F32)) + \
        f32list(torch.linspace(0.0001, 0.02, 1000, dtype=F32))
    return sum(1 for a, b in zip(res, mine) if np.float32(a) != np.float32(b))


def max_rel(a, b):
    a = a.to(F64)
    b = b.to(F64)
    return float((a - b).abs().max() / b.abs().max().clamp(min=1e-30))


def traj_fixture():
    B, D = 2, 8
    seeds = [0, 1]
    cases = []
    cfg_sd = dict(SD)
    cfg_lin = {"beta_schedule": "linear"}  # all defaults: DDIM clips x0 to [-1, 1]
    cfg_cos = {**SD, "beta_schedule": "squaredcos_cap_v2"}
    specs = [
        ("ddim", "sd", cfg_sd, [1, 10, 50], {}),
        ("ddim", "sd-linspace", {**cfg_sd, "timestep_spacing": "linspace"}, [10, 50], {}),
        ("ddim", "sd-trailing", {**cfg_sd, "timestep_spacing": "trailing"}, [10, 50], {}),
        ("ddim", "defaults-clip", cfg_lin, [10, 50], {}),
        ("ddim", "clip-0.5-use-clipped", {**cfg_sd, "clip_sample": True, "clip_sample_range": 0.5,
                                          "set_alpha_to_one": True}, [10], {"useClippedModelOutput": True}),
        ("ddim", "sd-eta0.5", cfg_sd, [10, 50], {"eta": 0.5}),
        ("ddim", "cosine", cfg_cos, [10], {}),
        ("dpmpp2m", "sd", cfg_sd, [1, 2, 10, 50], {}),
        ("dpmpp2m", "sd-leading", {**cfg_sd, "timestep_spacing": "leading"}, [10, 50], {}),
        ("dpmpp2m", "sd-trailing", {**cfg_sd, "timestep_spacing": "trailing"}, [10, 50], {}),
        ("dpmpp2m", "sigma_min", {**cfg_sd, "final_sigmas_type": "sigma_min"}, [10, 20], {}),
        ("dpmpp2m", "sigma_min-no-lof", {**cfg_sd, "final_sigmas_type": "sigma_min", "lower_order_final": False},
         [10], {}),
        ("dpmpp2m", "defaults", cfg_lin, [10], {}),
        ("dpmpp2m", "cosine", cfg_cos, [10], {}),
        ("euler", "sd", cfg_sd, [1, 10, 50], {}),
        ("euler", "sd-leading", {**cfg_sd, "timestep_spacing": "leading"}, [10, 50], {}),
        ("euler", "sd-trailing", {**cfg_sd, "timestep_spacing": "trailing"}, [10, 50], {}),
        ("euler", "sigma_min", {**cfg_sd, "final_sigmas_type": "sigma_min"}, [10], {}),
        ("euler", "defaults", cfg_lin, [10], {}),
    ]
    for sampler, name, cfg, ns, opts in specs:
        c = resolve(sampler, cfg)
        for n in ns:
            gens = [torch.Generator("cpu").manual_seed(s) for s in seeds]
            # prepare_latents with a list of generators: one randn per row
            noise = torch.cat([torch.randn((1, D), generator=g, dtype=F32) for g in gens])
            case = {"sampler": sampler, "name": name, "config": cfg, "steps": n, "options": opts,
                    "seeds": seeds, "dims": [B, D], "noise": f32list(noise)}
            init = 1.0
            if sampler == "ddim":
                eta = opts.get("eta", 0.0)
                x, steps = run_ddim(c, n, noise, eta, gens, opts.get("useClippedModelOutput", False))
                if eta > 0:
                    # replay the same generators to record the per-step noise each row drew
                    g2 = [torch.Generator("cpu").manual_seed(s) for s in seeds]
                    for g in g2:
                        torch.randn((1, D), generator=g)
                    case["stepNoise"] = [f32list(torch.cat([torch.randn((1, D), generator=g) for _ in range(len(steps))]))
                                         for g in g2]
                    x64 = None
                else:
                    x64, _ = run_ddim(c, n, noise, 0.0, None, opts.get("useClippedModelOutput", False), dt=F64)
            elif sampler == "dpmpp2m":
                x, steps = run_dpm(c, n, noise)
                x64, _ = run_dpm(c, n, noise, dt=F64)
                case["orders"] = [s["order"] for s in steps]
            else:
                x, steps, init = run_euler(c, n, noise)
                x64, _, _ = run_euler(c, n, noise, dt=F64)
            case["initNoiseSigma"] = init
            case["t"] = [s["t"] for s in steps]
            case["alphaBar"] = [s["alphaBar"] for s in steps]
            case["alphaBarPrev"] = [s["alphaBarPrev"] for s in steps]
            case["xt"] = [f32list(s["xt"]) for s in steps]
            case["xHat0"] = [f32list(s["xHat0"]) for s in steps]
            case["xPrev"] = [f32list(s["xPrev"]) for s in steps]
            case["x0"] = f32list(x)
            case["maxRelVsFloat64"] = None if x64 is None else max_rel(x, x64)
            cases.append(case)
    return cases


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "..", "test", "fixtures"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    grids, schedules = grids_fixture()
    meta = {
        "generator": "scripts/reference/schedulers.py",
        "torch": torch.__version__,
        "numpy": np.__version__,
        "atenCpuCapability": os.environ.get("ATEN_CPU_CAPABILITY"),
        "portableBuildBetaDiffs": portable_beta_diffs(),
        "model": "eps(x, t) = float32(tanh(0.3 x + 0.001 t) * 0.9 + 0.1 x), in float64",
    }
    with open(os.path.join(args.out, "schedulers.json"), "w") as f:
        json.dump({"meta": meta, "sd": SD, "schedules": schedules, "grids": grids}, f, separators=(",", ":"))
    with open(os.path.join(args.out, "schedulers_trajectories.json"), "w") as f:
        json.dump({"meta": meta, "cases": traj_fixture()}, f, separators=(",", ":"))
    print("wrote", os.path.join(args.out, "schedulers.json"), "and schedulers_trajectories.json")


if __name__ == "__main__":
    main()
