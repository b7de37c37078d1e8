#!/usr/bin/env bash
# Static activation calibration for int8 (and int4) post-training quantization (issue 4, item 1):
# LeNet-300-100 and LeNet-5 with dynamic activation quantization and with static scales chosen
# by min-max, percentile (99.99 and 99.9) and MSE, each .dsk evaluated by the runtime on the
# 10,000 MNIST test images. Writes bench/results/quantization/static-calibration.{md,json}.
# Usage: bench/static_calibration.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
cargo build --release -q -p deepshrink
ds="$CARGO_TARGET_DIR/release/deepshrink"
out=bench/results/quantization/static
mkdir -p "$out"
variants="dynamic minmax p99.99 p99.9 mse"
for net in lenet-300-100 lenet-5; do
  for bits in 8 4; do
    for v in $variants; do
      r="$out/$net-int$bits-$v.toml"
      {
        echo "description = \"int$bits per-channel, activations $v\""
        echo "[[pass]]"
        echo "kind = \"quantize\""
        echo "bits = $bits"
        case $v in
          dynamic) ;;
          minmax|mse) echo "activations = \"static\""; echo "calibration = \"$v\"" ;;
          p*) echo "activations = \"static\""; echo "calibration = \"percentile\""; echo "percentile = ${v#p}" ;;
        esac
      } > "$r"
      $ds compress "bench/results/deep-compression/$net.onnx" --recipe "$r" --seed 0 \
        --out "$out/$net-int$bits-$v.dsk" --report "$out/$net-int$bits-$v.report.json" > /dev/null
      $ds eval "$out/$net-int$bits-$v.dsk" --json > "$out/$net-int$bits-$v.eval.json"
      rm "$r"
    done
  done
done
python3 - "$out" <<'PY'
import json, os, sys
out = sys.argv[1]
rows = []
for net in ["lenet-300-100", "lenet-5"]:
    for bits in [8, 4]:
        for v in ["dynamic", "minmax", "p99.99", "p99.9", "mse"]:
            e = json.load(open(f"{out}/{net}-int{bits}-{v}.eval.json"))
            size = os.path.getsize(f"{out}/{net}-int{bits}-{v}.dsk")
            rows.append({"net": net, "bits": bits, "activations": v, "top1": e["top1"], "bytes": size})
json.dump(rows, open(f"{out}/../static-calibration.json", "w"), indent=1)
with open(f"{out}/../static-calibration.md", "w") as f:
    f.write("| net | weights | activations | test top-1 (.dsk, runtime) | file bytes |\n|---|---|---|---:|---:|\n")
    for r in rows:
        f.write(f"| {r['net']} | int{r['bits']} per-channel | {r['activations']} | {100*r['top1']:.2f}% | {r['bytes']:,} |\n")
print(open(f"{out}/../static-calibration.md").read())
PY
rm -f "$out"/*.dsk
