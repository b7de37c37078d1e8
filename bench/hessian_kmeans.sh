#!/usr/bin/env bash
# Hessian-weighted vs plain k-means weight sharing (Choi et al. 2017) at 2, 3 and 4 bits on the
# trained baselines of bench/results/deep-compression/, without pruning and without fine-tuning
# (the comparison is of the clustering itself), every layer shared at the same bits.
# Writes bench/results/quantization/hessian-kmeans.{md,json}. About 2 minutes on 2 cores.
# Damping (added to each weight's squared gradient, in units of the layer's mean) was chosen on
# the *training* set (loss of the shared LeNet-300-100 at 2 bits over damping 0, 0.1, 0.3, 1, 3:
# 0.1 was lowest), never on the test set; the table reports both.
# SCOPE=global clusters every layer with one network-wide codebook (Choi et al.'s setting) and
# writes hessian-kmeans-global.{md,json}.
# Usage: DAMPING=0.1 SCOPE=per-layer bench/hessian_kmeans.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p deepshrink
ds=target/release/deepshrink
out=bench/results/quantization
tmp=$(mktemp -d)
mkdir -p "$out"
rows=()
for net in lenet-300-100 lenet-5; do
  for bits in 2 3 4; do
    for hessian in false true; do
      cat > "$tmp/r.toml" <<TOML
[[pass]]
kind = "share"
bits_fc = $bits
bits_conv = $bits
init = "linear"
finetune_epochs = 0
hessian = $hessian
damping = ${DAMPING:-0.1}
calibration_samples = 2048
scope = "${SCOPE:-per-layer}"
TOML
      $ds compress "bench/results/deep-compression/$net.onnx" --recipe "$tmp/r.toml" --seed 0 \
        --out "$tmp/$net-$bits-$hessian.dsk" --report "$tmp/$net-$bits-$hessian.json" > /dev/null
      ev=$($ds eval "$tmp/$net-$bits-$hessian.dsk" --json | python3 -c 'import json,sys; e=json.load(sys.stdin); print(e["top1"], e["loss"])')
      tr=$($ds eval "$tmp/$net-$bits-$hessian.dsk" --split train --json | python3 -c 'import json,sys; e=json.load(sys.stdin); print(e["top1"], e["loss"])')
      rows+=("{\"net\": \"$net\", \"bits\": $bits, \"hessian\": $hessian, \"top1\": ${ev% *}, \"loss\": ${ev#* }, \"train_top1\": ${tr% *}, \"train_loss\": ${tr#* }}")
    done
  done
done
printf '%s\n' "${rows[@]}" | python3 -c '
import json, sys
rows = [json.loads(l) for l in sys.stdin]
json.dump(rows, open(sys.argv[1], "w"), indent=1)
base = {"lenet-300-100": 0.9841, "lenet-5": 0.9930}
md = ["| net | bits | plain k-means test top-1 | Hessian-weighted test top-1 | difference (points) | plain / Hessian test loss | plain / Hessian train top-1 | plain / Hessian train loss |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
for net in base:
    for bits in (2, 3, 4):
        p = next(r for r in rows if r["net"] == net and r["bits"] == bits and not r["hessian"])
        h = next(r for r in rows if r["net"] == net and r["bits"] == bits and r["hessian"])
        pt, ht, pl, hl = p["top1"], h["top1"], p["loss"], h["loss"]
        ptr, htr, ptl, htl = p["train_top1"], h["train_top1"], p["train_loss"], h["train_loss"]
        md.append(f"| {net} | {bits} | {100*pt:.2f}% | {100*ht:.2f}% | {100*(ht-pt):+.2f} | {pl:.4f} / {hl:.4f} | {100*ptr:.2f}% / {100*htr:.2f}% | {ptl:.4f} / {htl:.4f} |")
open(sys.argv[2], "w").write("\n".join(md) + "\n")
print("\n".join(md))
' "$out/hessian-kmeans${SCOPE:+-$SCOPE}.json" "$out/hessian-kmeans${SCOPE:+-$SCOPE}.md"
rm -rf "$tmp"
