#!/usr/bin/env python3
"""Convert an official SSCD TorchScript checkpoint to ONNX for memscope (`--descriptor sscd:FILE`).

facebookresearch/sscd-copy-detection ships TorchScript only: sscd_disc_mixup (NeMo, the SSCD README's
recommendation), sscd_disc_large (Wen et al.; it is also DCR's `--arch resnet50_disc`, which loads
sscd_disc_large.torchscript.pt), sscd_disc_blur, sscd_imagenet_*. The ONNX model takes float
[B, 3, H, W] (any H, W: SSCD pools globally) named `input` and returns the descriptor [B, D] named
`descriptor`. The script checks the ONNX output against the TorchScript model with onnxruntime-node on
seeded random inputs at the sizes the protocols use (224: Wen / DCR, 288: the README, 320: NeMo)
and writes NAME.manifest.json beside NAME.onnx.

    python3 scripts/convert/sscd_to_onnx.py --torchscript sscd_disc_large.torchscript.pt --out models/sscd_disc_large.onnx
"""
import argparse
import os
import re
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import evalmodel as em  # noqa: E402

PREPROCESSING = {
    "sscd_disc_mixup": "SSCD README: Resize(288) on the short edge, ToTensor, ImageNet mean/std; NeMo (--protocol nemo): Resize([320, 320]), ImageNet mean/std",
    "sscd_disc_large": "SSCD README: Resize(288) on the short edge, ToTensor, ImageNet mean/std; Wen et al. and DCR (--protocol wen|somepalli): Resize(256), CenterCrop(224), Normalize(0.5, 0.5)",
}
DEFAULT_PREPROCESSING = "SSCD README: Resize(288) on the short edge, ToTensor, ImageNet mean/std"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--torchscript", required=True, help="the SSCD TorchScript file (e.g. sscd_disc_large.torchscript.pt)")
    ap.add_argument("--out", required=True, help="the ONNX file to write (NAME.onnx; the manifest goes to NAME.manifest.json)")
    ap.add_argument("--checkpoint", help="checkpoint name recorded in the manifest (default: the file name before .torchscript, e.g. sscd_disc_large)")
    ap.add_argument("--sizes", default="224,288,320", help="square input sizes of the check (default 224,288,320)")
    em.add_check_args(ap)
    a = ap.parse_args()
    if not os.path.isfile(a.torchscript):
        em.fail(f"--torchscript: {a.torchscript} does not exist")
    if not a.out.endswith(".onnx"):
        em.fail(f"--out: {a.out} must end in .onnx")
    try:
        sizes = [int(s) for s in a.sizes.split(",")]
        assert all(s > 0 for s in sizes)
    except (ValueError, AssertionError):
        em.fail(f"--sizes: expected positive integers separated by commas, got '{a.sizes}'")
    name = a.checkpoint or re.sub(r"\.torchscript(\.pt)?$|\.pt$", "", os.path.basename(a.torchscript))
    try:
        model = torch.jit.load(a.torchscript, map_location="cpu").eval()
    except Exception as e:  # noqa: BLE001 - any load failure is the user's file
        em.fail(f"--torchscript: {a.torchscript} is not a TorchScript file: {e}")
    g = em.generator(a.seed)
    em.export(model, (torch.randn(2, 3, sizes[0], sizes[0], generator=g),), a.out, ["input"], ["descriptor"], {"input": {0: "B", 2: "H", 3: "W"}, "descriptor": {0: "B"}}, a.opset)
    cases = [{"input": torch.randn(2, 3, s, s, generator=g).numpy()} for s in sizes]
    chk = em.check(lambda input: model(input), a.out, cases, "descriptor", a.rtol)
    with torch.no_grad():
        dim = int(model(torch.from_numpy(cases[0]["input"])).shape[-1])
    em.write_manifest(a.out, "sscd", name, a.torchscript, PREPROCESSING.get(name, DEFAULT_PREPROCESSING), chk, a.opset, {"dim": dim, "checkSizes": sizes})


if __name__ == "__main__":
    main()
