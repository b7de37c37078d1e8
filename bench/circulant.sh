#!/usr/bin/env bash
# Reproduces bench/results/low-rank/circulant.md: circulant LeNet-300-100 trained from scratch
# (one circulant per layer, and 64x64 circulant blocks), a dense LeNet-300-100 trained from scratch
# with the same budget, accuracy of the .dsk as the runtime runs it, and batch-1 / batch-32
# latency of the FFT layers against the dense twin (`deepshrink bench`, medians, real MNIST inputs).
# Usage: bench/circulant.sh        (about 5 minutes on 2 cores; VARIANTS=1 adds 6 runs, ~8 min)
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
# VARIANTS=1: the "What we tried" rows of circulant.md (one run each, seed 1), printed only.
if [ "${VARIANTS:-0}" = 1 ]; then
  variant() { # name base-recipe sed-expression [model]
    sed -e "$3" "recipes/$2.toml" > "$tmp/$1.toml"
    $ds compress "${4:-lenet-300-100}" --recipe "$tmp/$1.toml" --seed 1 --out "$tmp/$1.dsk" | tail -n 1
  }
  tmp=$(mktemp -d)
  variant lr1e-3 circulant 's/^lr = .*/lr = 1e-3/'
  variant nosigns circulant 's/^signs = .*/signs = false/;s/^lr = .*/lr = 1e-3/'
  variant project circulant 's/^init = .*/init = "project"/;s/^lr = .*/lr = 1e-3/' \
    bench/results/deep-compression/lenet-300-100.onnx
  variant b64-lr1e-3 circulant-b64 's/^lr = .*/lr = 1e-3/'
  variant b64-fc3-dense circulant-b64 's/^lr = .*/lr = 3e-3\nskip = ["fc3.weight"]/'
  variant b64-30-epochs circulant-b64 's/^epochs = .*/epochs = 30/'
  rm -rf "$tmp"
fi
tail -n 3 "$out"/lenet-300-100-circulant*.md
