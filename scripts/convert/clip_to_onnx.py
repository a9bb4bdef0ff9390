#!/usr/bin/env python3
"""Convert a CLIP model (both towers) to ONNX for memscope (`--clip DIR`: CLIP score alignment).

Sources (one of):
  --hf DIR                      a transformers CLIPModel folder (e.g. openai/clip-vit-large-patch14,
                                Jain et al.'s and the diffusers pipelines' CLIP); its tokenizer files are copied
  --open-clip MODEL --pretrained FILE
                                an open_clip model from a local checkpoint file (Wen et al.: ViT-g-14,
                                laion2b_s12b_b42k); give --tokenizer (any OpenAI-CLIP tokenizer folder: open_clip
                                uses the same BPE vocabulary)
  --module FILE.py:FACTORY      any object with encode_image(pixel_values), encode_text(input_ids),
                                image_size and context_length (your own loader, or a stand-in)

Writes OUT/vision_model.onnx (pixel_values [B, 3, S, S] -> image_embeds [B, D]), OUT/text_model.onnx
(input_ids int64 [B, L] -> text_embeds [B, D]), OUT/tokenizer/ and a manifest beside each ONNX file,
after checking both against torch with onnxruntime-node on seeded random inputs. Nothing is downloaded.

    python3 scripts/convert/clip_to_onnx.py --hf clip-vit-large-patch14/ --out models/clip-vit-l14
"""
import argparse
import json
import os
import shutil
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import evalmodel as em  # noqa: E402

TOKENIZER_FILES = ["vocab.json", "merges.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"]
PREPROCESSING = (
    "CLIP: Resize(S) on the short edge (bicubic), CenterCrop(S), OpenAI mean (0.48145466, 0.4578275, 0.40821073) "
    "and std (0.26862954, 0.26130258, 0.27577711); text: CLIP BPE, <|startoftext|> ... <|endoftext|>, length L"
)


class Tower(torch.nn.Module):
    """One tower of a CLIP model as a module with one input (its parameters registered through `owner`)."""

    def __init__(self, owner, fn):
        super().__init__()
        self.owner = owner if isinstance(owner, torch.nn.Module) else None
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


def load(a):
    """(owner, encode_image, encode_text, image_size, context_length, tokenizer_dir, source_file, checkpoint name)."""
    given = [x for x in (a.hf, a.open_clip, a.module) if x is not None]
    if len(given) != 1:
        em.fail("give exactly one of --hf DIR, --open-clip MODEL (with --pretrained FILE), --module FILE.py:FACTORY")
    if a.hf is not None:
        if not os.path.isdir(a.hf):
            em.fail(f"--hf: {a.hf} is not a folder")
        try:
            from transformers import CLIPModel
        except ImportError:
            em.fail("--hf needs the transformers package (pip install transformers)")
        m = CLIPModel.from_pretrained(a.hf).eval()
        weights = next((os.path.join(a.hf, f) for f in ("model.safetensors", "pytorch_model.bin") if os.path.isfile(os.path.join(a.hf, f))), None)
        if weights is None:
            em.fail(f"--hf: {a.hf} has no model.safetensors or pytorch_model.bin")
        name = a.checkpoint or m.config._name_or_path or os.path.basename(os.path.normpath(a.hf))
        return (m, lambda px: m.get_image_features(pixel_values=px), lambda ids: m.get_text_features(input_ids=ids),
                m.config.vision_config.image_size, m.config.text_config.max_position_embeddings, a.tokenizer or a.hf, weights, name)
    if a.open_clip is not None:
        if a.pretrained is None or not os.path.isfile(a.pretrained):
            em.fail(f"--pretrained: --open-clip needs the local checkpoint file, got {a.pretrained}")
        if a.tokenizer is None:
            em.fail("--tokenizer: --open-clip needs an OpenAI-CLIP tokenizer folder (vocab.json + merges.txt)")
        try:
            import open_clip
        except ImportError:
            em.fail("--open-clip needs the open_clip_torch package (pip install open_clip_torch)")
        m, _, _ = open_clip.create_model_and_transforms(a.open_clip, pretrained=a.pretrained)
        m.eval()
        size = m.visual.image_size
        size = size[0] if isinstance(size, (tuple, list)) else size
        name = a.checkpoint or f"{a.open_clip}/{os.path.basename(a.pretrained)}"
        return (m, m.encode_image, m.encode_text, size, m.context_length, a.tokenizer, a.pretrained, name)
    obj, file = em.load_factory(a.module)
    if a.tokenizer is None:
        em.fail("--tokenizer: --module needs a CLIP tokenizer folder (vocab.json + merges.txt)")
    if isinstance(obj, torch.nn.Module):
        obj.eval()
    return (obj, obj.encode_image, obj.encode_text, int(obj.image_size), int(obj.context_length), a.tokenizer, a.source or file, a.checkpoint or os.path.basename(file))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hf")
    ap.add_argument("--open-clip", dest="open_clip")
    ap.add_argument("--pretrained")
    ap.add_argument("--module")
    ap.add_argument("--tokenizer", help="tokenizer folder (vocab.json + merges.txt or tokenizer.json); default the --hf folder")
    ap.add_argument("--source", help="the checkpoint file whose sha256 is recorded (--module: default the module file)")
    ap.add_argument("--checkpoint", help="checkpoint name recorded in the manifests")
    ap.add_argument("--out", required=True, help="output folder (vision_model.onnx, text_model.onnx, tokenizer/, manifests)")
    em.add_check_args(ap)
    a = ap.parse_args()
    owner, enc_image, enc_text, size, ctx, tok_dir, source, name = load(a)
    vocab_file = os.path.join(tok_dir, "vocab.json")
    if not os.path.isfile(vocab_file):
        em.fail(f"--tokenizer: {tok_dir} has no vocab.json")
    with open(vocab_file) as f:
        vocab = json.load(f)
    if "<|startoftext|>" not in vocab or "<|endoftext|>" not in vocab:
        em.fail(f"--tokenizer: {vocab_file} has no <|startoftext|> / <|endoftext|> tokens")
    sot, eot = vocab["<|startoftext|>"], vocab["<|endoftext|>"]
    os.makedirs(os.path.join(a.out, "tokenizer"), exist_ok=True)
    for f in TOKENIZER_FILES:
        if os.path.isfile(os.path.join(tok_dir, f)):
            shutil.copyfile(os.path.join(tok_dir, f), os.path.join(a.out, "tokenizer", f))
    g = em.generator(a.seed)
    # vision
    vpath = os.path.join(a.out, "vision_model.onnx")
    vision = Tower(owner, enc_image)
    em.export(vision, (torch.randn(2, 3, size, size, generator=g),), vpath, ["pixel_values"], ["image_embeds"], {"pixel_values": {0: "B"}, "image_embeds": {0: "B"}}, a.opset)
    vcases = [{"pixel_values": torch.randn(b, 3, size, size, generator=g).numpy()} for b in (1, 3)]
    vchk = em.check(lambda pixel_values: enc_image(pixel_values), vpath, vcases, "image_embeds", a.rtol)
    with torch.no_grad():
        dim = int(enc_image(torch.from_numpy(vcases[0]["pixel_values"])).shape[-1])

    # text: <|startoftext|>, random ordinary tokens, <|endoftext|>, padded with <|endoftext|>
    def ids(batch):
        rows = torch.full((batch, ctx), eot, dtype=torch.int64)
        hi = min(sot, eot)
        for r in range(batch):
            n = int(torch.randint(1, ctx - 1, (1,), generator=g))
            rows[r, 0] = sot
            rows[r, 1 : n + 1] = torch.randint(0, hi, (n,), generator=g)
        return rows

    tpath = os.path.join(a.out, "text_model.onnx")
    text = Tower(owner, enc_text)
    em.export(text, (ids(2),), tpath, ["input_ids"], ["text_embeds"], {"input_ids": {0: "B"}, "text_embeds": {0: "B"}}, a.opset)
    tcases = [{"input_ids": ids(b).numpy()} for b in (1, 3)]
    tchk = em.check(lambda input_ids: enc_text(input_ids), tpath, tcases, "text_embeds", a.rtol)
    extra = {"imageSize": size, "contextLength": ctx, "dim": dim}
    em.write_manifest(vpath, "clip-vision", name, source, PREPROCESSING, vchk, a.opset, extra)
    em.write_manifest(tpath, "clip-text", name, source, PREPROCESSING, tchk, a.opset, extra)


if __name__ == "__main__":
    main()
