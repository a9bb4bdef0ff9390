#!/usr/bin/python3
"""PyTorch peer of memscope's trained text-to-image model, for the training-throughput bench.

The same architecture as src/models/diffusion-model.ts `buildTrainingGraph` (the text encoder of
src/models/text-encoder.ts read by the conditional U-Net of src/models/unet.ts through
cross-attention, built from the layers of src/models/layers.ts), layer for layer and shape
for shape, written as an ordinary PyTorch user would (nn.Conv2d, nn.Linear, nn.GroupNorm,
nn.LayerNorm, nn.Embedding, F.gelu(approximate='tanh'), F.interpolate), with the same loss:

    x_t  = sqrt_alpha_bar * x0 + sqrt_one_minus_alpha_bar * noise
    loss = (1/B) * sum_b weight_b * mean((unet(x_t, t, text(ids)) - noise)_b ** 2)

Module paths equal memscope's parameter names (`unet.down.1.attn.0.block.attn2.to_k.weight`,
`text.layers.0.mlp.fc1.bias`, ...), so the two parameter sets can be compared name by name; the
only layout difference is that memscope stores linear weights [in, out] (the transpose of
nn.Linear.weight). Shapes are reported in memscope's layout.

One training step = zero_grad, forward, backward, clip_grad_norm_ (when clipNorm is set), and
torch.optim.AdamW.step() (torch's defaults; parameters named in `noDecay` in a group with
weight_decay 0). The step is timed with time.perf_counter over `steps` steps after `warmup` steps,
with torch.set_num_threads(threads).

Usage (run it with the interpreter that has torch; on the project machine /usr/bin/python3):

    /usr/bin/python3 scripts/reference/unet_torch.py '{"unet": {"channels": [16, 32, 32]}}'
    echo '{"channels": [32, 64, 64], "batch": 8, "steps": 2}' | /usr/bin/python3 scripts/reference/unet_torch.py -

The JSON config: `unet` (memscope's UnetConfig fields: channels, layersPerLevel,
attentionLevels, midAttention, selfAttention, ffMult, groups, normEps, contextDim,
contextLength, heads, timeEmbedDim, inChannels, sampleSize, conditioning, numClasses; the U-Net
fields may also be given at the top level) and `textEncoder` (vocabSize, maxLength, width,
layers, heads, mlpMult; null for no text encoder), each defaulting as memscope's zod schemas do;
and the run settings batch (64), steps (10), warmup (3), threads (2), seed (0), lr (1e-3),
weightDecay (0), clipNorm (1; null = no clipping), noDecay (list of parameter names; default: the
parameters memscope excludes from weight decay: biases, norm weights, embeddings),
expectParams (if given and different from this model's count, exit with status 3),
describe (true: print the parameter shapes and exit without timing) and state (optional):
{"file": path, "tensors": [{"name", "dims"}, ...]}, a little-endian float32 file holding, in
that order, tensors named like memscope's parameters (initial values, memscope layout) and
training-graph inputs (x0, noise, timestep, sqrt_alpha_bar, sqrt_one_minus_alpha_bar, weight,
ids or class_labels as float32 values). With a state the model starts from those values, the
timed steps use that batch, and the output reports `check`: the loss and the global gradient
norm of the first step (before any update), to compare with memscope's. Without one, parameters
keep torch's default initialisation and a random batch is drawn.

Prints one JSON line: {params, unetParams, textParams, msPerStep (median), msPerStepMean,
stepsMs, imagesPerSecond (batch / median step), batch, threads, torch, shapes, check}.
"""
import json
import math
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

UNET_DEFAULTS = {
    "channels": [32, 64, 64],
    "layersPerLevel": 1,
    "attentionLevels": [False, True, True],
    "midAttention": True,
    "selfAttention": True,
    "ffMult": 4,
    "groups": 8,
    "normEps": 1e-5,
    "contextDim": 64,
    "contextLength": 16,
    "heads": 4,
    "timeEmbedDim": 128,
    "inChannels": 1,
    "sampleSize": 32,
    "conditioning": "text",
    "numClasses": 10,
}
TEXT_DEFAULTS = {"maxLength": 16, "width": 64, "layers": 1, "heads": 4, "mlpMult": 4}
RUN_DEFAULTS = {
    "batch": 64,
    "steps": 10,
    "warmup": 3,
    "threads": 2,
    "seed": 0,
    "lr": 1e-3,
    "weightDecay": 0.0,
    "clipNorm": 1.0,
}


# ---------------------------------------------------------------------------------------------
# layers (src/models/layers.ts)


class Attention(nn.Module):
    """diffusers `Attention` / layers.ts `attention`: to_q/to_k/to_v (bias optional), softmax(q k^T / sqrt(hd)) v, to_out."""

    def __init__(self, dim, heads, q_dim=None, kv_dim=None, qkv_bias=False):
        super().__init__()
        q_dim = dim if q_dim is None else q_dim
        kv_dim = q_dim if kv_dim is None else kv_dim
        assert dim % heads == 0
        self.heads = heads
        self.hd = dim // heads
        self.to_q = nn.Linear(q_dim, dim, bias=qkv_bias)
        self.to_k = nn.Linear(kv_dim, dim, bias=qkv_bias)
        self.to_v = nn.Linear(kv_dim, dim, bias=qkv_bias)
        self.to_out = nn.Linear(dim, q_dim)

    def forward(self, x, kv):
        B, n, _ = x.shape
        m = kv.shape[1]
        h, hd = self.heads, self.hd
        q = self.to_q(x).view(B, n, h, hd).transpose(1, 2)  # [B, h, n, hd]
        k = self.to_k(kv).view(B, m, h, hd).transpose(1, 2)  # [B, h, m, hd]
        v = self.to_v(kv).view(B, m, h, hd).transpose(1, 2)
        probs = (q @ k.transpose(-1, -2) * (1.0 / math.sqrt(hd))).softmax(dim=-1)
        ctx = (probs @ v).transpose(1, 2).reshape(B, n, h * hd)
        return self.to_out(ctx)


class GEGLUFeedForward(nn.Module):
    """diffusers `FeedForward(dim, mult, activation_fn="geglu")` with the tanh GELU (layers.ts `feedForward`)."""

    def __init__(self, dim, mult):
        super().__init__()
        inner = mult * dim
        self.proj = nn.Linear(dim, 2 * inner)
        self.out = nn.Linear(inner, dim)

    def forward(self, x):
        val, gate = self.proj(x).chunk(2, dim=-1)
        return self.out(val * F.gelu(gate, approximate="tanh"))


class TimestepEmbedding(nn.Module):
    """diffusers `Timesteps(freq_dim, flip_sin_to_cos=True, downscale_freq_shift=0)` + `TimestepEmbedding`."""

    def __init__(self, freq_dim, dim, max_period=10000):
        super().__init__()
        half = freq_dim // 2
        exponent = -math.log(max_period) * torch.arange(0, half, dtype=torch.float32)
        self.register_buffer("freqs", torch.exp(exponent / half), persistent=False)
        self.linear_1 = nn.Linear(freq_dim, dim)
        self.linear_2 = nn.Linear(dim, dim)

    def forward(self, t):
        arg = t[:, None].float() * self.freqs[None, :]
        s = torch.cat([torch.cos(arg), torch.sin(arg)], dim=1)
        return self.linear_2(F.silu(self.linear_1(s)))


# ---------------------------------------------------------------------------------------------
# U-Net (src/models/unet.ts)


class ResBlock(nn.Module):
    """diffusers `ResnetBlock2D`: GN-SiLU-conv1, + Linear(SiLU(temb)), GN-SiLU-conv2, + (1x1 conv) shortcut."""

    def __init__(self, cin, cout, temb_dim, groups, eps):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, cin, eps=eps)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.time_emb_proj = nn.Linear(temb_dim, cout)
        self.norm2 = nn.GroupNorm(groups, cout, eps=eps)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.conv_shortcut = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x, temb):  # temb: SiLU of the time embedding, [B, T]
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.time_emb_proj(temb)[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        skip = x if self.conv_shortcut is None else self.conv_shortcut(x)
        return skip + h


class TransformerBlock(nn.Module):
    """diffusers `BasicTransformerBlock`: x + attn1(LN x) (optional), x + attn2(LN x, context), x + ff(LN x)."""

    def __init__(self, C, heads, context_dim, self_attention, ff_mult):
        super().__init__()
        if self_attention:
            self.norm1 = nn.LayerNorm(C)
            self.attn1 = Attention(C, heads)
        else:
            self.norm1 = None
            self.attn1 = None
        self.norm2 = nn.LayerNorm(C)
        self.attn2 = Attention(C, heads, kv_dim=context_dim)  # context_dim None: self-attention
        self.norm3 = nn.LayerNorm(C)
        self.ff = GEGLUFeedForward(C, ff_mult)

    def forward(self, x, context):
        if self.attn1 is not None:
            q = self.norm1(x)
            x = x + self.attn1(q, q)
        q2 = self.norm2(x)
        x = x + self.attn2(q2, q2 if context is None else context)
        return x + self.ff(self.norm3(x))


class Transformer2D(nn.Module):
    """diffusers `Transformer2DModel` (one block): GN(eps 1e-6), 1x1 proj_in, tokens, block, back, 1x1 proj_out, + input."""

    def __init__(self, C, groups, heads, context_dim, self_attention, ff_mult):
        super().__init__()
        self.norm = nn.GroupNorm(groups, C, eps=1e-6)
        self.proj_in = nn.Conv2d(C, C, 1)
        self.block = TransformerBlock(C, heads, context_dim, self_attention, ff_mult)
        self.proj_out = nn.Conv2d(C, C, 1)

    def forward(self, x, context):
        B, C, H, W = x.shape
        h = self.proj_in(self.norm(x))
        h = h.permute(0, 2, 3, 1).reshape(B, H * W, C)
        h = self.block(h, context)
        h = h.reshape(B, H, W, C).permute(0, 3, 1, 2)
        return self.proj_out(h) + x


class Unet(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        ch = cfg["channels"]
        T = cfg["timeEmbedDim"]
        G = cfg["groups"]
        eps = cfg["normEps"]
        text = cfg["conditioning"] == "text"
        ctx_dim = cfg["contextDim"] if text else None
        self.time_embedding = TimestepEmbedding(ch[0], T)
        if cfg["conditioning"] == "class":
            self.class_embedding = nn.Embedding(cfg["numClasses"] + 1, T)
        self.conv_in = nn.Conv2d(cfg["inChannels"], ch[0], 3, padding=1)

        def tf(C):
            return Transformer2D(C, G, cfg["heads"], ctx_dim, cfg["selfAttention"], cfg["ffMult"])

        cur = ch[0]
        skip_ch = [cur]
        self.down = nn.ModuleList()
        for i, out in enumerate(ch):
            lvl = nn.ModuleDict()
            lvl["res"] = nn.ModuleList()
            if cfg["attentionLevels"][i]:
                lvl["attn"] = nn.ModuleList()
            for _ in range(cfg["layersPerLevel"]):
                lvl["res"].append(ResBlock(cur, out, T, G, eps))
                cur = out
                if cfg["attentionLevels"][i]:
                    lvl["attn"].append(tf(cur))
                skip_ch.append(cur)
            if i < len(ch) - 1:
                lvl["downsample"] = nn.Conv2d(cur, cur, 3, stride=2, padding=1)
                skip_ch.append(cur)
            self.down.append(lvl)
        self.mid = nn.ModuleDict()
        self.mid["res"] = nn.ModuleList([ResBlock(cur, cur, T, G, eps), ResBlock(cur, cur, T, G, eps)])
        if cfg["midAttention"]:
            self.mid["attn"] = nn.ModuleList([tf(cur)])
        ups = [None] * len(ch)
        for i in range(len(ch) - 1, -1, -1):
            out = ch[i]
            lvl = nn.ModuleDict()
            lvl["res"] = nn.ModuleList()
            if cfg["attentionLevels"][i]:
                lvl["attn"] = nn.ModuleList()
            for _ in range(cfg["layersPerLevel"] + 1):
                lvl["res"].append(ResBlock(cur + skip_ch.pop(), out, T, G, eps))
                cur = out
                if cfg["attentionLevels"][i]:
                    lvl["attn"].append(tf(cur))
            if i > 0:
                lvl["upsample"] = nn.Conv2d(cur, cur, 3, padding=1)
            ups[i] = lvl
        assert not skip_ch
        self.up = nn.ModuleList(ups)  # indexed by level, run from the last level to the first
        self.conv_norm_out = nn.GroupNorm(G, cur, eps=eps)
        self.conv_out = nn.Conv2d(cur, cfg["inChannels"], 3, padding=1)

    def forward(self, sample, timestep, context=None, class_labels=None):
        cfg = self.cfg
        emb = self.time_embedding(timestep)
        if cfg["conditioning"] == "class":
            emb = emb + self.class_embedding(class_labels)
        if cfg["conditioning"] != "text":
            context = None
        temb = F.silu(emb)
        h = self.conv_in(sample)
        skips = [h]
        for i, lvl in enumerate(self.down):
            for j in range(cfg["layersPerLevel"]):
                h = lvl["res"][j](h, temb)
                if "attn" in lvl:
                    h = lvl["attn"][j](h, context)
                skips.append(h)
            if "downsample" in lvl:
                h = lvl["downsample"](h)
                skips.append(h)
        h = self.mid["res"][0](h, temb)
        if "attn" in self.mid:
            h = self.mid["attn"][0](h, context)
        h = self.mid["res"][1](h, temb)
        for i in range(len(self.up) - 1, -1, -1):
            lvl = self.up[i]
            for j in range(cfg["layersPerLevel"] + 1):
                h = lvl["res"][j](torch.cat([h, skips.pop()], dim=1), temb)
                if "attn" in lvl:
                    h = lvl["attn"][j](h, context)
            if "upsample" in lvl:
                h = lvl["upsample"](F.interpolate(h, scale_factor=2.0, mode="nearest"))
        return self.conv_out(F.silu(self.conv_norm_out(h)))


# ---------------------------------------------------------------------------------------------
# text encoder (src/models/text-encoder.ts)


class TextEncoderLayer(nn.Module):
    """CLIP `CLIPEncoderLayer` (pre-LN, no causal mask): x + attn(LN1 x) (biased q/k/v), x + fc2(QuickGELU(fc1(LN2 x)))."""

    def __init__(self, W, heads, mlp_mult):
        super().__init__()
        self.layer_norm1 = nn.LayerNorm(W)
        self.self_attn = Attention(W, heads, qkv_bias=True)
        self.layer_norm2 = nn.LayerNorm(W)
        self.mlp = nn.Module()
        self.mlp.fc1 = nn.Linear(W, mlp_mult * W)
        self.mlp.fc2 = nn.Linear(mlp_mult * W, W)

    def forward(self, x):
        a = self.layer_norm1(x)
        x = x + self.self_attn(a, a)
        m = self.mlp.fc1(self.layer_norm2(x))
        return x + self.mlp.fc2(m * torch.sigmoid(1.702 * m))


class TextEncoder(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        W = cfg["width"]
        self.token_embedding = nn.Embedding(cfg["vocabSize"], W)
        self.position_embedding = nn.Embedding(cfg["maxLength"], W)
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        nn.init.normal_(self.position_embedding.weight, std=0.01)
        self.layers = nn.ModuleList([TextEncoderLayer(W, cfg["heads"], cfg["mlpMult"]) for _ in range(cfg["layers"])])
        self.final_layer_norm = nn.LayerNorm(W)

    def forward(self, ids):
        h = self.token_embedding(ids) + self.position_embedding.weight
        for layer in self.layers:
            h = layer(h)
        return self.final_layer_norm(h)


# ---------------------------------------------------------------------------------------------
# the training model (src/models/diffusion-model.ts buildTrainingGraph)


class DiffusionModel(nn.Module):
    def __init__(self, unet_cfg, text_cfg):
        super().__init__()
        self.unet = Unet(unet_cfg)
        self.text = TextEncoder(text_cfg) if text_cfg is not None else None

    def loss(self, b):
        x0, noise = b["x0"], b["noise"]
        xt = x0 * b["sqrt_alpha_bar"] + noise * b["sqrt_one_minus_alpha_bar"]
        context = self.text(b["ids"]) if self.text is not None else None
        eps = self.unet(xt, b["timestep"], context, b.get("class_labels"))
        mse = ((eps - noise) ** 2).mean(dim=(1, 2, 3))
        return (mse * b["weight"]).sum() / x0.shape[0]


def linear_weight_names(model):
    return {f"{n}.weight" for n, m in model.named_modules() if isinstance(m, nn.Linear)}


def memscope_shapes(model):
    """Parameter shapes in memscope's layout (linear weights [in, out])."""
    lin = linear_weight_names(model)
    return {n: (list(p.shape[::-1]) if n in lin else list(p.shape)) for n, p in model.named_parameters()}


def default_no_decay(model):
    """The parameters memscope declares with noDecay: biases, norm weights, embeddings."""
    out = set()
    for mn, m in model.named_modules():
        for pn, _ in m.named_parameters(recurse=False):
            full = f"{mn}.{pn}" if mn else pn
            if pn == "bias" or isinstance(m, (nn.GroupNorm, nn.LayerNorm, nn.Embedding)):
                out.add(full)
    return out


def load_state(model, state):
    """Read the state file: set parameters (memscope layout) and return the batch inputs."""
    import numpy as np

    raw = np.fromfile(state["file"], dtype="<f4")
    params = dict(model.named_parameters())
    lin = linear_weight_names(model)
    inputs = {}
    off = 0
    seen = set()
    for t in state["tensors"]:
        name, dims = t["name"], list(t["dims"])
        n = int(np.prod(dims)) if dims else 1
        if off + n > raw.size:
            raise SystemExit(f"state file {state['file']}: too short for {name}")
        v = torch.from_numpy(raw[off:off + n].copy()).reshape(dims)
        off += n
        if name in params:
            p = params[name]
            if name in lin:
                v = v.t()
            if list(v.shape) != list(p.shape):
                raise SystemExit(f"state: {name} has shape {dims} but the torch parameter is {list(p.shape)}")
            with torch.no_grad():
                p.copy_(v)
            seen.add(name)
        else:
            inputs[name] = v
    if off != raw.size:
        raise SystemExit(f"state file {state['file']}: {raw.size - off} values left over")
    missing = sorted(set(params) - seen)
    if missing:
        raise SystemExit(f"state: no values for {len(missing)} torch parameters, e.g. {missing[:5]}")
    for k in ("ids", "class_labels"):
        if k in inputs:
            inputs[k] = inputs[k].round().long()
    return inputs


def random_batch(B, ucfg, tcfg, gen):
    C, S = ucfg["inChannels"], ucfg["sampleSize"]
    betas = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=torch.float32) ** 2
    abar = torch.cumprod(1.0 - betas, dim=0)
    t = torch.randint(0, 1000, (B,), generator=gen)
    b = {
        "x0": torch.rand(B, C, S, S, generator=gen) * 2 - 1,
        "noise": torch.randn(B, C, S, S, generator=gen),
        "timestep": t.float(),
        "sqrt_alpha_bar": abar[t].sqrt().view(B, 1, 1, 1),
        "sqrt_one_minus_alpha_bar": (1 - abar[t]).sqrt().view(B, 1, 1, 1),
        "weight": torch.ones(B),
    }
    if tcfg is not None:
        b["ids"] = torch.randint(0, tcfg["vocabSize"], (B, tcfg["maxLength"]), generator=gen)
    if ucfg["conditioning"] == "class":
        b["class_labels"] = torch.randint(0, ucfg["numClasses"] + 1, (B,), generator=gen)
    return b


def read_config():
    args = sys.argv[1:]
    if args and args[0] != "-":
        text = args[0]
    elif args or not sys.stdin.isatty():
        text = sys.stdin.read()
    else:
        text = "{}"
    cfg = json.loads(text or "{}")
    unet_in = dict(cfg.get("unet") or {})
    for k in UNET_DEFAULTS:
        if k in cfg and k not in unet_in:
            unet_in[k] = cfg[k]
    ucfg = {**UNET_DEFAULTS, **unet_in}
    if len(ucfg["attentionLevels"]) != len(ucfg["channels"]):
        raise SystemExit(f"attentionLevels has {len(ucfg['attentionLevels'])} entries for {len(ucfg['channels'])} levels")
    if ucfg["conditioning"] == "text":
        t_in = cfg.get("textEncoder")
        if t_in is None:
            t_in = {"vocabSize": 64, "width": ucfg["contextDim"], "maxLength": ucfg["contextLength"]}
        tcfg = {**TEXT_DEFAULTS, **t_in}
        if tcfg["width"] != ucfg["contextDim"] or tcfg["maxLength"] != ucfg["contextLength"]:
            raise SystemExit("text encoder width/maxLength must equal unet contextDim/contextLength")
    else:
        tcfg = None
    run = {k: cfg.get(k, v) for k, v in RUN_DEFAULTS.items()}
    return cfg, ucfg, tcfg, run


def main():
    cfg, ucfg, tcfg, run = read_config()
    torch.set_num_threads(int(run["threads"]))
    torch.manual_seed(int(run["seed"]))
    model = DiffusionModel(ucfg, tcfg)
    n_params = sum(p.numel() for p in model.parameters())
    unet_params = sum(p.numel() for p in model.unet.parameters())
    text_params = n_params - unet_params
    shapes = memscope_shapes(model)
    # the BLAS this torch runs on: Debian's torch calls libblas.so.3, whichever alternative it points at
    blas = sorted({l.split()[-1] for l in open("/proc/self/maps") if "blas" in l.lower() and "/" in l})
    out = {"params": n_params, "unetParams": unet_params, "textParams": text_params, "torch": torch.__version__, "threads": torch.get_num_threads(), "blas": blas}
    expect = cfg.get("expectParams")
    if expect is not None and int(expect) != n_params:
        out["shapes"] = shapes
        out["error"] = f"parameter count mismatch: PyTorch {n_params}, expected {expect}"
        print(json.dumps(out))
        sys.stderr.write(out["error"] + "\n")
        sys.exit(3)
    if cfg.get("describe"):
        out["shapes"] = shapes
        print(json.dumps(out))
        return

    B = int(run["batch"])
    state = cfg.get("state")
    if state:
        batch = load_state(model, state)
        B = batch["x0"].shape[0]
    else:
        batch = random_batch(B, ucfg, tcfg, torch.Generator().manual_seed(int(run["seed"]) + 1))

    no_decay = set(cfg["noDecay"]) if cfg.get("noDecay") is not None else default_no_decay(model)
    named = list(model.named_parameters())
    groups = [{"params": [p for n, p in named if n not in no_decay]}]
    nd = [p for n, p in named if n in no_decay]
    if nd:
        groups.append({"params": nd, "weight_decay": 0.0})
    opt = torch.optim.AdamW(groups, lr=float(run["lr"]), weight_decay=float(run["weightDecay"]))
    params = [p for _, p in named]
    clip = run["clipNorm"]

    def step():
        opt.zero_grad(set_to_none=True)
        loss = model.loss(batch)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(params, float(clip)) if clip is not None else None
        opt.step()
        return loss, norm

    if state:
        # the first step from the given values: loss and global gradient norm before any update
        opt.zero_grad(set_to_none=True)
        loss = model.loss(batch)
        loss.backward()
        gnorm = torch.norm(torch.stack([p.grad.detach().norm() for p in params if p.grad is not None]))
        out["check"] = {"loss": float(loss), "gradNorm": float(gnorm)}
        opt.zero_grad(set_to_none=True)

    for _ in range(int(run["warmup"])):
        step()
    times = []
    for _ in range(int(run["steps"])):
        t0 = time.perf_counter()
        step()
        times.append((time.perf_counter() - t0) * 1000)
    med = statistics.median(times) if times else float("nan")
    out.update({
        "batch": B,
        "steps": len(times),
        "warmup": int(run["warmup"]),
        "msPerStep": med,
        "msPerStepMean": statistics.fmean(times) if times else float("nan"),
        "stepsMs": times,
        "imagesPerSecond": B / (med / 1000) if times else float("nan"),
        "clipNorm": clip,
        "shapes": shapes,
    })
    print(json.dumps(out))


if __name__ == "__main__":
    main()
