#!/usr/bin/env bash
# Distillation as the recovery step of a compression recipe (issue 6, item 4): the recipe's
# fine-tuning with a teacher against the same recipe and seed without it (`compare = true` in the
# recipe's [teacher] table), over SEEDS seeds. Writes one report per seed to
# bench/results/distillation/recovery/, then the table.
#
#   bash bench/distillation_recovery.sh     # recipes/lenet-300-100-kd-limited.toml on 1,000 images
#   RECIPE=recipes/lenet-300-100-kd.toml LIMIT= bash bench/distillation_recovery.sh   # all 60,000
#
# LIMIT (default 1000; empty for the whole training set) is `deepshrink compress --limit`: every
# fine-tuning, with and without the teacher, sees only the first LIMIT training images; the test
# set stays complete. With a LIMIT the reports are named <recipe>.n<LIMIT>.seed<N>.json.
set -euo pipefail
cd "$(dirname "$0")/.."
RECIPE=${RECIPE:-recipes/lenet-300-100-kd-limited.toml}
MODEL=${MODEL:-bench/results/deep-compression/lenet-300-100.onnx}
SEEDS=${SEEDS:-3}
LIMIT=${LIMIT-1000}
OUT=bench/results/distillation/recovery
NAME=$(basename "$RECIPE" .toml)
extra=()
if [ -n "$LIMIT" ]; then
  extra=(--limit "$LIMIT")
  NAME="$NAME.n$LIMIT"
fi
mkdir -p "$OUT"
cargo build --release -q -p deepshrink
BIN=${CARGO_TARGET_DIR:-target}/release/deepshrink
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
for seed in $(seq 0 $((SEEDS - 1))); do
  "$BIN" compress "$MODEL" --recipe "$RECIPE" --data data/mnist --seed "$seed" "${extra[@]}" \
    --out "$TMP/$NAME.dsk" --report "$OUT/$NAME.seed$seed.json" | tee "$OUT/$NAME.seed$seed.md"
done
python3 bench/distillation_recovery_table.py "$OUT/$NAME".seed*.json
