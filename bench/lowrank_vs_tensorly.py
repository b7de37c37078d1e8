"""Tucker-2 and CP decomposition quality and time: deepshrink vs tensorly, same kernels, same ranks,
one run.

For every 3x3 convolution kernel of an ONNX model (default: the VGG-small baseline of
bench/results/low-rank/) this runs tensorly's `partial_tucker` (modes 0 and 1, SVD init, 100 HOOI
rounds, tol 1e-4) and `parafac` (SVD init, 100 sweeps, tol 1e-8) and deepshrink's own
(crates/compress/examples/decompose.rs, the same settings) at equal ranks, interleaved, and
prints relative reconstruction errors, median times and their ratios as Markdown (and JSON with
--json).

    cargo build --release -p deepshrink-compress --example decompose
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python3 bench/lowrank_vs_tensorly.py --repeats 5

(the two OpenBLAS variables are unset together so that NumPy runs its fastest kernels here).
Needs numpy, onnx, tensorly (`pip install tensorly`).
"""
import argparse
import json
import os
import subprocess
import tempfile
import time

import numpy as np
import onnx
import tensorly as tl
from onnx import numpy_helper
from tensorly.decomposition import parafac, partial_tucker

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def ranks_for(shape, ratio=3.0):
    """Ranks for `ratio`x fewer MACs per output pixel, as the recipes' rule (stride 1, same size)."""
    s, c, kh, kw = shape
    full = s * c * kh * kw
    best = None
    for f in range(1, 101):
        ro, ri = max(1, -(-f * s // 100)), max(1, -(-f * c // 100))
        if c * ri + ri * ro * kh * kw + ro * s <= full / ratio:
            best = (ro, ri)
    r = max(x for x in range(1, full) if x * (c + kh + kw + s) <= full / ratio)
    return best, r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=os.path.join(ROOT, "bench/results/low-rank/vgg-small.onnx"))
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    exe = os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "release/examples/decompose")
    m = onnx.load(args.model)
    kernels = {t.name: numpy_helper.to_array(t).astype(np.float64) for t in m.graph.initializer}
    cases = []
    for name, k in sorted(kernels.items()):
        if k.ndim != 4 or k.shape[2] * k.shape[3] == 1 or k.shape[1] == 1:
            continue
        (ro, ri), r = ranks_for(k.shape)
        cases.append({"name": name, "shape": list(k.shape), "kernel": k.ravel().tolist(), "method": "tucker2", "ranks": [ro, ri]})
        cases.append({"name": name, "shape": list(k.shape), "kernel": k.ravel().tolist(), "method": "cp", "ranks": [r]})
    rows = []
    for case in cases:
        k = np.array(case["kernel"]).reshape(case["shape"])
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump({"repeats": args.repeats, "cases": [case]}, f)
        ours_t, ref_t = [], []
        for _ in range(args.repeats):
            # Interleaved: one of ours (a process timing `repeats` decompositions inside), one of theirs.
            ours = json.loads(subprocess.check_output([exe, f.name]))["results"][0]
            ours_t.append(ours["median_seconds"])
            start = time.perf_counter()
            if case["method"] == "tucker2":
                (core, factors), _ = partial_tucker(k, rank=case["ranks"], modes=[0, 1], init="svd", n_iter_max=100, tol=1e-4)
                rec = tl.tenalg.multi_mode_dot(core, factors, modes=[0, 1])
            else:
                cp = parafac(k, case["ranks"][0], init="svd", n_iter_max=100, tol=1e-8, random_state=0)
                rec = tl.cp_to_tensor(cp)
            ref_t.append(time.perf_counter() - start)
        os.unlink(f.name)
        ref_err = float(np.linalg.norm(k - rec) / np.linalg.norm(k))
        rows.append({
            "kernel": case["name"], "shape": case["shape"], "method": case["method"], "ranks": case["ranks"],
            "error_ours": ours["error"], "error_tensorly": ref_err, "error_ratio": ours["error"] / ref_err,
            "seconds_ours": float(np.median(ours_t)), "seconds_tensorly": float(np.median(ref_t)),
            "time_ratio": float(np.median(ours_t) / np.median(ref_t)),
        })
    print(f"tensorly {tl.__version__}, numpy {np.__version__}, medians of {args.repeats}\n")
    print("| kernel | shape | method | ranks | rel. error ours | tensorly | ratio | ms ours | ms tensorly | time ours/tensorly |")
    print("|---|---|---|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['kernel']} | {'x'.join(map(str, r['shape']))} | {r['method']} | {r['ranks']} | {r['error_ours']:.4f} | "
              f"{r['error_tensorly']:.4f} | {r['error_ratio']:.4f} | {1e3 * r['seconds_ours']:.1f} | "
              f"{1e3 * r['seconds_tensorly']:.1f} | {r['time_ratio']:.2f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"tensorly": tl.__version__, "numpy": np.__version__, "repeats": args.repeats, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
