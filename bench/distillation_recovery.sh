#!/usr/bin/env bash
# Distillation as the recovery step of a compression recipe (issue 6, item 4): the recipe's
# fine-tuning with the uncompressed model as teacher against the same recipe and seed without it
# (`compare = true` in the recipe's [teacher] table), over SEEDS seeds. Writes one report per
# seed to bench/results/distillation/recovery/, then the table.
#
#   bash bench/distillation_recovery.sh
#   RECIPE=recipes/lenet-300-100-kd.toml MODEL=bench/results/deep-compression/lenet-300-100.onnx SEEDS=3 bash bench/distillation_recovery.sh
set -euo pipefail
cd "$(dirname "$0")/.."
RECIPE=${RECIPE:-recipes/lenet-300-100-kd.toml}
MODEL=${MODEL:-bench/results/deep-compression/lenet-300-100.onnx}
SEEDS=${SEEDS:-3}
OUT=bench/results/distillation/recovery
NAME=$(basename "$RECIPE" .toml)
mkdir -p "$OUT"
cargo build --release -q -p deepshrink
BIN=${CARGO_TARGET_DIR:-target}/release/deepshrink
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
for seed in $(seq 0 $((SEEDS - 1))); do
  "$BIN" compress "$MODEL" --recipe "$RECIPE" --data data/mnist --seed "$seed" \
    --out "$TMP/$NAME.dsk" --report "$OUT/$NAME.seed$seed.json" | tee "$OUT/$NAME.seed$seed.md"
done
python3 bench/distillation_recovery_table.py "$OUT/$NAME".seed*.json
