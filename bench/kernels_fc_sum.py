#!/usr/bin/env python3
"""Sum of the fully-connected (Gemm) layers' batch-1 latency, dense vs compressed, from
`deepshrink bench --json`, repeated. Used for bench/kernels.md.

Usage (from the repository root, after `cargo build --release -p deepshrink`):
    python3 bench/kernels_fc_sum.py MODEL.dsk [REPEATS=5] [RUNS=500] [DATA_DIR]

With DATA_DIR (e.g. data/mnist) the runs use real test images (`bench --data`).
"""
import json
import statistics
import subprocess
import sys

model = sys.argv[1]
reps = int(sys.argv[2]) if len(sys.argv) > 2 else 5
runs = sys.argv[3] if len(sys.argv) > 3 else "500"
data = ["--data", sys.argv[4]] if len(sys.argv) > 4 else []
ratios = []
for i in range(reps):
    out = subprocess.run(
        ["./target/release/deepshrink", "bench", model, "--batch", "1", "--runs", runs, "--json", *data],
        capture_output=True, text=True, check=True,
    ).stdout
    fc = [n for n in json.loads(out)["nodes"] if n["op"] == "Gemm"]
    dense = sum(n["dense_us"] for n in fc)
    comp = sum(n["compressed_us"] for n in fc)
    ratios.append(dense / comp)
    layers = ", ".join(f"{n['node']} {n['dense_us']:.1f}/{n['compressed_us']:.1f}" for n in fc)
    print(f"repeat {i}: FC dense {dense:.1f} us, compressed {comp:.1f} us, {dense / comp:.2f}x  ({layers})")
print(f"median FC ratio over {reps} repeats: {statistics.median(ratios):.2f}x")
