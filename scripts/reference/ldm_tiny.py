#!/usr/bin/python3
"""Independent PyTorch reference of Stable Diffusion's ORIGINAL single-file checkpoint layout
(CompVis / Stability `ldm` code: `v1-5-pruned-emaonly.safetensors`, `v2-1_768-ema-pruned.safetensors`
and fine-tunes saved the same way) for memscope's single-file loader (issue 19 §1, optional part).

The modules here are arranged as the `ldm` repository arranges them, so that their state-dict
keys ARE the single-file keys (written from the published architecture, not from memscope's key
conversion):
- `model.diffusion_model.*`: openaimodel's `UNetModel` — `time_embed` (Linear, SiLU, Linear),
  `input_blocks` (TimestepEmbedSequential lists: conv_in; ResBlock [+ SpatialTransformer]; a
  Downsample `op` conv), `middle_block` (ResBlock, SpatialTransformer, ResBlock), `output_blocks`
  (ResBlock [+ SpatialTransformer] [+ Upsample `conv`]), `out` (GroupNorm, SiLU, conv); a ResBlock is
  `in_layers` (GroupNorm, SiLU, conv), `emb_layers` (SiLU, Linear), `out_layers` (GroupNorm, SiLU,
  Dropout, conv), `skip_connection`.
- `first_stage_model.*`: `AutoencoderKL` of `ldm.models.autoencoder` — `encoder.down.{i}.block.{j}`,
  `encoder.down.{i}.downsample.conv`, `mid.block_1` / `mid.attn_1` (q, k, v, proj_out as 1×1
  convs) / `mid.block_2`, `norm_out`, `decoder.up.{i}` indexed by resolution level (the deepest
  level runs first), `nin_shortcut`, `quant_conv`, `post_quant_conv`.
- `cond_stage_model.*`: SD 1.x's `FrozenCLIPEmbedder` wraps transformers' CLIPTextModel
  (`cond_stage_model.transformer.text_model.*`, the same module as diffusers_tiny.py's); SD 2.x's
  `FrozenOpenCLIPEmbedder` is open_clip's text tower (`token_embedding`, `positional_embedding`,
  `transformer.resblocks.{i}` with torch's own `nn.MultiheadAttention` — fused `in_proj_weight` —,
  `ln_1`, `ln_2`, `mlp.c_fc` / `mlp.c_proj`, `ln_final`, `text_projection`, `logit_scale`) used at its
  penultimate layer (`layer="penultimate"`: the last resblock is skipped, then `ln_final`).
- plus what real files carry and a loader must skip: the DDPM schedule buffers (`betas`,
  `alphas_cumprod`, …), `model_ema.decay` / `model_ema.num_updates` and EMA copies under
  `model_ema.*`, and SD 1.x's int64 `position_ids`.

Two uses:
1. `fixtures OUT_DIR` — tiny checkpoints with the configs of diffusers_tiny.py's tiny folders:
   OUT_DIR/sd1/model.safetensors (float32) and OUT_DIR/sd2/model.safetensors (float16), each with
   `expected.safetensors` (seeded inputs and these modules' outputs, computed in float32 from the
   stored weights).
2. `manifest` — the keys and shapes of the full-size SD 1.5 and SD 2.1 single files (weights only,
   no buffers; built on torch's meta device) as JSON (test/fixtures/sd-single-file-keys.json).

Run with the interpreter that has torch (Debian's python3-torch): /usr/bin/python3.
"""
import json
import math
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from diffusers_tiny import (VOCAB, CLIPTextModel, Transformer2DModel, _on_meta,  # noqa: E402
                            text_config, unet_config, vae_config, write_safetensors)


# ---------------------------------------------------------------- openaimodel UNetModel

class ResBlock(nn.Module):
    def __init__(self, cin, cout, temb, groups, eps):
        super().__init__()
        self.in_layers = nn.Sequential(nn.GroupNorm(groups, cin, eps=eps), nn.SiLU(), nn.Conv2d(cin, cout, 3, padding=1))
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(temb, cout))
        self.out_layers = nn.Sequential(nn.GroupNorm(groups, cout, eps=eps), nn.SiLU(), nn.Dropout(0.0), nn.Conv2d(cout, cout, 3, padding=1))
        self.skip_connection = nn.Identity() if cin == cout else nn.Conv2d(cin, cout, 1)

    def forward(self, x, emb):
        h = self.in_layers(x) + self.emb_layers(emb)[:, :, None, None]
        return self.skip_connection(x) + self.out_layers(h)


class Downsample(nn.Module):
    def __init__(self, C):
        super().__init__()
        self.op = nn.Conv2d(C, C, 3, stride=2, padding=1)

    def forward(self, x):
        return self.op(x)


class Upsample(nn.Module):
    def __init__(self, C):
        super().__init__()
        self.conv = nn.Conv2d(C, C, 3, padding=1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class TimestepEmbedSequential(nn.Sequential):
    def forward(self, x, emb, ctx):
        for m in self:
            if isinstance(m, ResBlock):
                x = m(x, emb)
            elif isinstance(m, Transformer2DModel):
                x = m(x, ctx)
            else:
                x = m(x)
        return x


def timestep_embedding(t, dim):
    half = dim // 2
    freqs = torch.exp(-math.log(10000) * torch.arange(0, half, dtype=torch.float32) / half)
    a = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(a), torch.sin(a)], dim=-1)


class UNetModel(nn.Module):
    """`c` is a diffusers-style config dict (diffusers_tiny.unet_config); levels with attention are the non-last ones."""

    def __init__(self, c):
        super().__init__()
        ch = c["block_out_channels"]
        L = len(ch)
        heads = c["attention_head_dim"]
        heads = heads if isinstance(heads, list) else [heads] * L
        g, eps, cross, lin, nres = c["norm_num_groups"], c["norm_eps"], c["cross_attention_dim"], c.get("use_linear_projection", False), c["layers_per_block"]
        attn = [t.startswith("CrossAttn") for t in c["down_block_types"]]
        T = 4 * ch[0]
        self.model_channels = ch[0]
        self.time_embed = nn.Sequential(nn.Linear(ch[0], T), nn.SiLU(), nn.Linear(T, T))
        self.input_blocks = nn.ModuleList([TimestepEmbedSequential(nn.Conv2d(c["in_channels"], ch[0], 3, padding=1))])
        skips = [ch[0]]
        cur = ch[0]
        for lvl in range(L):
            for _ in range(nres):
                layers = [ResBlock(cur, ch[lvl], T, g, eps)]
                cur = ch[lvl]
                if attn[lvl]:
                    layers.append(Transformer2DModel(cur, heads[lvl], cross, g, lin))
                self.input_blocks.append(TimestepEmbedSequential(*layers))
                skips.append(cur)
            if lvl < L - 1:
                self.input_blocks.append(TimestepEmbedSequential(Downsample(cur)))
                skips.append(cur)
        self.middle_block = TimestepEmbedSequential(ResBlock(cur, cur, T, g, eps), Transformer2DModel(cur, heads[-1], cross, g, lin), ResBlock(cur, cur, T, g, eps))
        self.output_blocks = nn.ModuleList()
        for lvl in reversed(range(L)):
            for i in range(nres + 1):
                layers = [ResBlock(cur + skips.pop(), ch[lvl], T, g, eps)]
                cur = ch[lvl]
                if attn[lvl]:
                    layers.append(Transformer2DModel(cur, heads[lvl], cross, g, lin))
                if lvl > 0 and i == nres:
                    layers.append(Upsample(cur))
                self.output_blocks.append(TimestepEmbedSequential(*layers))
        self.out = nn.Sequential(nn.GroupNorm(g, ch[0], eps=eps), nn.SiLU(), nn.Conv2d(ch[0], c["out_channels"], 3, padding=1))

    def forward(self, x, t, ctx):
        emb = self.time_embed(timestep_embedding(t, self.model_channels))
        hs = []
        h = x
        for m in self.input_blocks:
            h = m(h, emb, ctx)
            hs.append(h)
        h = self.middle_block(h, emb, ctx)
        for m in self.output_blocks:
            h = m(torch.cat([h, hs.pop()], dim=1), emb, ctx)
        return self.out(h)


# ---------------------------------------------------------------- ldm AutoencoderKL

class VaeResnetBlock(nn.Module):
    def __init__(self, cin, cout, groups):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, cin, eps=1e-6)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.norm2 = nn.GroupNorm(groups, cout, eps=1e-6)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        if cin != cout:
            self.nin_shortcut = nn.Conv2d(cin, cout, 1)

    def forward(self, x):
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return (self.nin_shortcut(x) if hasattr(self, "nin_shortcut") else x) + h


class AttnBlock(nn.Module):
    def __init__(self, C, groups):
        super().__init__()
        self.norm = nn.GroupNorm(groups, C, eps=1e-6)
        self.q = nn.Conv2d(C, C, 1)
        self.k = nn.Conv2d(C, C, 1)
        self.v = nn.Conv2d(C, C, 1)
        self.proj_out = nn.Conv2d(C, C, 1)

    def forward(self, x):
        B, C, H, W = x.shape
        h = self.norm(x)
        q = self.q(h).reshape(B, C, H * W).permute(0, 2, 1)
        k = self.k(h).reshape(B, C, H * W)
        w = torch.softmax(torch.bmm(q, k) * C ** -0.5, dim=2)
        v = self.v(h).reshape(B, C, H * W)
        o = torch.bmm(v, w.permute(0, 2, 1)).reshape(B, C, H, W)
        return x + self.proj_out(o)


class Mid(nn.Module):
    def __init__(self, C, g):
        super().__init__()
        self.block_1 = VaeResnetBlock(C, C, g)
        self.attn_1 = AttnBlock(C, g)
        self.block_2 = VaeResnetBlock(C, C, g)

    def forward(self, h):
        return self.block_2(self.attn_1(self.block_1(h)))


class Level(nn.Module):
    pass


class DownConv(nn.Module):
    def __init__(self, C):
        super().__init__()
        self.conv = nn.Conv2d(C, C, 3, stride=2, padding=0)

    def forward(self, x):
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class LdmEncoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        ch, g, nres = c["block_out_channels"], c["norm_num_groups"], c["layers_per_block"]
        self.conv_in = nn.Conv2d(c["in_channels"], ch[0], 3, padding=1)
        self.down = nn.ModuleList()
        cur = ch[0]
        for i, out in enumerate(ch):
            lv = Level()
            lv.block = nn.ModuleList()
            for _ in range(nres):
                lv.block.append(VaeResnetBlock(cur, out, g))
                cur = out
            lv.attn = nn.ModuleList()
            if i < len(ch) - 1:
                lv.downsample = DownConv(cur)
            self.down.append(lv)
        self.mid = Mid(cur, g)
        self.norm_out = nn.GroupNorm(g, cur, eps=1e-6)
        self.conv_out = nn.Conv2d(cur, 2 * c["latent_channels"], 3, padding=1)

    def forward(self, x):
        h = self.conv_in(x)
        for lv in self.down:
            for b in lv.block:
                h = b(h)
            if hasattr(lv, "downsample"):
                h = lv.downsample(h)
        return self.conv_out(F.silu(self.norm_out(self.mid(h))))


class LdmDecoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        ch, g, nres = c["block_out_channels"], c["norm_num_groups"], c["layers_per_block"]
        L = len(ch)
        cur = ch[-1]
        self.conv_in = nn.Conv2d(c["latent_channels"], cur, 3, padding=1)
        self.mid = Mid(cur, g)
        levels = [None] * L
        for i in reversed(range(L)):
            lv = Level()
            lv.block = nn.ModuleList()
            for _ in range(nres + 1):
                lv.block.append(VaeResnetBlock(cur, ch[i], g))
                cur = ch[i]
            lv.attn = nn.ModuleList()
            if i > 0:
                lv.upsample = Upsample(cur)
            levels[i] = lv
        self.up = nn.ModuleList(levels)  # indexed by resolution level: up[L-1] runs first
        self.norm_out = nn.GroupNorm(g, cur, eps=1e-6)
        self.conv_out = nn.Conv2d(cur, c["out_channels"], 3, padding=1)

    def forward(self, z):
        h = self.mid(self.conv_in(z))
        for i in reversed(range(len(self.up))):
            lv = self.up[i]
            for b in lv.block:
                h = b(h)
            if hasattr(lv, "upsample"):
                h = lv.upsample(h)
        return self.conv_out(F.silu(self.norm_out(h)))


class LdmAutoencoderKL(nn.Module):
    def __init__(self, c):
        super().__init__()
        L = c["latent_channels"]
        self.encoder = LdmEncoder(c)
        self.decoder = LdmDecoder(c)
        self.quant_conv = nn.Conv2d(2 * L, 2 * L, 1)
        self.post_quant_conv = nn.Conv2d(L, L, 1)

    def encode(self, x):
        return self.quant_conv(self.encoder(x))

    def decode(self, z):
        return self.decoder(self.post_quant_conv(z))


# ---------------------------------------------------------------- open_clip text tower (SD 2.x)

class ResidualAttentionBlock(nn.Module):
    def __init__(self, d, heads, mlp):
        super().__init__()
        self.ln_1 = nn.LayerNorm(d)
        self.attn = nn.MultiheadAttention(d, heads)
        self.ln_2 = nn.LayerNorm(d)
        self.mlp = nn.Sequential()
        self.mlp.add_module("c_fc", nn.Linear(d, mlp))
        self.mlp.add_module("gelu", nn.GELU())
        self.mlp.add_module("c_proj", nn.Linear(mlp, d))

    def forward(self, x, mask):
        h = self.ln_1(x)
        x = x + self.attn(h, h, h, need_weights=False, attn_mask=mask)[0]
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    def __init__(self, d, layers, heads, mlp):
        super().__init__()
        self.resblocks = nn.ModuleList([ResidualAttentionBlock(d, heads, mlp) for _ in range(layers)])


class OpenClipText(nn.Module):
    """open_clip's text tower with `layers` resblocks; SD 2.x reads the output of the penultimate one through `ln_final`."""

    def __init__(self, d, layers, heads, mlp, vocab, proj):
        super().__init__()
        self.token_embedding = nn.Embedding(vocab, d)
        self.positional_embedding = nn.Parameter(torch.empty(77, d))
        self.transformer = Transformer(d, layers, heads, mlp)
        self.ln_final = nn.LayerNorm(d)
        self.text_projection = nn.Parameter(torch.empty(d, proj))
        self.logit_scale = nn.Parameter(torch.ones([]) * math.log(1 / 0.07))

    def forward(self, ids):
        x = self.token_embedding(ids) + self.positional_embedding[None]
        x = x.permute(1, 0, 2)  # sequence-first, as open_clip (batch_first=False)
        mask = torch.full((77, 77), float("-inf")).triu(1)
        for r in self.transformer.resblocks[:-1]:  # penultimate
            x = r(x, mask)
        return self.ln_final(x.permute(1, 0, 2))


class FrozenOpenCLIPEmbedder(nn.Module):
    def __init__(self, tc):
        super().__init__()
        self.model = OpenClipText(tc["hidden_size"], tc["num_hidden_layers"] + 1, tc["num_attention_heads"], tc["intermediate_size"], tc["vocab_size"], tc["projection_dim"])

    def forward(self, ids):
        return self.model(ids)


class FrozenCLIPEmbedder(nn.Module):
    def __init__(self, tc):
        super().__init__()
        self.transformer = CLIPTextModel(tc)

    def forward(self, ids):
        return self.transformer(ids)


# ---------------------------------------------------------------- the checkpoint

class LatentDiffusion(nn.Module):
    def __init__(self, kind, full):
        super().__init__()
        self.model = nn.Module()
        self.model.diffusion_model = UNetModel(unet_config(kind, full))
        self.first_stage_model = LdmAutoencoderKL(vae_config(full))
        tc = text_config(kind, full)
        if full and kind == "sd2":
            tc = dict(tc, num_hidden_layers=23)  # diffusers' count; open_clip's tower has one more
        self.cond_stage_model = FrozenCLIPEmbedder(tc) if kind == "sd1" else FrozenOpenCLIPEmbedder(tc)


def schedule_buffers():
    """The DDPM buffers `ldm.models.diffusion.ddpm` registers (linear_start 0.00085, linear_end 0.012, 1000 steps, 'linear' = scaled linear)."""
    betas = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=torch.float64) ** 2
    alphas_cumprod = torch.cumprod(1 - betas, 0)
    prev = torch.cat([torch.ones(1, dtype=torch.float64), alphas_cumprod[:-1]])
    var = betas * (1 - prev) / (1 - alphas_cumprod)
    b = dict(betas=betas, alphas_cumprod=alphas_cumprod, alphas_cumprod_prev=prev, sqrt_alphas_cumprod=alphas_cumprod.sqrt(),
             sqrt_one_minus_alphas_cumprod=(1 - alphas_cumprod).sqrt(), log_one_minus_alphas_cumprod=(1 - alphas_cumprod).log(),
             sqrt_recip_alphas_cumprod=(1 / alphas_cumprod).sqrt(), sqrt_recipm1_alphas_cumprod=(1 / alphas_cumprod - 1).sqrt(),
             posterior_variance=var, posterior_log_variance_clipped=torch.log(torch.clamp(var, min=1e-20)),
             posterior_mean_coef1=betas * prev.sqrt() / (1 - alphas_cumprod), posterior_mean_coef2=(1 - prev) * (1 - betas).sqrt() / (1 - alphas_cumprod))
    return {k: v.float() for k, v in b.items()}


def randomize(module, gen):
    """Seeded random weights: 1-D weights (the norms' scales) around 1, 1-D biases around 0, embeddings ~0.5·N(0, 1), matrices / kernels N(0, 1/fan_in)."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.dim() == 0:
                continue
            r = torch.randn(p.shape, generator=gen)
            if name.endswith("embedding.weight") or name.endswith("positional_embedding"):
                p.copy_(0.5 * r)
            elif p.dim() == 1:
                p.copy_((1.0 if name.endswith("weight") else 0.0) + 0.1 * r)
            else:
                p.copy_(r / math.sqrt(p[0].numel()))


def write_fixture(root, kind):
    gen = torch.Generator().manual_seed(11 if kind == "sd1" else 12)
    dtype = torch.float32 if kind == "sd1" else torch.float16
    ld = LatentDiffusion(kind, False)
    randomize(ld, gen)
    with torch.no_grad():
        for name, p in ld.named_parameters():
            p.copy_(p.to(dtype).float())  # compute with exactly the stored weights
    sd = {k: v for k, v in ld.state_dict().items()}
    sd.update(schedule_buffers())
    sd["model_ema.decay"] = torch.tensor(0.9999)
    sd["model_ema.num_updates"] = torch.tensor(1000.0)
    # a non-pruned file's EMA copies: module paths with the dots removed
    for k in list(sd):
        if k.startswith("model.diffusion_model.") and k.endswith("out.2.weight"):
            sd["model_ema." + k[len("model."):].replace(".", "")] = sd[k].clone()
    out = os.path.join(root, kind)
    os.makedirs(out, exist_ok=True)
    write_safetensors(os.path.join(out, "model.safetensors"), sd, dtype, {"cond_stage_model.transformer.text_model.embeddings.position_ids": torch.arange(77)[None]} if kind == "sd1" else {})
    sample = torch.randn(2, 4, 8, 8, generator=gen)
    timestep = torch.tensor([999.0, 481.0])
    ctx = torch.randn(2, 77, 16, generator=gen)
    ids = torch.randint(0, VOCAB, (2, 77), generator=gen)
    image = torch.rand(1, 3, 32, 32, generator=gen) * 2 - 1
    latent = torch.randn(1, 4, 4, 4, generator=gen)
    with torch.no_grad():
        exp = dict(sample=sample, timestep=timestep, context=ctx, unet=ld.model.diffusion_model(sample, timestep, ctx), ids=ids.float(),
                   text=ld.cond_stage_model(ids), image=image, moments=ld.first_stage_model.encode(image), latent=latent,
                   decoded=ld.first_stage_model.decode(latent))
    write_safetensors(os.path.join(out, "expected.safetensors"), exp, torch.float32)


def manifest():
    out = {}
    for kind in ("sd1", "sd2"):
        sd = _on_meta(lambda: LatentDiffusion(kind, True)).state_dict()
        out[kind] = {k: list(v.shape) for k, v in sorted(sd.items())}
    json.dump(out, sys.stdout, separators=(",", ":"))


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "fixtures":
        torch.manual_seed(0)
        for k in ("sd1", "sd2"):
            write_fixture(sys.argv[2], k)
    elif len(sys.argv) >= 2 and sys.argv[1] == "manifest":
        manifest()
    else:
        print(__doc__)
        sys.exit(2)
