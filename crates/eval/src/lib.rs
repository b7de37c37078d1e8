//! Measurements of models and the reports built from them.
//!
//! - [`summarize`] and [`ModelSummary`]: per-layer parameters, multiply-accumulates and weight
//!   bytes of a [`Graph`], with totals — the survey's size and compute metrics.
//! - [`summarize_tensors`] and [`TensorSummary`]: the same for a bare weight file (safetensors),
//!   which has no graph and therefore no shapes of activations or MACs.
//! - [`Accuracy`] and [`AccuracyMeter`]: top-1/top-5 accuracy and mean loss over a data set.
//!
//! Every report derives [`serde::Serialize`] for JSON and has a `to_markdown` rendering for
//! people. Numbers are computed, never estimated: MACs come from shape inference at batch 1, bytes
//! from the stored dense tensors.
//!
//! [`Graph`]: deepshrink_graph::Graph
#![deny(missing_docs)]

mod accuracy;
mod summary;
mod table;
mod tensors;

pub use accuracy::{Accuracy, AccuracyMeter};
pub use summary::{summarize, LayerRow, ModelSummary};
pub use tensors::{summarize_tensors, TensorRow, TensorSummary};
