#!/usr/bin/env bash
# One sweep point of the data-limited recovery runs (README, "Distillation as the recovery
# step"): writes NAME.toml (LeNet-300-100 one-shot pruning to SPARSITY, fc3 to FC3, 2-bit sharing,
# EPOCHS of fine-tuning after each, the given teacher, T and alpha, compare = true), runs
# `deepshrink compress --limit LIMIT --seed $SEED` and prints with/without per stage. From the
# repository root:
#   SEED=0 bash bench/results/distillation/recovery/limited/sweep.sh NAME SPARSITY FC3 EPOCHS T ALPHA TEACHER LIMIT
#   e.g. SEED=1 bash .../sweep.sh b1000-vgg-T4a05-s1 0.9 0.5 50 4.0 0.5 bench/results/distillation/vgg-small.onnx 1000
set -e
D=bench/results/distillation/recovery/limited
BIN=${CARGO_TARGET_DIR:-target}/release/deepshrink
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
n=$1; sp=$2; f3=$3; ep=$4; T=$5; a=$6; t=$7; lim=$8; model=${9:-bench/results/deep-compression/lenet-300-100.onnx}
cat > $D/$n.toml <<EOT
description = "sweep $n"
[teacher]
model = "$t"
temperature = $T
alpha = $a
compare = true
[[pass]]
kind = "prune"
sparsity = $sp
layers = { "fc3.weight" = $f3 }
schedule = "one-shot"
retrain_epochs = $ep
lr = 1e-3
[[pass]]
kind = "share"
bits_fc = 2
init = "linear"
finetune_epochs = $ep
lr = 1e-3
[[pass]]
kind = "huffman"
EOT
"$BIN" compress $model --recipe $D/$n.toml --seed ${SEED:-0} --limit $lim --out $TMP/$n.dsk --report $D/$n.json > $D/$n.md 2>&1
python3 - $D/$n.json "$*" <<'EOP'
import json,sys
r=json.load(open(sys.argv[1]))
w={s['stage']:s['test_top1'] for s in r['stages']}; wo={s['stage']:s['test_top1'] for s in r['teacher']['without_teacher']}
print(sys.argv[2], ' | '.join(f"{k}: {100*w[k]:.2f} vs {100*wo[k]:.2f} ({100*(w[k]-wo[k]):+.2f})" for k in ['prune','share']), flush=True)
EOP
