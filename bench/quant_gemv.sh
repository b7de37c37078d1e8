#!/usr/bin/env bash
# Batch-1 GEMV: our int8 / int4 kernels against our dense f32 GEMV and candle's quantized matmul
# (Q8_0, Q4_0, Q4_K), 384->1536 and 1536->384, all sampled round-robin in one process.
# Candle runs once on one thread (as ours) and once with its default thread count.
# Usage: bench/quant_gemv.sh [samples]   (default 501); prints Markdown tables.
set -euo pipefail
cd "$(dirname "$0")/.."
samples="${1:-501}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
# Our kernels alone (no candle build needed).
cargo run --release --locked -q -p deepshrink-kernels --example quant_bench -- --samples "$samples"
echo
# The candle peer: its own crate and lock file outside the workspace, built on first use.
# Its own target directory too (its dependency versions differ from the workspace's).
peer_target="$CARGO_TARGET_DIR/candle-peer"
CARGO_TARGET_DIR="$peer_target" cargo build --release -q --locked --manifest-path bench/candle-peer/Cargo.toml
peer="$peer_target/release/candle-peer"
echo "### candle on 1 thread"
RAYON_NUM_THREADS=1 "$peer" --samples "$samples"
echo
echo "### candle with its default threads"
"$peer" --samples "$samples"
