#!/usr/bin/env bash
# Knowledge distillation on MNIST (issue 6): a vgg-small teacher (1.68M parameters) and the
# students cnn-small (10x fewer), cnn-tiny and mlp-tiny (50x fewer), each trained alone, with soft
# targets (kd), with FitNets hints (hint) and with attention transfer (at), over 3 seeds, same
# epochs. Writes one JSON report per student and method to bench/results/distillation/full/, or
# with a LIMIT to bench/results/distillation/limited/n<LIMIT>/ (hint and at need conv students).
#
#   bash bench/distillation.sh            # everything, full training set, 8 epochs
#   STUDENTS=cnn-tiny METHODS=kd bash bench/distillation.sh
#   EPOCHS=20 LIMIT=5000 STUDENTS="cnn-tiny mlp-tiny" METHODS=kd bash bench/distillation.sh   # data-limited
#   EPOCHS=30 LIMIT=2000 STUDENTS="cnn-tiny mlp-tiny" METHODS=kd bash bench/distillation.sh
#   EPOCHS=6 LIMIT=10000 OUT=bench/results/distillation bash bench/distillation.sh   # the first matrix
#
# The teacher's outputs on the training set are computed once per run and shared by every seed.
# The baseline (the student alone, same seeds and budget) is computed with the kd run; the hint
# and at runs skip it (it would be the same numbers).
set -euo pipefail
cd "$(dirname "$0")/.."
EPOCHS=${EPOCHS:-8}
LIMIT=${LIMIT:-}   # empty: all 60,000 training images
if [ -z "$LIMIT" ]; then OUT=${OUT:-bench/results/distillation/full}; else OUT=${OUT:-bench/results/distillation/limited/n$LIMIT}; fi
SEEDS=${SEEDS:-3}
STUDENTS=${STUDENTS:-"cnn-tiny cnn-small"}
METHODS=${METHODS:-"kd hint at"}
TEACHER=${TEACHER:-bench/results/distillation/vgg-small.onnx}  # committed; if missing, retrained (3 epochs)
mkdir -p "$OUT" "$(dirname "$TEACHER")"
cargo build --release -q -p deepshrink
BIN=${CARGO_TARGET_DIR:-target}/release/deepshrink
if [ ! -f "$TEACHER" ]; then
  "$BIN" train --model vgg-small --data data/mnist --epochs 3 --seed 0 --no-epoch-eval \
    --out "$TEACHER" --json > "$(dirname "$TEACHER")/teacher.json"
fi
for s in $STUDENTS; do
  for m in $METHODS; do
    extra=()
    [ "$m" = kd ] || extra=(--no-baseline)
    [ -z "$LIMIT" ] || extra+=(--limit "$LIMIT")
    "$BIN" distill --teacher "$TEACHER" --student "$s" --data data/mnist --method "$m" \
      --epochs "$EPOCHS" --seeds "$SEEDS" "${extra[@]}" \
      --report "$OUT/$s-$m.json" | tee "$OUT/$s-$m.txt"
  done
done
