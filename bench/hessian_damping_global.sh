#!/usr/bin/env bash
# Damping sweep of Hessian-weighted k-means with one network-wide codebook (scope = "global") on
# the trained LeNet-300-100, no fine-tuning: train and test top-1 / loss per damping and bit
# width. The damping is chosen on the training loss at 2 bits (bench/results/quantization/
# hessian-damping-global.md). About 3 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p deepshrink
ds=target/release/deepshrink
tmp=$(mktemp -d)
for d in 0 0.1 0.3 1 3; do
  for bits in 2 4; do
    cat > "$tmp/r.toml" <<TOML
[[pass]]
kind = "share"
bits_fc = $bits
bits_conv = $bits
init = "linear"
finetune_epochs = 0
hessian = true
damping = $d
calibration_samples = 2048
scope = "global"
TOML
    $ds compress bench/results/deep-compression/lenet-300-100.onnx --recipe "$tmp/r.toml" --seed 0 --out "$tmp/m.dsk" > /dev/null
    tr=$($ds eval "$tmp/m.dsk" --split train --json | python3 -c 'import json,sys; e=json.load(sys.stdin); print(e["top1"], e["loss"])')
    te=$($ds eval "$tmp/m.dsk" --json | python3 -c 'import json,sys; e=json.load(sys.stdin); print(e["top1"], e["loss"])')
    echo "| $d | $bits | ${tr% *} | ${tr#* } | ${te% *} | ${te#* } |"
  done
done
rm -rf "$tmp"
