"""Stand-in models with the interfaces of the official evaluation checkpoints, for the tests of
scripts/convert/*.py (issue 20 section 1): nothing official can be downloaded here.

    python3 convert_standins.py sscd OUT.torchscript.pt   # a TorchScript SSCD-like model (conv trunk, GeM pooling, projection)
    FILE.py:clip_standin        # CLIP-like: encode_image / encode_text (argmax-token pooling, causal), image_size, context_length
    FILE.py:inception_standin   # [B, 3, 299, 299] -> [B, 4, 1, 1] pool features
    FILE.py:inception_branchy   # takes a Python branch on the batch size: tracing freezes it, so its ONNX export differs from torch
"""
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F


class SscdLike(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.c2 = nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.proj = nn.Linear(16, 12)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.c2(F.relu(self.c1(x))))
        # GeM pooling with p = 3, as SSCD
        y = F.adaptive_avg_pool2d(y.clamp(min=1e-6).pow(3.0), 1).pow(1.0 / 3.0).flatten(1)
        return self.proj(y)


class ClipLike(nn.Module):
    image_size = 32
    context_length = 77

    def __init__(self, vocab=49408):
        super().__init__()
        self.patch = nn.Conv2d(3, 8, 8, stride=8)
        self.vproj = nn.Linear(8, 6)
        self.tok = nn.Embedding(vocab, 8)
        self.pos = nn.Parameter(torch.randn(self.context_length, 8) * 0.1)
        self.attn = nn.MultiheadAttention(8, 2, batch_first=True)
        self.tproj = nn.Linear(8, 6)

    def encode_image(self, pixel_values):
        return self.vproj(self.patch(pixel_values).flatten(2).mean(-1))

    def encode_text(self, input_ids):
        x = self.tok(input_ids) + self.pos
        L = input_ids.shape[1]
        mask = torch.triu(torch.full((L, L), float("-inf")), 1)
        x = x + self.attn(x, x, x, attn_mask=mask, need_weights=False)[0]
        # CLIP pools at the end-of-text token: the highest id (first occurrence)
        return self.tproj(x[torch.arange(x.shape[0]), input_ids.argmax(dim=-1)])


class InceptionLike(nn.Module):
    def __init__(self):
        super().__init__()
        self.c = nn.Conv2d(3, 4, 5, stride=4)

    def forward(self, x):
        return [F.adaptive_avg_pool2d(F.relu(self.c(x)), 1)]


class Branchy(InceptionLike):
    def forward(self, x):
        y = super().forward(x)[0]
        if x.shape[0] == 2:  # frozen by tracing at the export's batch of 2
            return [y]
        return [y * 2.0]


def clip_standin():
    torch.manual_seed(1)
    return ClipLike()


def inception_standin():
    torch.manual_seed(2)
    return InceptionLike()


def inception_branchy():
    torch.manual_seed(2)
    return Branchy()


if __name__ == "__main__":
    kind, out = sys.argv[1], sys.argv[2]
    assert kind == "sscd", kind
    torch.manual_seed(0)
    torch.jit.script(SscdLike().eval()).save(out)
