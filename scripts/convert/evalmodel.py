"""Shared parts of memscope's evaluation-model conversion scripts (issue 20 section 1).

Each script loads an official checkpoint with PyTorch, exports it to ONNX, runs the ONNX file with
onnxruntime-node (the runtime memscope itself uses, through check_onnx.mjs) on seeded random inputs,
compares the outputs with the torch model's, and writes a manifest beside the ONNX file
(`NAME.onnx` -> `NAME.manifest.json`, format memscope-eval-model/1) with the source checkpoint and its
sha256, the preprocessing the model expects and the measured max |ONNX - torch|. memscope reads the
manifest when it loads the model and records it in every result. Nothing is downloaded.
"""
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import torch

FORMAT = "memscope-eval-model/1"
HERE = os.path.dirname(os.path.abspath(__file__))


def fail(msg):
    """Exit 2 with a message naming what is wrong (bad flags, missing files, a failed check)."""
    print(f"{os.path.basename(sys.argv[0])}: {msg}", file=sys.stderr)
    sys.exit(2)


def sha256(path):
    """The sha256 of a file, hex."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def manifest_path(onnx_path):
    """`model.onnx` -> `model.manifest.json` (as memscope's manifestPathOf)."""
    return onnx_path[: -len(".onnx")] + ".manifest.json" if onnx_path.endswith(".onnx") else onnx_path + ".manifest.json"


def export(module, args, path, input_names, output_names, dynamic_axes, opset):
    """torch.onnx.export into `path` (parent folders made); the model in eval mode, no gradients."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    module.eval()
    with torch.no_grad():
        torch.onnx.export(
            module,
            args,
            path,
            input_names=input_names,
            output_names=output_names,
            dynamic_axes=dynamic_axes,
            opset_version=opset,
            do_constant_folding=True,
        )


def run_onnx(path, feeds):
    """Run the ONNX file with onnxruntime-node on `feeds` ({name: np.ndarray}); returns ({name: np.ndarray}, runtime)."""
    node = os.environ.get("MEMSCOPE_NODE") or shutil.which("node")
    if node is None:
        fail("node is not on PATH (set MEMSCOPE_NODE): the check runs the ONNX file with onnxruntime-node, as memscope does")
    with tempfile.TemporaryDirectory(prefix="memscope-convert-") as d:
        inputs = []
        for i, (name, a) in enumerate(feeds.items()):
            a = np.ascontiguousarray(a)
            f = os.path.join(d, f"in-{i}.bin")
            a.tofile(f)
            inputs.append({"name": name, "dtype": str(a.dtype), "dims": list(a.shape), "file": f})
        req = os.path.join(d, "request.json")
        with open(req, "w") as f:
            json.dump({"model": os.path.abspath(path), "outDir": d, "inputs": inputs}, f)
        r = subprocess.run([node, os.path.join(HERE, "check_onnx.mjs"), req], capture_output=True, text=True)
        if r.returncode != 0:
            fail(f"onnxruntime-node could not run {path}: {r.stderr.strip()}")
        with open(os.path.join(d, "outputs.json")) as f:
            res = json.load(f)
        outs = {o["name"]: np.fromfile(o["file"], dtype=np.float32).reshape(o["dims"]) for o in res["outputs"]}
        return outs, res["runtime"]


def check(torch_fn, path, cases, output, rtol):
    """Max |ONNX - torch| of output `output` over `cases` (list of feed dicts); tolerance rtol * max(1, max|torch|)."""
    worst = 0.0
    scale = 1.0
    runtime = ""
    for feeds in cases:
        with torch.no_grad():
            want = torch_fn(**{k: torch.from_numpy(v) for k, v in feeds.items()}).detach().float().numpy()
        got, runtime = run_onnx(path, feeds)
        if output not in got:
            fail(f"{path} has no float output '{output}' (outputs: {', '.join(got)})")
        g = got[output].reshape(want.shape)
        worst = max(worst, float(np.max(np.abs(g - want))))
        scale = max(scale, float(np.max(np.abs(want))))
    return {"inputs": len(cases), "maxAbsDiff": worst, "tolerance": rtol * scale, "runtime": runtime}


def write_manifest(onnx_path, kind, checkpoint, source_file, preprocessing, chk, opset, extra):
    """Write the manifest beside `onnx_path`; refuses (exit 2, the ONNX file removed) when the check failed."""
    if not chk["maxAbsDiff"] <= chk["tolerance"]:
        os.remove(onnx_path)
        fail(
            f"the ONNX export differs from the torch model by {chk['maxAbsDiff']:.3g} > {chk['tolerance']:.3g} "
            f"on {chk['inputs']} random inputs; {onnx_path} removed, no manifest written"
        )
    m = {
        "format": FORMAT,
        "kind": kind,
        "checkpoint": checkpoint,
        "source": {"file": os.path.basename(source_file), "sha256": sha256(source_file)},
        "preprocessing": preprocessing,
        "check": chk,
        "exporter": {"script": "scripts/convert/" + os.path.basename(sys.argv[0]), "torch": torch.__version__, "opset": opset},
        "extra": extra,
    }
    with open(manifest_path(onnx_path), "w") as f:
        json.dump(m, f, indent=2)
    print(f"{onnx_path}: max |ONNX - torch| = {chk['maxAbsDiff']:.3g} on {chk['inputs']} random inputs ({chk['runtime']}); manifest {manifest_path(onnx_path)}")
    return m


def load_factory(spec):
    """`FILE.py:NAME` -> the object NAME() of that file (a stand-in or a model built by the user's own code)."""
    if ":" not in spec:
        fail(f"--module: expected FILE.py:FACTORY, got '{spec}'")
    file, name = spec.rsplit(":", 1)
    if not os.path.isfile(file):
        fail(f"--module: {file} does not exist")
    import importlib.util

    s = importlib.util.spec_from_file_location("memscope_convert_module", file)
    mod = importlib.util.module_from_spec(s)
    s.loader.exec_module(mod)
    if not hasattr(mod, name):
        fail(f"--module: {file} has no '{name}'")
    return getattr(mod, name)(), file


def add_check_args(ap):
    """The flags every conversion script shares: ONNX opset, seed and tolerance of the check."""
    ap.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the random check inputs (default 0)")
    ap.add_argument("--rtol", type=float, default=1e-4, help="check tolerance relative to max(1, max|torch output|) (default 1e-4)")


def generator(seed):
    """A seeded torch generator for the random check inputs."""
    g = torch.Generator()
    g.manual_seed(seed)
    return g
