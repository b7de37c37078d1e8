//! Training and evaluation of deepshrink graphs.
//!
//! A [`Model`] compiles a [`deepshrink_graph::Graph`] into slot-indexed steps; each op's forward
//! and backward live side by side in `ops/`. Convolutions run as im2col plus one large GEMM per
//! group (the `gemm` crate, both cores), so training speed is bound by the matrix kernel, not by
//! bookkeeping. [`train`] runs mini-batch training with PyTorch's optimizers and calls a
//! [`TrainHook`] around every step, which is how compression methods keep weights on a mask,
//! a codebook or a quantization grid. [`evaluate`] reports loss, top-1 and top-5 accuracy.
//!
//! The engine's tensor type never leaves this crate: weights go in and out as graph tensors and
//! are reached during training by name through [`Params`].
//!
//! ```
//! use deepshrink_engine::{zoo, Model};
//! let model = Model::new(zoo::build("lenet-300-100", 0).unwrap()).unwrap();
//! let (shape, y) = model.forward(&vec![0.0; 2 * 784], 2).unwrap();
//! assert_eq!(shape, vec![2, 10]);
//! assert_eq!(y.len(), 20);
//! ```
#![deny(missing_docs)]

pub mod distill_loss;
mod error;
#[cfg(test)]
mod gradcheck;
mod infer;
mod linalg;
mod loss;
mod model;
mod objective;
mod ops;
mod optim;
pub mod profile;
pub mod rng;
mod train;
pub mod zoo;

pub use error::EngineError;
pub use infer::infer_op;
pub use model::{Model, ShapedValues};
pub use objective::{Batch, CrossEntropy, LossGrad, Objective, Tap};
pub use optim::{Optimizer, Schedule};
pub use train::{
    evaluate, train, Data, EpochStats, Metrics, NoHook, Params, Progress, TrainConfig, TrainHook, Trainer,
};
