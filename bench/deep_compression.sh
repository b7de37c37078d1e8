#!/usr/bin/env bash
# Reproduces bench/results/deep-compression/: trains the two baselines, runs the Deep Compression
# recipes, evaluates the containers with the compressed runtime and times them at batch 1.
# Usage: bench/deep_compression.sh [--skip-train]   (about 20 minutes on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p deepshrink
ds=target/release/deepshrink
out=bench/results/deep-compression
mkdir -p "$out"
if [ "${1:-}" != "--skip-train" ]; then
  $ds train --model lenet-300-100 --epochs 30 --seed 1 --no-epoch-eval --json --out "$out/lenet-300-100.onnx" > "$out/lenet-300-100.train.json"
  $ds train --model lenet-5 --epochs 15 --seed 1 --no-epoch-eval --json --out "$out/lenet-5.onnx" > "$out/lenet-5.train.json"
fi
for net in lenet-300-100 lenet-5; do
  recipe=recipes/deep-compression.toml
  [ "$net" = lenet-5 ] && recipe=recipes/deep-compression-lenet5.toml
  $ds compress "$out/$net.onnx" --recipe "$recipe" --seed 0 --out "$out/$net.dsk" --report "$out/$net.report.json" > "$out/$net.md"
  $ds eval "$out/$net.dsk" --json > "$out/$net.eval.json"
  $ds eval "$out/$net.onnx" --json > "$out/$net.baseline-eval.json"
  $ds bench "$out/$net.dsk" --batch 1 --runs 2000 --data data/mnist --json > "$out/$net.bench.json"
  $ds bench "$out/$net.dsk" --batch 1 --runs 2000 --data data/mnist > "$out/$net.bench.md"
done
ls -l "$out"
