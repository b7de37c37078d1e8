#!/usr/bin/env bash
# Reproduces bench/results/quantization/: int8 and int4 post-training quantization of the trained
# baselines of bench/results/deep-compression/, evaluated with the integer runtime, timed at
# batch 1, and the kernel benchmark against candle (bench/quant_gemv.sh).
# Usage: bench/quantization.sh   (about 2 minutes on 2 cores once candle is built)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
cargo build --release --locked -p deepshrink
ds="$CARGO_TARGET_DIR/release/deepshrink"
base=bench/results/deep-compression
out=bench/results/quantization
tmp=$(mktemp -d)
mkdir -p "$out"
for net in lenet-300-100 lenet-5; do
  for r in int8 int4; do
    # The .dsk files are not committed: each is remade in about a second.
    $ds compress "$base/$net.onnx" --recipe "recipes/$r.toml" --out "$tmp/$net-$r.dsk" \
      --report "$out/$net-$r.report.json" > "$out/$net-$r.md"
    $ds eval "$tmp/$net-$r.dsk" --json > "$out/$net-$r.eval.json"
    $ds bench "$tmp/$net-$r.dsk" --batch 1 --runs 500 > "$out/$net-$r.bench.md"
  done
done
bench/quant_gemv.sh 501 > "$out/gemv.md"
rm -rf "$tmp"
ls -l "$out"
