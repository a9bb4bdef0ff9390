#!/usr/bin/python3
"""Independent PyTorch reference of the three Stable Diffusion components memscope loads from a
diffusers pipeline folder (issue 19 §1): `UNet2DConditionModel`, `CLIPTextModel` and
`AutoencoderKL`, written from diffusers' and transformers' documented architecture with plain
torch modules (nn.Conv2d, nn.Linear, nn.GroupNorm, nn.LayerNorm, nn.Embedding, F.gelu,
F.interpolate, F.pad) whose module paths are the published state-dict keys — NOT translated from
memscope's graph builders.

Two uses:

1. `fixtures OUT_DIR` — write tiny diffusers folders and expected outputs for the tests:
   OUT_DIR/sd1/ and OUT_DIR/sd2/ hold `unet/`, `text_encoder/`, `vae/` with `config.json` and
   safetensors weights (sd1: float32 `diffusion_pytorch_model.safetensors` / `model.safetensors`;
   sd2: float16 `.fp16.safetensors` variants only), plus `expected.json`: seeded inputs and the
   torch outputs (computed in float32 from the stored weights). sd1 is SD 1.x-shaped (integer
   `attention_head_dim`, conv `proj_in`, quick_gelu text MLP, epsilon); sd2 is SD 2.x-shaped
   (per-block `attention_head_dim`, `use_linear_projection`, `upcast_attention`, gelu text MLP,
   v_prediction). Weights are random (seeded) with norms' affine parameters perturbed away from
   1 / 0 so that a wrongly mapped norm shows.
   With `--onnx`, the sd1 U-Net is also exported with torch.onnx.export (opset 14) to
   OUT_DIR/sd1-unet.onnx (the legacy export layout's `unet/model.onnx`).

2. `manifest` — print the config, state-dict keys and shapes of the full-size SD 1.5 and SD 2.1
   components (built on torch's `meta` device: no memory) as JSON, with parameter counts
   (test/fixtures/sd-state-dicts.json). The counts equal the published ones: U-Net 859,520,964
   (SD 1.5) and 865,910,724 (SD 2.1), CLIP ViT-L/14 text 123,060,480, OpenCLIP ViT-H text with
   23 layers 340,387,840, VAE 83,653,863.

Run with the interpreter that has torch (Debian's python3-torch): /usr/bin/python3.
"""
import json
import math
import os
import struct
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F


# ---------------------------------------------------------------- U-Net pieces

class ResnetBlock2D(nn.Module):
    def __init__(self, cin, cout, temb, groups, eps):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, cin, eps=eps)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        if temb is not None:
            self.time_emb_proj = nn.Linear(temb, cout)
        self.norm2 = nn.GroupNorm(groups, cout, eps=eps)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        if cin != cout:
            self.conv_shortcut = nn.Conv2d(cin, cout, 1)

    def forward(self, x, temb=None):
        h = self.conv1(F.silu(self.norm1(x)))
        if temb is not None:
            h = h + self.time_emb_proj(F.silu(temb))[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        s = self.conv_shortcut(x) if hasattr(self, "conv_shortcut") else x
        return s + h


class Attention(nn.Module):
    """Multi-head attention; `names` = (q, k, v, out) attribute names, out either a Linear or a ModuleList."""

    def __init__(self, qdim, kvdim, heads, head_dim, bias):
        super().__init__()
        inner = heads * head_dim
        self.heads = heads
        self.to_q = nn.Linear(qdim, inner, bias=bias)
        self.to_k = nn.Linear(kvdim, inner, bias=bias)
        self.to_v = nn.Linear(kvdim, inner, bias=bias)
        self.to_out = nn.ModuleList([nn.Linear(inner, qdim, bias=True), nn.Dropout(0.0)])

    def forward(self, x, ctx=None):
        ctx = x if ctx is None else ctx
        B, N, _ = x.shape
        h = self.heads
        q, k, v = self.to_q(x), self.to_k(ctx), self.to_v(ctx)
        d = q.shape[-1] // h
        q = q.view(B, -1, h, d).transpose(1, 2)
        k = k.view(B, -1, h, d).transpose(1, 2)
        v = v.view(B, -1, h, d).transpose(1, 2)
        w = torch.softmax((q @ k.transpose(-1, -2)) / math.sqrt(d), dim=-1)
        o = (w @ v).transpose(1, 2).reshape(B, N, h * d)
        return self.to_out[1](self.to_out[0](o))


class GEGLU(nn.Module):
    def __init__(self, dim, inner):
        super().__init__()
        self.proj = nn.Linear(dim, inner * 2)

    def forward(self, x):
        a, gate = self.proj(x).chunk(2, dim=-1)
        return a * F.gelu(gate)  # exact (erf) GELU, as diffusers' GEGLU


class FeedForward(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.net = nn.ModuleList([GEGLU(dim, 4 * dim), nn.Dropout(0.0), nn.Linear(4 * dim, dim)])

    def forward(self, x):
        for m in self.net:
            x = m(x)
        return x


class BasicTransformerBlock(nn.Module):
    def __init__(self, dim, heads, head_dim, cross):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn1 = Attention(dim, dim, heads, head_dim, False)
        self.norm2 = nn.LayerNorm(dim)
        self.attn2 = Attention(dim, cross, heads, head_dim, False)
        self.norm3 = nn.LayerNorm(dim)
        self.ff = FeedForward(dim)

    def forward(self, x, ctx):
        x = self.attn1(self.norm1(x)) + x
        x = self.attn2(self.norm2(x), ctx) + x
        return self.ff(self.norm3(x)) + x


class Transformer2DModel(nn.Module):
    def __init__(self, C, heads, cross, groups, linear):
        super().__init__()
        self.linear = linear
        self.norm = nn.GroupNorm(groups, C, eps=1e-6)
        self.proj_in = nn.Linear(C, C) if linear else nn.Conv2d(C, C, 1)
        self.transformer_blocks = nn.ModuleList([BasicTransformerBlock(C, heads, C // heads, cross)])
        self.proj_out = nn.Linear(C, C) if linear else nn.Conv2d(C, C, 1)

    def forward(self, x, ctx):
        B, C, H, W = x.shape
        h = self.norm(x)
        if not self.linear:
            h = self.proj_in(h)
        h = h.permute(0, 2, 3, 1).reshape(B, H * W, C)
        if self.linear:
            h = self.proj_in(h)
        for blk in self.transformer_blocks:
            h = blk(h, ctx)
        if self.linear:
            h = self.proj_out(h)
        h = h.reshape(B, H, W, C).permute(0, 3, 1, 2)
        if not self.linear:
            h = self.proj_out(h)
        return h + x


class ConvHolder(nn.Module):
    """`downsamplers.0` / `upsamplers.0`: a module whose only parameter is `.conv`."""

    def __init__(self, C, stride, pad):
        super().__init__()
        self.conv = nn.Conv2d(C, C, 3, stride=stride, padding=pad)


class Block(nn.Module):
    pass


class UNet2DConditionModel(nn.Module):
    def __init__(self, c):
        super().__init__()
        ch = c["block_out_channels"]
        L = len(ch)
        heads = c["attention_head_dim"]
        heads = heads if isinstance(heads, list) else [heads] * L
        g, eps, cross, lin = c["norm_num_groups"], c["norm_eps"], c["cross_attention_dim"], c.get("use_linear_projection", False)
        T = 4 * ch[0]
        self.c = c
        self.conv_in = nn.Conv2d(c["in_channels"], ch[0], 3, padding=1)
        self.time_embedding = nn.Module()
        self.time_embedding.linear_1 = nn.Linear(ch[0], T)
        self.time_embedding.linear_2 = nn.Linear(T, T)
        self.down_blocks = nn.ModuleList()
        cur = ch[0]
        for i, t in enumerate(c["down_block_types"]):
            b = Block()
            b.attn = t.startswith("CrossAttn")
            b.resnets = nn.ModuleList()
            if b.attn:
                b.attentions = nn.ModuleList()
            for j in range(c["layers_per_block"]):
                b.resnets.append(ResnetBlock2D(cur if j == 0 else ch[i], ch[i], T, g, eps))
                if b.attn:
                    b.attentions.append(Transformer2DModel(ch[i], heads[i], cross, g, lin))
            cur = ch[i]
            if i < L - 1:
                b.downsamplers = nn.ModuleList([ConvHolder(cur, 2, 1)])
            self.down_blocks.append(b)
        self.mid_block = Block()
        self.mid_block.resnets = nn.ModuleList([ResnetBlock2D(cur, cur, T, g, eps), ResnetBlock2D(cur, cur, T, g, eps)])
        self.mid_block.attentions = nn.ModuleList([Transformer2DModel(cur, heads[-1], cross, g, lin)])
        self.up_blocks = nn.ModuleList()
        rev = list(reversed(ch))
        rheads = list(reversed(heads))
        prev = rev[0]
        for i, t in enumerate(c["up_block_types"]):
            out = rev[i]
            inp = rev[min(i + 1, L - 1)]
            b = Block()
            b.attn = t.startswith("CrossAttn")
            b.resnets = nn.ModuleList()
            if b.attn:
                b.attentions = nn.ModuleList()
            n = c["layers_per_block"] + 1
            for j in range(n):
                skip = inp if j == n - 1 else out
                rin = prev if j == 0 else out
                b.resnets.append(ResnetBlock2D(rin + skip, out, T, g, eps))
                if b.attn:
                    b.attentions.append(Transformer2DModel(out, rheads[i], cross, g, lin))
            if i < L - 1:
                b.upsamplers = nn.ModuleList([ConvHolder(out, 1, 1)])
            prev = out
            self.up_blocks.append(b)
        self.conv_norm_out = nn.GroupNorm(g, ch[0], eps=eps)
        self.conv_out = nn.Conv2d(ch[0], c["out_channels"], 3, padding=1)

    def time_features(self, t):
        half = self.c["block_out_channels"][0] // 2
        freqs = torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float32) / half)
        a = t.float()[:, None] * freqs[None, :]
        return torch.cat([torch.cos(a), torch.sin(a)], dim=-1)  # flip_sin_to_cos=True

    def forward(self, sample, timestep, ctx):
        temb = self.time_embedding.linear_2(F.silu(self.time_embedding.linear_1(self.time_features(timestep))))
        h = self.conv_in(sample)
        skips = [h]
        for b in self.down_blocks:
            for j, r in enumerate(b.resnets):
                h = r(h, temb)
                if b.attn:
                    h = b.attentions[j](h, ctx)
                skips.append(h)
            if hasattr(b, "downsamplers"):
                h = b.downsamplers[0].conv(h)
                skips.append(h)
        h = self.mid_block.resnets[0](h, temb)
        h = self.mid_block.attentions[0](h, ctx)
        h = self.mid_block.resnets[1](h, temb)
        for b in self.up_blocks:
            for j, r in enumerate(b.resnets):
                h = r(torch.cat([h, skips.pop()], dim=1), temb)
                if b.attn:
                    h = b.attentions[j](h, ctx)
            if hasattr(b, "upsamplers"):
                h = b.upsamplers[0].conv(F.interpolate(h, scale_factor=2.0, mode="nearest"))
        return self.conv_out(F.silu(self.conv_norm_out(h)))


# ---------------------------------------------------------------- CLIP text model

class CLIPAttention(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.heads = heads
        self.k_proj = nn.Linear(d, d)
        self.v_proj = nn.Linear(d, d)
        self.q_proj = nn.Linear(d, d)
        self.out_proj = nn.Linear(d, d)

    def forward(self, x, mask):
        B, N, D = x.shape
        h = self.heads
        hd = D // h
        q = (self.q_proj(x) * hd ** -0.5).view(B, N, h, hd).transpose(1, 2)
        k = self.k_proj(x).view(B, N, h, hd).transpose(1, 2)
        v = self.v_proj(x).view(B, N, h, hd).transpose(1, 2)
        w = torch.softmax(q @ k.transpose(-1, -2) + mask, dim=-1)
        return self.out_proj((w @ v).transpose(1, 2).reshape(B, N, D))


class CLIPEncoderLayer(nn.Module):
    def __init__(self, c):
        super().__init__()
        d = c["hidden_size"]
        self.act = c["hidden_act"]
        self.self_attn = CLIPAttention(d, c["num_attention_heads"])
        self.layer_norm1 = nn.LayerNorm(d, eps=c["layer_norm_eps"])
        self.mlp = nn.Module()
        self.mlp.fc1 = nn.Linear(d, c["intermediate_size"])
        self.mlp.fc2 = nn.Linear(c["intermediate_size"], d)
        self.layer_norm2 = nn.LayerNorm(d, eps=c["layer_norm_eps"])

    def forward(self, x, mask):
        x = x + self.self_attn(self.layer_norm1(x), mask)
        h = self.mlp.fc1(self.layer_norm2(x))
        h = h * torch.sigmoid(1.702 * h) if self.act == "quick_gelu" else F.gelu(h)
        return x + self.mlp.fc2(h)


class CLIPTextModel(nn.Module):
    def __init__(self, c):
        super().__init__()
        d = c["hidden_size"]
        self.text_model = nn.Module()
        tm = self.text_model
        tm.embeddings = nn.Module()
        tm.embeddings.token_embedding = nn.Embedding(c["vocab_size"], d)
        tm.embeddings.position_embedding = nn.Embedding(c["max_position_embeddings"], d)
        tm.encoder = nn.Module()
        tm.encoder.layers = nn.ModuleList([CLIPEncoderLayer(c) for _ in range(c["num_hidden_layers"])])
        tm.final_layer_norm = nn.LayerNorm(d, eps=c["layer_norm_eps"])

    def forward(self, ids):
        tm = self.text_model
        N = ids.shape[1]
        x = tm.embeddings.token_embedding(ids) + tm.embeddings.position_embedding(torch.arange(N))[None]
        mask = torch.full((N, N), torch.finfo(torch.float32).min).triu(1)[None, None]
        for layer in tm.encoder.layers:
            x = layer(x, mask)
        return tm.final_layer_norm(x)


# ---------------------------------------------------------------- AutoencoderKL

class VaeAttention(nn.Module):
    def __init__(self, C, groups):
        super().__init__()
        self.group_norm = nn.GroupNorm(groups, C, eps=1e-6)
        self.to_q = nn.Linear(C, C)
        self.to_k = nn.Linear(C, C)
        self.to_v = nn.Linear(C, C)
        self.to_out = nn.ModuleList([nn.Linear(C, C), nn.Dropout(0.0)])

    def forward(self, x):
        B, C, H, W = x.shape
        h = self.group_norm(x).view(B, C, H * W).transpose(1, 2)
        q, k, v = self.to_q(h), self.to_k(h), self.to_v(h)
        w = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(C), dim=-1)
        o = self.to_out[0](w @ v)
        return o.transpose(1, 2).reshape(B, C, H, W) + x


def vae_mid(C, g):
    m = Block()
    m.resnets = nn.ModuleList([ResnetBlock2D(C, C, None, g, 1e-6), ResnetBlock2D(C, C, None, g, 1e-6)])
    m.attentions = nn.ModuleList([VaeAttention(C, g)])
    return m


def run_mid(m, h):
    return m.resnets[1](m.attentions[0](m.resnets[0](h)))


class Encoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        ch, g = c["block_out_channels"], c["norm_num_groups"]
        self.conv_in = nn.Conv2d(c["in_channels"], ch[0], 3, padding=1)
        self.down_blocks = nn.ModuleList()
        cur = ch[0]
        for i, out in enumerate(ch):
            b = Block()
            b.resnets = nn.ModuleList([ResnetBlock2D(cur if j == 0 else out, out, None, g, 1e-6) for j in range(c["layers_per_block"])])
            cur = out
            if i < len(ch) - 1:
                b.downsamplers = nn.ModuleList([ConvHolder(out, 2, 0)])
            self.down_blocks.append(b)
        self.mid_block = vae_mid(cur, g)
        self.conv_norm_out = nn.GroupNorm(g, cur, eps=1e-6)
        self.conv_out = nn.Conv2d(cur, 2 * c["latent_channels"], 3, padding=1)

    def forward(self, x):
        h = self.conv_in(x)
        for b in self.down_blocks:
            for r in b.resnets:
                h = r(h)
            if hasattr(b, "downsamplers"):
                h = b.downsamplers[0].conv(F.pad(h, (0, 1, 0, 1)))
        h = run_mid(self.mid_block, h)
        return self.conv_out(F.silu(self.conv_norm_out(h)))


class Decoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        ch, g = c["block_out_channels"], c["norm_num_groups"]
        rev = list(reversed(ch))
        self.conv_in = nn.Conv2d(c["latent_channels"], rev[0], 3, padding=1)
        self.mid_block = vae_mid(rev[0], g)
        self.up_blocks = nn.ModuleList()
        prev = rev[0]
        for i, out in enumerate(rev):
            b = Block()
            b.resnets = nn.ModuleList([ResnetBlock2D(prev if j == 0 else out, out, None, g, 1e-6) for j in range(c["layers_per_block"] + 1)])
            if i < len(ch) - 1:
                b.upsamplers = nn.ModuleList([ConvHolder(out, 1, 1)])
            prev = out
            self.up_blocks.append(b)
        self.conv_norm_out = nn.GroupNorm(g, ch[0], eps=1e-6)
        self.conv_out = nn.Conv2d(ch[0], c["out_channels"], 3, padding=1)

    def forward(self, z):
        h = run_mid(self.mid_block, self.conv_in(z))
        for b in self.up_blocks:
            for r in b.resnets:
                h = r(h)
            if hasattr(b, "upsamplers"):
                h = b.upsamplers[0].conv(F.interpolate(h, scale_factor=2.0, mode="nearest"))
        return self.conv_out(F.silu(self.conv_norm_out(h)))


class AutoencoderKL(nn.Module):
    def __init__(self, c):
        super().__init__()
        L = c["latent_channels"]
        self.encoder = Encoder(c)
        self.decoder = Decoder(c)
        self.quant_conv = nn.Conv2d(2 * L, 2 * L, 1)
        self.post_quant_conv = nn.Conv2d(L, L, 1)

    def encode(self, x):
        return self.quant_conv(self.encoder(x))  # moments: mean ‖ log-variance

    def decode(self, z):
        return self.decoder(self.post_quant_conv(z))


# ---------------------------------------------------------------- configs

def unet_config(kind, full):
    if full:
        ch = [320, 640, 1280, 1280]
        c = dict(sample_size=64 if kind == "sd1" else 96, block_out_channels=ch, layers_per_block=2, norm_num_groups=32,
                 cross_attention_dim=768 if kind == "sd1" else 1024, attention_head_dim=8 if kind == "sd1" else [5, 10, 20, 20])
    else:
        ch = [8, 16, 16]
        c = dict(sample_size=8, block_out_channels=ch, layers_per_block=2, norm_num_groups=4,
                 cross_attention_dim=16, attention_head_dim=2 if kind == "sd1" else [2, 2, 4])
    L = len(ch)
    c.update(_class_name="UNet2DConditionModel", in_channels=4, out_channels=4, norm_eps=1e-5, act_fn="silu",
             down_block_types=["CrossAttnDownBlock2D"] * (L - 1) + ["DownBlock2D"],
             up_block_types=["UpBlock2D"] + ["CrossAttnUpBlock2D"] * (L - 1),
             mid_block_type="UNetMidBlock2DCrossAttn", flip_sin_to_cos=True, freq_shift=0, center_input_sample=False,
             downsample_padding=1, mid_block_scale_factor=1, dual_cross_attention=False, only_cross_attention=False,
             use_linear_projection=kind == "sd2", upcast_attention=kind == "sd2", class_embed_type=None, num_class_embeds=None,
             resnet_time_scale_shift="default")
    return c


def text_config(kind, full):
    if full:
        c = dict(hidden_size=768, intermediate_size=3072, num_attention_heads=12, num_hidden_layers=12, projection_dim=768, vocab_size=49408) if kind == "sd1" \
            else dict(hidden_size=1024, intermediate_size=4096, num_attention_heads=16, num_hidden_layers=23, projection_dim=512, vocab_size=49408)
    else:
        c = dict(hidden_size=16, intermediate_size=32, num_attention_heads=2, num_hidden_layers=2, projection_dim=16, vocab_size=VOCAB)
    c.update(architectures=["CLIPTextModel"], model_type="clip_text_model", max_position_embeddings=77, layer_norm_eps=1e-5,
             hidden_act="quick_gelu" if kind == "sd1" else "gelu", bos_token_id=0, eos_token_id=2, pad_token_id=1)
    return c


def vae_config(full):
    ch = [128, 256, 512, 512] if full else [8, 8, 16, 16]
    return dict(_class_name="AutoencoderKL", in_channels=3, out_channels=3, latent_channels=4, block_out_channels=ch,
                layers_per_block=2 if full else 1, norm_num_groups=32 if full else 4, act_fn="silu", sample_size=512 if full else 64,
                scaling_factor=0.18215, down_block_types=["DownEncoderBlock2D"] * len(ch), up_block_types=["UpDecoderBlock2D"] * len(ch))


VOCAB = 600  # covers the test tokenizer's ids (test/helpers/tiny-sd-export.ts)


# ---------------------------------------------------------------- safetensors

def write_safetensors(path, sd, dtype, ints=None):
    """Float tensors `sd` as `dtype` (sorted by key), then int64 tensors `ints` (as real SD 1.x files carry `position_ids`)."""
    items = [(k, v, dtype) for k, v in sorted(sd.items())] + [(k, v, torch.int64) for k, v in sorted((ints or {}).items())]
    header, chunks, off = {}, [], 0
    codes = {torch.float32: "F32", torch.float16: "F16", torch.int64: "I64"}
    for k, v, t in items:
        b = v.detach().to(t).contiguous().numpy().tobytes()
        header[k] = {"dtype": codes[t], "shape": list(v.shape), "data_offsets": [off, off + len(b)]}
        chunks.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - (8 + len(h)) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in chunks:
            f.write(b)


def randomize(module, gen):
    """Seeded random weights; norm weights around 1 and biases around 0, every value distinct."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            r = torch.randn(p.shape, generator=gen)
            if name.endswith("embedding.weight"):
                p.copy_(0.5 * r)
            elif p.dim() == 1 and ("norm" in name):
                p.copy_((1.0 if name.endswith("weight") else 0.0) + 0.1 * r)
            else:
                fan_in = p[0].numel() if p.dim() > 1 else p.numel()
                p.copy_(r / math.sqrt(fan_in))


def write_fixture(root, kind, onnx):
    gen = torch.Generator().manual_seed(1 if kind == "sd1" else 2)
    fp16 = kind == "sd2"
    dtype = torch.float16 if fp16 else torch.float32
    suffix = ".fp16.safetensors" if fp16 else ".safetensors"
    out = os.path.join(root, kind)
    uc, tc, vc = unet_config(kind, False), text_config(kind, False), vae_config(False)
    unet, te, vae = UNet2DConditionModel(uc), CLIPTextModel(tc), AutoencoderKL(vc)
    for m in (unet, te, vae):
        randomize(m, gen)
        with torch.no_grad():  # compute with exactly the stored (possibly fp16-rounded) weights
            for p in m.parameters():
                p.copy_(p.to(dtype).float())
    for comp, cfg, m, fname in (("unet", uc, unet, "diffusion_pytorch_model"), ("text_encoder", tc, te, "model"), ("vae", vc, vae, "diffusion_pytorch_model")):
        os.makedirs(os.path.join(out, comp), exist_ok=True)
        with open(os.path.join(out, comp, "config.json"), "w") as f:
            json.dump(cfg, f, indent=1)
        write_safetensors(os.path.join(out, comp, fname + suffix), m.state_dict(), dtype)
    # inputs (one seeded draw each) and the torch outputs, float32 in expected.safetensors
    sample = torch.randn(2, 4, 8, 8, generator=gen)
    timestep = torch.tensor([999.0, 481.0])
    ctx = torch.randn(2, 77, 16, generator=gen)
    ids = torch.randint(0, VOCAB, (2, 77), generator=gen)
    image = torch.rand(1, 3, 32, 32, generator=gen) * 2 - 1
    latent = torch.randn(1, 4, 4, 4, generator=gen)
    with torch.no_grad():
        exp = dict(sample=sample, timestep=timestep, context=ctx, unet=unet(sample, timestep, ctx), ids=ids.float(), text=te(ids),
                   image=image, moments=vae.encode(image), latent=latent, decoded=vae.decode(latent))
    write_safetensors(os.path.join(out, "expected.safetensors"), exp, torch.float32)
    if onnx and kind == "sd1":
        torch.onnx.export(unet, (sample, timestep, ctx), os.path.join(root, "sd1-unet.onnx"), opset_version=14,
                          input_names=["sample", "timestep", "encoder_hidden_states"], output_names=["out_sample"],
                          dynamic_axes={"sample": {0: "batch", 2: "height", 3: "width"}, "timestep": {0: "batch"}, "encoder_hidden_states": {0: "batch", 1: "sequence"}})


def manifest():
    out = {}
    for kind in ("sd1", "sd2"):
        comps = {}
        for comp, cfg, ctor in (("unet", unet_config(kind, True), UNet2DConditionModel), ("text_encoder", text_config(kind, True), CLIPTextModel), ("vae", vae_config(True), AutoencoderKL)):
            sd = _on_meta(lambda: ctor(cfg)).state_dict()
            comps[comp] = dict(config=cfg, params=sum(v.numel() for v in sd.values()), keys={k: list(v.shape) for k, v in sorted(sd.items())})
        out[kind] = comps
    json.dump(out, sys.stdout, separators=(",", ":"))


def _on_meta(ctor):
    """Build a module without allocating its weights (torch 1.13: patch the default tensor factory to `meta`)."""
    orig = {n: getattr(torch, n) for n in ("empty",)}

    def empty(*a, **k):
        k["device"] = "meta"
        return orig["empty"](*a, **k)

    torch.empty = empty
    try:
        with torch.no_grad():
            m = ctor()
    finally:
        torch.empty = orig["empty"]
    return m


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "fixtures":
        torch.manual_seed(0)
        for k in ("sd1", "sd2"):
            write_fixture(sys.argv[2], k, "--onnx" in sys.argv)
    elif len(sys.argv) >= 2 and sys.argv[1] == "manifest":
        manifest()
    else:
        print(__doc__)
        sys.exit(2)
