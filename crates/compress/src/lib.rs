//! Compression passes and recipes.
//!
//! A *pass* is one method from the survey, in one file, with a config struct (serde, `Default`,
//! unknown keys rejected). Passes act on a [`State`]: the model being compressed plus the
//! *constraints* attached to its weights (a pruning mask, a codebook assignment). Fine-tuning
//! runs the engine's training loop with a hook that enforces every constraint after each step,
//! so pruned weights stay exactly zero and shared weights stay on their centroids.
//! A [`Recipe`] (TOML) is a list of passes, parsed into a closed, tagged enum.
//!
//! Deep Compression (Han, Mao and Dally, ICLR 2016) is `prune` → `share` → `huffman`:
//! see `recipes/deep-compression.toml`. Post-training quantization is `quantize`
//! (`recipes/int8.toml`, `recipes/int4.toml`); quantization-aware training is `qat`
//! (`recipes/twn.toml`, `recipes/binaryconnect.toml`, `recipes/ttq.toml`, `recipes/int4-lsq.toml`,
//! `recipes/fixed8-sr.toml`); HashedNets is `hash`; circulant layers are `circulant`
//! (`recipes/circulant.toml`). Low-rank
//! factorization (`svd`, `tucker2`, `cp`, in [`factorize`]) rewrites the graph instead: see
//! `recipes/low-rank.toml`. docs/METHODS.md lists every method.
#![deny(missing_docs)]

pub mod calibrate;
pub mod circulant;
mod constraint;
pub mod distill;
mod error;
pub mod factorize;
pub mod hashed;
pub mod hessian;
pub mod kmeans;
mod pipeline;
pub mod prune;
pub mod qat;
pub mod quantize;
mod recipe;
pub mod share;
mod target;
pub mod teacher;

pub use constraint::{Constraint, ConstraintHook};
pub use error::CompressError;
pub use factorize::config::{CpConfig, SvdConfig, TuckerConfig};
pub use factorize::{FactorRow, Latency};
pub use pipeline::{run, run_with_teacher, Context, LayerRow, Report, StageReport, State};
pub use recipe::{HuffmanConfig, PassConfig, Recipe};
pub use target::{compressible_weights, LayerKind};
