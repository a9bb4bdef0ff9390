#!/usr/bin/python3
"""Write test/fixtures/torch_randn.json: reference draws of torch.randn on CPU.

The fixture pins src/random/torch.ts (TorchGenerator) to PyTorch's own CPU generator:
`torch.Generator('cpu').manual_seed(seed)` followed by `torch.randn(dims, generator=g)`
(float32). Run it with the interpreter that has torch installed (on the project machine this
is the Debian package under /usr/bin/python3, not the `python3` on PATH):

    /usr/bin/python3 scripts/reference/torch_randn.py            # writes the fixture
    /usr/bin/python3 scripts/reference/torch_randn.py --out PATH # somewhere else

Values are float32 printed with 9 significant digits (which round-trips float32 exactly).
For the large [1, 4, 64, 64] shape only the first 64 and last 64 values and the float64 sum
and sum of squares are stored, to keep the file small.

torch compiles its CPU kernels once per capability and picks one at start-up; for numel >= 16
the AVX2 and the portable ("default", NO AVX) builds of normal_fill differ in the last bits.
The script therefore runs itself twice in subprocesses, with ATEN_CPU_CAPABILITY=avx2 (the full
fixture) and ATEN_CPU_CAPABILITY=default (a small subset under "defaultCapability"), and checks
that torch reports the capability it was asked for. It needs an x86-64 CPU with AVX2.
"""
import argparse
import json
import os
import subprocess
import sys

import torch

SEEDS = [0, 1, 42, 1234, 2**32 + 5, 2**63 - 1]
FULL_SHAPES = [[1], [3], [15], [16], [17], [31], [100], [4, 4, 8], [2, 1, 28, 28]]
SUMMARY_SHAPES = [[1, 4, 64, 64]]
HEAD_TAIL = 64
# Consecutive calls on one generator: exercises the cached second Box-Muller value of the
# scalar (double) path across calls, and the vectorised path in between.
SEQUENCES = [
    {"seed": 0, "shapes": [[5], [20], [3], [40]]},
    {"seed": 42, "shapes": [[5], [20], [3], [40]]},
    {"seed": 7, "shapes": [[1], [1], [1], [16], [2, 3], [15], [33], [1]]},
    {"seed": 1234, "shapes": [[2, 3], [20]]},
]
# Seeds whose streams should coincide (torch seeds mt19937 with the low 32 bits only).
ALIASES = [(2**32 + 5, 5), (2**64 - 1, 2**32 - 1), (-1, 2**32 - 1)]
RAW_SEEDS = [0, 5, 2**32 + 5]
RAW_COUNT = 1300  # more than the 624-word mt19937 state, so the twist runs twice
# Subset recorded again under ATEN_CPU_CAPABILITY=default.
DEFAULT_CAP_SEEDS = [0, 42]
DEFAULT_CAP_SHAPES = [[16], [17], [100], [4, 4, 8], [1, 4, 64, 64]]
EXPECTED_CAPABILITY = {"avx2": "AVX2", "default": "NO AVX"}


def fmt(values):
    return [float(format(float(v), ".9g")) for v in values]


def gen(seed):
    return torch.Generator("cpu").manual_seed(seed)


def randn(shape, g):
    return torch.randn(shape, generator=g, dtype=torch.float32)


def capability():
    for ln in torch.__config__.show().splitlines():
        if "CPU capability usage" in ln:
            return ln.split(":", 1)[1].strip()
    return "unknown"


def case(seed, shape):
    t = randn(shape, gen(seed)).flatten()
    if shape in SUMMARY_SHAPES:
        d = t.double()
        return {
            "seed": str(seed),
            "shape": shape,
            "head": fmt(t[:HEAD_TAIL].tolist()),
            "tail": fmt(t[-HEAD_TAIL:].tolist()),
            "sum": float(d.sum()),
            "sumSq": float((d * d).sum()),
        }
    return {"seed": str(seed), "shape": shape, "values": fmt(t.tolist())}


def run_child(cap):
    """Run this script with ATEN_CPU_CAPABILITY=cap and return the JSON it prints."""
    env = dict(os.environ, ATEN_CPU_CAPABILITY=cap)
    res = subprocess.run([sys.executable, os.path.abspath(__file__), "--emit", cap],
                         env=env, check=True, stdout=subprocess.PIPE)
    block = json.loads(res.stdout)
    if block["cpuCapability"] != EXPECTED_CAPABILITY[cap]:
        sys.exit(f"asked torch for ATEN_CPU_CAPABILITY={cap} but it reports {block['cpuCapability']!r}"
                 " (this script needs an x86-64 CPU with AVX2)")
    return block


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    here = os.path.dirname(os.path.abspath(__file__))
    default_out = os.path.normpath(os.path.join(here, "..", "..", "test", "fixtures", "torch_randn.json"))
    ap.add_argument("--out", default=default_out)
    ap.add_argument("--emit", choices=sorted(EXPECTED_CAPABILITY), help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.emit is None:
        full = run_child("avx2")
        default = run_child("default")
        full["defaultCapability"] = {"cpuCapability": default["cpuCapability"],
                                     "cases": default["cases"], "sequences": default["sequences"][:1]}
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as f:
            json.dump(full, f, separators=(",", ":"))
            f.write("\n")
        print(f"wrote {args.out} ({os.path.getsize(args.out)} bytes, torch {torch.__version__})", file=sys.stderr)
        return

    torch.set_num_threads(1)
    if args.emit == "avx2":
        cases = [case(seed, shape) for seed in SEEDS for shape in FULL_SHAPES + SUMMARY_SHAPES]
    else:
        cases = [case(seed, shape) for seed in DEFAULT_CAP_SEEDS for shape in DEFAULT_CAP_SHAPES]

    sequences = []
    for sq in SEQUENCES:
        g = gen(sq["seed"])
        outs = [fmt(randn(s, g).flatten().tolist()) for s in sq["shapes"]]
        sequences.append({"seed": str(sq["seed"]), "shapes": sq["shapes"], "values": outs})

    aliases = []
    for a, b in ALIASES:
        same = all(torch.equal(randn(s, gen(a)), randn(s, gen(b))) for s in ([3], [17], [1000]))
        aliases.append({"seed": str(a), "sameStreamAs": str(b), "same": bool(same),
                        "initialSeed": str(gen(a).initial_seed())})

    # Low 31 bits of consecutive raw mt19937 words: randint with a range below 2**32 draws one
    # 32-bit word per element and reduces it modulo the range.
    raw = []
    for seed in RAW_SEEDS:
        r = torch.randint(0, 2**31, (RAW_COUNT,), generator=gen(seed), dtype=torch.int64)
        raw.append({"seed": str(seed), "low31": r.tolist()})

    json.dump({
        "generatedBy": "scripts/reference/torch_randn.py",
        "torch": torch.__version__,
        "cpuCapability": capability(),
        "cases": cases,
        "sequences": sequences,
        "aliases": aliases,
        "raw": raw,
    }, sys.stdout, separators=(",", ":"))


if __name__ == "__main__":
    main()
