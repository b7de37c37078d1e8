#!/usr/bin/env bash
# Reproduces bench/results/low-rank/circulant.md: circulant LeNet-300-100 trained from scratch
# (one circulant per layer, and 64x64 circulant blocks), a dense LeNet-300-100 trained from scratch
# with the same budget, accuracy of the .dsk as the runtime runs it, and batch-1 / batch-32
# latency of the FFT layers against the dense twin (`deepshrink bench`, medians, real MNIST inputs).
# Usage: bench/circulant.sh        (about 5 minutes on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
cargo build --release -p deepshrink
ds="$CARGO_TARGET_DIR/release/deepshrink"
out=bench/results/low-rank
mkdir -p "$out"
for n in circulant circulant-b64; do
  $ds compress lenet-300-100 --recipe "recipes/$n.toml" --seed 1 \
    --out "$out/lenet-300-100-$n.dsk" --report "$out/lenet-300-100-$n.report.json" > "$out/lenet-300-100-$n.md"
  $ds eval "$out/lenet-300-100-$n.dsk" --json > "$out/lenet-300-100-$n.eval.json"
  for b in 1 32; do
    $ds bench "$out/lenet-300-100-$n.dsk" --batch "$b" --runs 1000 --data data/mnist > "$out/lenet-300-100-$n.bench-b$b.md"
  done
done
# The dense network with the same budget (10 epochs, Adam 3e-3, cosine, seed 1).
tmp=$(mktemp -d)
$ds train --model lenet-300-100 --epochs 10 --optimizer adam --lr 3e-3 --schedule cosine --seed 1 --json \
  --out "$tmp/dense.onnx" > "$out/lenet-300-100-dense-scratch.train.json"
rm -rf "$tmp"
tail -n 3 "$out"/lenet-300-100-circulant*.md
