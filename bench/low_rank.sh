#!/usr/bin/env bash
# Reproduces bench/results/low-rank/: SVD of the Deep Compression LeNet-300-100 baseline,
# Tucker-2, CP and separable filters of a VGG-small trained here, and the comparison with tensorly.
# Usage: bench/low_rank.sh [--skip-train]   (the VGG-small training is about 30 minutes on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
cargo build --release -p deepshrink
cargo build --release -p deepshrink-compress --example decompose
ds="$CARGO_TARGET_DIR/release/deepshrink"
out=bench/results/low-rank
mkdir -p "$out"
if [ "${1:-}" != "--skip-train" ]; then
  $ds train --model vgg-small --epochs 2 --schedule cosine --json --out "$out/vgg-small.onnx" > "$out/vgg-small.train.json"
fi
run() { # name model recipe
  $ds compress "$2" --recipe "$3" --seed 0 --out "$out/$1.dsk" --report "$out/$1.report.json" > "$out/$1.md"
  $ds eval "$out/$1.dsk" --json > "$out/$1.eval.json"
}
run lenet-300-100-svd bench/results/deep-compression/lenet-300-100.onnx recipes/low-rank.toml
run vgg-small-tucker2 "$out/vgg-small.onnx" recipes/low-rank-vgg-tucker.toml
run vgg-small-cp "$out/vgg-small.onnx" recipes/low-rank-vgg-cp.toml
run vgg-small-separable "$out/vgg-small.onnx" recipes/low-rank-vgg-separable.toml
$ds eval "$out/vgg-small.onnx" --json > "$out/vgg-small.baseline-eval.json"
env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python3 bench/lowrank_vs_tensorly.py --repeats 5 \
  --json "$out/tensorly.json" > "$out/tensorly.md"
ls -l "$out"
