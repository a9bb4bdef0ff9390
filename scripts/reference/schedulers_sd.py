#!/usr/bin/python3
"""Write test/fixtures/schedulers_sd.json: reference trajectories of the schedulers Stable Diffusion
users run besides DDIM / DPM-Solver++ / Euler (issue 19 §3):

- `PNDMScheduler` with `skip_prk_steps` (PLMS; SD 1.x's own scheduler_config.json): set_timesteps
  (the second grid point repeated), step_plms (the ets history, the averaged first interval, the
  2nd/3rd/4th-order Adams-Bashforth combinations) and _get_prev_sample (PNDM eq. 9);
- `EulerAncestralDiscreteScheduler`: the Euler grid ending at σ = 0, sigma_up / sigma_down, fresh
  noise from each row's generator at every step (randn_tensor with a list of generators);
- `UniPCMultistepScheduler` with diffusers' defaults (bh2, solver_order 2, predict_x0, corrector
  on, lower_order_final): the DPM-Solver grid, the UniC corrector with the new model output and the
  UniP predictor (rhos_p = 0.5 at order 2; rhos_c from torch.linalg.solve).

Written from the diffusers formulas without diffusers (not installed here), with torch float32
tensors in diffusers' order of operations, the timestep grids with numpy, as
scripts/reference/schedulers.py does for the other samplers (whose helpers and analytic model it
reuses):

    eps(x, t) = float32( tanh(0.3 x + 0.001 t) * 0.9 + 0.1 x )     (computed in float64)

Run: /usr/bin/python3 scripts/reference/schedulers_sd.py   (apt-get install python3-torch)
"""
import json
import os
import subprocess
import sys

if os.environ.get("ATEN_CPU_CAPABILITY") is None:
    env = dict(os.environ, ATEN_CPU_CAPABILITY="avx2")
    sys.exit(subprocess.call([sys.executable, *sys.argv], env=env))

sys.path.insert(0, os.path.dirname(__file__))
import numpy as np  # noqa: E402
import torch  # noqa: E402
from schedulers import COMMON_DEFAULTS, F32, F64, SD, alphas_cumprod, dpm_grid, eps_model, euler_grid, f32list, max_rel  # noqa: E402

DEFAULTS = {
    "pndm": {**COMMON_DEFAULTS, "skip_prk_steps": False, "set_alpha_to_one": False, "timestep_spacing": "leading"},
    "euler-ancestral": {**COMMON_DEFAULTS, "timestep_spacing": "linspace"},
    "unipc": {**COMMON_DEFAULTS, "timestep_spacing": "linspace", "solver_order": 2, "lower_order_final": True,
              "final_sigmas_type": "zero", "lambda_min_clipped": -float("inf")},
}


def resolve(sampler, cfg):
    out = dict(DEFAULTS[sampler])
    for k, v in cfg.items():
        if k in out:
            out[k] = v
    return out


def pndm_timesteps(c, n):
    """PNDMScheduler.set_timesteps with skip_prk_steps: the PLMS timesteps."""
    T = c["num_train_timesteps"]
    sp = c["timestep_spacing"]
    if sp == "linspace":
        ts = np.linspace(0, T - 1, n).round().astype(np.int64)
    elif sp == "leading":
        r = T // n
        ts = (np.arange(0, n) * r).round()
        ts += c["steps_offset"]
    elif sp == "trailing":
        r = T / n
        ts = np.round(np.arange(T, 0, -r))[::-1].astype(np.int64)
        ts -= 1
    else:
        raise ValueError(sp)
    assert c["skip_prk_steps"]
    return np.concatenate([ts[:-1], ts[-2:-1], ts[-1:]])[::-1].copy().astype(np.int64)


def run_pndm(c, n, noise, dt=F32):
    ac = alphas_cumprod(c).to(dt)
    final = torch.tensor(1.0, dtype=dt) if c["set_alpha_to_one"] else ac[0]
    T = c["num_train_timesteps"]
    ts = pndm_timesteps(c, n)
    x = noise.to(dt) * 1.0
    ets, cur, counter = [], None, 0
    steps = []
    for t in ts:
        t = int(t)
        mo = eps_model(x.to(F32), t).to(dt)
        prev_t = t - T // n
        tt = t
        if counter != 1:
            ets = ets[-3:]
            ets.append(mo)
        else:
            prev_t = t
            tt = t + T // n
        sample = x
        if len(ets) == 1 and counter == 0:
            m = mo
            cur = x
        elif len(ets) == 1 and counter == 1:
            m = (mo + ets[-1]) / 2
            sample = cur
            cur = None
        elif len(ets) == 2:
            m = (3 * ets[-1] - ets[-2]) / 2
        elif len(ets) == 3:
            m = (23 * ets[-1] - 16 * ets[-2] + 5 * ets[-3]) / 12
        else:
            m = (1 / 24) * (55 * ets[-1] - 59 * ets[-2] + 37 * ets[-3] - 9 * ets[-4])
        a_t = ac[tt]
        a_p = ac[prev_t] if prev_t >= 0 else final
        b_t = 1 - a_t
        b_p = 1 - a_p
        sc = (a_p / a_t) ** 0.5
        den = a_t * b_p ** 0.5 + (a_t * b_t * a_p) ** 0.5
        prev = sc * sample - (a_p - a_t) * m / den
        a_g = ac[t]  # the event's x̂0: the call's own prediction from its x_t and ε̂ at its grid t
        x0 = (x - (1 - a_g) ** 0.5 * mo) / a_g ** 0.5
        steps.append({"t": t, "alphaBar": float(ac[t]), "alphaBarPrev": float(a_p), "xt": x, "xHat0": x0, "xPrev": prev})
        x = prev
        counter += 1
    return x, steps


def run_euler_ancestral(c, n, noise, gens, dt=F32):
    ac = alphas_cumprod(c)
    ts, sig, init = euler_grid({**c, "final_sigmas_type": "zero"}, n, ac)
    sig = sig.to(dt)
    x = noise.to(dt) * init.to(dt)
    steps = []
    for i, t in enumerate(ts):
        s = sig[i]
        xin = x / ((s ** 2 + 1) ** 0.5)
        eps = eps_model(xin.to(F32), float(t)).to(dt)
        x0 = x - s * eps
        sf, st = sig[i], sig[i + 1]
        up = (st ** 2 * (sf ** 2 - st ** 2) / sf ** 2) ** 0.5
        down = (st ** 2 - up ** 2) ** 0.5
        deriv = (x - x0) / s
        prev = x + deriv * (down - s)
        z = torch.cat([torch.randn((1, *x.shape[1:]), generator=g, dtype=F32) for g in gens]).to(dt)
        prev = prev + z * up
        sn = sig[i + 1]
        steps.append({"t": float(t), "alphaBar": 1 / (1 + float(s) ** 2), "alphaBarPrev": 1 / (1 + float(sn) ** 2),
                      "xt": xin, "xHat0": x0, "xPrev": prev / ((sn ** 2 + 1) ** 0.5)})
        x = prev
    return x, steps, float(init)


def alpha_sigma_t(s):
    a = 1 / ((s ** 2 + 1) ** 0.5)
    return a, s * a


def uni_coeffs(h, rks, order):
    """R, b of the bh2 variant (predict_x0: hh = -h)."""
    hh = -h
    h_phi_1 = torch.expm1(hh)
    h_phi_k = h_phi_1 / hh - 1
    factorial_i = 1
    B_h = torch.expm1(hh)
    R, b = [], []
    for i in range(1, order + 1):
        R.append(torch.pow(rks, i - 1))
        b.append(h_phi_k * factorial_i / B_h)
        factorial_i *= i + 1
        h_phi_k = h_phi_k / hh - 1 / factorial_i
    return torch.stack(R), torch.tensor(b), h_phi_1, B_h


def lam(s):
    a, sg = alpha_sigma_t(s)
    return torch.log(a) - torch.log(sg)


def run_unipc(c, n, noise, dt=F32):
    ac = alphas_cumprod(c)
    ts, sig_np = dpm_grid(c, n, ac)
    sig = torch.from_numpy(sig_np).to(dt)
    N = len(ts)
    order_max = c["solver_order"]
    x = noise.to(dt) * 1.0
    outs = [None] * order_max
    lower_nums = 0
    this_order = None
    last_sample = None
    steps = []
    for i, t in enumerate(ts):
        t = int(t)
        mo = eps_model(x.to(F32), t).to(dt)
        xt_in = x
        a_s, s_s = alpha_sigma_t(sig[i])
        conv = (x - s_s * mo) / a_s
        if i > 0 and last_sample is not None:
            # UniC: correct x with the new output, from last_sample (the previous step's start)
            m0 = outs[-1]
            s_t, s_0 = sig[i], sig[i - 1]
            a_t, sg_t = alpha_sigma_t(s_t)
            h = lam(s_t) - lam(s_0)
            rks, D1s = [], []
            for k in range(1, this_order):
                si = i - (k + 1)
                mi = outs[-(k + 1)]
                rk = (lam(sig[si]) - lam(s_0)) / h
                rks.append(rk)
                D1s.append((mi - m0) / rk)
            rks.append(1.0)
            rks = torch.tensor(rks, dtype=dt)
            R, b, h_phi_1, B_h = uni_coeffs(h, rks, this_order)
            if this_order == 1:
                rhos_c = torch.tensor([0.5], dtype=dt)
            else:
                rhos_c = torch.linalg.solve(R, b.to(dt))
            _, sg_0 = alpha_sigma_t(s_0)
            x_t_ = sg_t / sg_0 * last_sample - a_t * h_phi_1 * m0
            corr = 0
            if D1s:
                D1 = torch.stack(D1s, dim=1)
                corr = torch.einsum("k,bk...->b...", rhos_c[:-1], D1)
            D1_t = conv - m0
            x = x_t_ - a_t * B_h * (corr + rhos_c[-1] * D1_t)
        for k in range(order_max - 1):
            outs[k] = outs[k + 1]
        outs[-1] = conv
        this_order = min(order_max, N - i) if c["lower_order_final"] else order_max
        this_order = min(this_order, lower_nums + 1)
        last_sample = x
        # UniP: predict from the (corrected) x with the last this_order outputs
        m0 = outs[-1]
        s_t, s_0 = sig[i + 1], sig[i]
        a_t, sg_t = alpha_sigma_t(s_t)
        _, sg_0 = alpha_sigma_t(s_0)
        h = lam(s_t) - lam(s_0)
        rks, D1s = [], []
        for k in range(1, this_order):
            si = i - k
            mi = outs[-(k + 1)]
            rk = (lam(sig[si]) - lam(s_0)) / h
            rks.append(rk)
            D1s.append((mi - m0) / rk)
        rks.append(1.0)
        rks = torch.tensor(rks, dtype=dt)
        R, b, h_phi_1, B_h = uni_coeffs(h, rks, this_order)
        x_t_ = sg_t / sg_0 * x - a_t * h_phi_1 * m0
        pred = 0
        if D1s:
            D1 = torch.stack(D1s, dim=1)
            rhos_p = torch.tensor([0.5], dtype=dt) if this_order == 2 else torch.linalg.solve(R[:-1, :-1], b[:-1].to(dt))
            pred = torch.einsum("k,bk...->b...", rhos_p, D1)
        prev = x_t_ - a_t * B_h * pred
        if lower_nums < order_max:
            lower_nums += 1
        s_next = float(sig[i + 1])
        steps.append({"t": t, "alphaBar": 1 / (1 + float(sig[i]) ** 2), "alphaBarPrev": 1 / (1 + s_next ** 2),
                      "order": this_order, "xt": xt_in, "xHat0": conv, "xPrev": prev})
        x = prev
    return x, steps


def cases():
    B, D = 2, 8
    seeds = [0, 1]
    cfg_sd = dict(SD)
    specs = [
        ("pndm", "sd", cfg_sd, [1, 2, 3, 4, 5, 10, 50]),
        ("pndm", "sd-linspace", {**cfg_sd, "timestep_spacing": "linspace"}, [10, 50]),
        ("pndm", "sd-trailing", {**cfg_sd, "timestep_spacing": "trailing"}, [10]),
        ("pndm", "set-alpha-to-one", {**cfg_sd, "set_alpha_to_one": True}, [10]),
        ("pndm", "cosine", {**cfg_sd, "beta_schedule": "squaredcos_cap_v2"}, [10]),
        ("euler-ancestral", "sd", cfg_sd, [1, 10, 50]),
        ("euler-ancestral", "sd-leading", {**cfg_sd, "timestep_spacing": "leading"}, [10]),
        ("euler-ancestral", "sd-trailing", {**cfg_sd, "timestep_spacing": "trailing"}, [10]),
        ("euler-ancestral", "defaults", {"beta_schedule": "linear"}, [10]),
        ("unipc", "sd", cfg_sd, [1, 2, 3, 10, 20, 50]),
        ("unipc", "sd-leading", {**cfg_sd, "timestep_spacing": "leading"}, [10]),
        ("unipc", "sd-trailing", {**cfg_sd, "timestep_spacing": "trailing"}, [10]),
        ("unipc", "no-lower-order-final-sigma-min", {**cfg_sd, "lower_order_final": False, "final_sigmas_type": "sigma_min"}, [10]),
        ("unipc", "sigma-min", {**cfg_sd, "final_sigmas_type": "sigma_min"}, [10]),
        ("unipc", "defaults", {"beta_schedule": "linear"}, [10]),
    ]
    out = []
    for sampler, name, cfg, ns in specs:
        c = resolve(sampler, cfg)
        for n in ns:
            gens = [torch.Generator("cpu").manual_seed(s) for s in seeds]
            noise = torch.cat([torch.randn((1, D), generator=g, dtype=F32) for g in gens])
            case = {"sampler": sampler, "name": name, "config": cfg, "steps": n, "seeds": seeds, "dims": [B, D], "noise": f32list(noise)}
            if sampler == "pndm":
                x, steps = run_pndm(c, n, noise)
                x64, _ = run_pndm(c, n, noise, dt=F64)
                init = 1.0
            elif sampler == "unipc":
                x, steps = run_unipc(c, n, noise)
                x64, _ = run_unipc(c, n, noise, dt=F64)
                init = 1.0
                case["orders"] = [s["order"] for s in steps]
            else:
                x, steps, init = run_euler_ancestral(c, n, noise, gens)
                g64 = [torch.Generator("cpu").manual_seed(s) for s in seeds]
                for g in g64:
                    torch.randn((1, D), generator=g, dtype=F32)
                x64, _, _ = run_euler_ancestral(c, n, noise, g64, dt=F64)
            case["initNoiseSigma"] = init
            case["t"] = [s["t"] for s in steps]
            case["alphaBar"] = [s["alphaBar"] for s in steps]
            case["alphaBarPrev"] = [s["alphaBarPrev"] for s in steps]
            case["xt"] = [f32list(s["xt"]) for s in steps]
            case["xHat0"] = [f32list(s["xHat0"]) for s in steps]
            case["xPrev"] = [f32list(s["xPrev"]) for s in steps]
            case["x0"] = f32list(x)
            case["maxRelVsFloat64"] = max_rel(x, x64)
            out.append(case)
    return out


def main():
    torch.set_num_threads(1)
    path = os.path.join(os.path.dirname(__file__), "..", "..", "test", "fixtures", "schedulers_sd.json")
    meta = {"generator": "scripts/reference/schedulers_sd.py", "torch": torch.__version__, "numpy": np.__version__,
            "atenCpuCapability": os.environ.get("ATEN_CPU_CAPABILITY"),
            "model": "eps(x, t) = float32(tanh(0.3 x + 0.001 t) * 0.9 + 0.1 x), in float64"}
    with open(path, "w") as f:
        json.dump({"meta": meta, "cases": cases()}, f, separators=(",", ":"))
    print("wrote", path)


if __name__ == "__main__":
    main()
