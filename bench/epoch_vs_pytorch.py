#!/usr/bin/env python3
"""Training speed of deepshrink against PyTorch on CPU, measured in one run.

    cargo build --release -p deepshrink
    python3 bench/epoch_vs_pytorch.py [--models lenet-300-100,lenet-5] [--repeats 5]

For every repeat and model, runs one MNIST training epoch (batch 128, Adam lr 1e-3, both cores)
with `deepshrink train` and with bench/pytorch_epoch.py (torch.set_num_threads(2)), one after the
other, so both see the same machine load. Each tool times only its training loop, with the data
already decoded in memory. Reports the median epoch time of each and their ratio
(deepshrink / PyTorch; below 1.0 means deepshrink is faster), and writes
bench/results/epoch_vs_pytorch.{json,md}.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def ours(model, seed, data):
    exe = os.path.join(ROOT, "target", "release", "deepshrink")
    out = subprocess.run(
        [exe, "train", "--model", model, "--data", data, "--epochs", "1", "--seed", str(seed),
         "--schedule", "constant", "--no-epoch-eval", "--json"],
        check=True, capture_output=True, text=True).stdout
    r = json.loads(out)
    return r["epochs"][0]["seconds"], r["test"]["top1"]


def pytorch(model, data):
    out = subprocess.run(
        [sys.executable, os.path.join(ROOT, "bench", "pytorch_epoch.py"), "--models", model,
         "--repeats", "1", "--epochs", "1", "--data", data],
        check=True, capture_output=True, text=True).stdout
    r = json.loads(out.strip().splitlines()[-1])
    return r["median"], r["test_accuracy"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="lenet-300-100,lenet-5")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--data", default=os.path.join(ROOT, "data", "mnist"))
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results"))
    args = ap.parse_args()
    models = args.models.split(",")
    times = {m: {"deepshrink": [], "pytorch": []} for m in models}
    acc = {m: {} for m in models}
    load = [os.getloadavg()[0]]
    for r in range(args.repeats):
        for m in models:
            t, a = ours(m, r, args.data)
            times[m]["deepshrink"].append(t)
            acc[m]["deepshrink"] = a
            t, a = pytorch(m, args.data)
            times[m]["pytorch"].append(t)
            acc[m]["pytorch"] = a
            print(f"repeat {r + 1}/{args.repeats} {m}: deepshrink {times[m]['deepshrink'][-1]:.2f} s, "
                  f"pytorch {times[m]['pytorch'][-1]:.2f} s", file=sys.stderr)
        load.append(os.getloadavg()[0])
    import torch
    rows = []
    for m in models:
        ds = statistics.median(times[m]["deepshrink"])
        pt = statistics.median(times[m]["pytorch"])
        rows.append({"model": m, "deepshrink_median_s": ds, "pytorch_median_s": pt, "ratio": ds / pt,
                     "deepshrink_s": times[m]["deepshrink"], "pytorch_s": times[m]["pytorch"],
                     "test_top1_after_one_epoch": acc[m]})
    result = {
        "command": "python3 bench/epoch_vs_pytorch.py " + " ".join(sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "load_average_1min": load,
        "repeats": args.repeats,
        "rows": rows,
    }
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "epoch_vs_pytorch.json"), "w") as f:
        json.dump(result, f, indent=2)
    md = ["| model | deepshrink median (s) | PyTorch median (s) | ratio (lower is better) |",
          "|---|---:|---:|---:|"]
    for r in rows:
        md.append(f"| {r['model']} | {r['deepshrink_median_s']:.2f} | {r['pytorch_median_s']:.2f} | {r['ratio']:.2f} |")
    text = "\n".join(md)
    with open(os.path.join(args.out, "epoch_vs_pytorch.md"), "w") as f:
        f.write(f"One MNIST training epoch, batch 128, Adam, 2 threads, median of {args.repeats} "
                f"interleaved runs ({result['date']}, torch {result['torch']}, 1-min load average "
                f"{min(load):.1f}-{max(load):.1f}).\n\nCommand: `{result['command']}`\n\n{text}\n")
    print(text)


if __name__ == "__main__":
    main()
