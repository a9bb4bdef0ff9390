#!/usr/bin/env python3
"""Convert pytorch-fid's FID Inception-v3 to ONNX for memscope (`--inception FILE`: the FID column).

Sources (one of):
  --pytorch-fid WEIGHTS         pytorch-fid's InceptionV3 (the TF-ported FID network) with its local
                                weights file pt_inception-2015-12-05-6726825d.pth (nothing is downloaded)
  --module FILE.py:FACTORY      any module mapping [B, 3, 299, 299] in [-1, 1] to pool features
                                [B, D] or [B, D, 1, 1] (your own loader, or a stand-in)

The export has pytorch-fid's resize and normalisation left out (resize_input=False,
normalize_input=False): memscope resizes to 299 x 299 bilinearly and maps to [-1, 1] itself
(`--inception-convention pytorch-fid`, the default). Writes OUT (x [B, 3, 299, 299] -> pool3 [B, D])
and its manifest, after checking against torch with onnxruntime-node on seeded random inputs.

    python3 scripts/convert/inception_to_onnx.py --pytorch-fid pt_inception-2015-12-05-6726825d.pth --out models/pt_inception.onnx
"""
import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import evalmodel as em  # noqa: E402

PREPROCESSING = "pytorch-fid: 299 x 299 bilinear (align_corners=False, no antialias), [0, 1] -> [-1, 1] (2y - 1); pool3 features"


class PoolFeatures(torch.nn.Module):
    """pytorch-fid's InceptionV3 returns a list of feature maps; keep the 2048-d pool3 one as [B, D]."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        y = self.inner(x)
        y = y[0] if isinstance(y, (list, tuple)) else y
        return y.reshape(y.shape[0], -1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pytorch-fid", dest="pytorch_fid", help="pytorch-fid's FID weights file (pt_inception-2015-12-05-6726825d.pth)")
    ap.add_argument("--module", help="FILE.py:FACTORY returning the feature module")
    ap.add_argument("--source", help="the checkpoint file whose sha256 is recorded (--module: default the module file)")
    ap.add_argument("--checkpoint", help="checkpoint name recorded in the manifest")
    ap.add_argument("--out", required=True, help="the ONNX file to write (NAME.onnx; the manifest goes to NAME.manifest.json)")
    em.add_check_args(ap)
    a = ap.parse_args()
    if (a.pytorch_fid is None) == (a.module is None):
        em.fail("give exactly one of --pytorch-fid WEIGHTS, --module FILE.py:FACTORY")
    if not a.out.endswith(".onnx"):
        em.fail(f"--out: {a.out} must end in .onnx")
    if a.pytorch_fid is not None:
        if not os.path.isfile(a.pytorch_fid):
            em.fail(f"--pytorch-fid: {a.pytorch_fid} does not exist")
        try:
            import pytorch_fid.inception as pfi
        except ImportError:
            em.fail("--pytorch-fid needs the pytorch-fid package (pip install pytorch-fid)")
        state = torch.load(a.pytorch_fid, map_location="cpu")
        pfi.load_state_dict_from_url = lambda *args, **kw: state  # the local file instead of the download
        inner = pfi.InceptionV3([pfi.InceptionV3.BLOCK_INDEX_BY_DIM[2048]], resize_input=False, normalize_input=False)
        source, name = a.pytorch_fid, a.checkpoint or "pt_inception-2015-12-05"
    else:
        inner, file = em.load_factory(a.module)
        source, name = a.source or file, a.checkpoint or os.path.basename(file)
    model = PoolFeatures(inner).eval()
    g = em.generator(a.seed)
    em.export(model, (torch.rand(2, 3, 299, 299, generator=g) * 2 - 1,), a.out, ["x"], ["pool3"], {"x": {0: "B"}, "pool3": {0: "B"}}, a.opset)
    cases = [{"x": (torch.rand(b, 3, 299, 299, generator=g) * 2 - 1).numpy()} for b in (1, 3)]
    chk = em.check(lambda x: model(x), a.out, cases, "pool3", a.rtol)
    with torch.no_grad():
        dim = int(model(torch.from_numpy(cases[0]["x"])).shape[-1])
    em.write_manifest(a.out, "inception", name, source, PREPROCESSING, chk, a.opset, {"dim": dim, "convention": "pytorch-fid"})


if __name__ == "__main__":
    main()
