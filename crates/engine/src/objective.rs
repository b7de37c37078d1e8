//! What training minimises: the [`Objective`] trait, which the trainer calls once per batch with
//! the logits and any requested intermediate activations, and which returns the loss and its
//! gradients with respect to them.

use crate::loss::cross_entropy;
use crate::EngineError;

/// An intermediate activation of the model being trained, as an objective sees it.
#[derive(Debug, Clone, Copy)]
pub struct Tap<'a> {
    /// Shape, batch first.
    pub shape: &'a [usize],
    /// Row-major values.
    pub data: &'a [f32],
}

/// One training batch as an [`Objective`] sees it.
#[derive(Debug, Clone, Copy)]
pub struct Batch<'a> {
    /// Position of each sample in the training data (so an objective can look up per-sample
    /// targets it computed once, such as a teacher's outputs).
    pub indices: &'a [usize],
    /// Class labels.
    pub labels: &'a [u32],
    /// Pre-softmax logits, `[labels.len(), classes]` row-major.
    pub logits: &'a [f32],
    /// Number of classes.
    pub classes: usize,
    /// The activations named by [`Objective::taps`], in that order.
    pub taps: &'a [Tap<'a>],
}

/// The loss of one batch and its gradients.
#[derive(Debug, Clone, Default)]
pub struct LossGrad {
    /// Mean loss over the batch.
    pub loss: f64,
    /// Gradient of `loss` with respect to the logits.
    pub dlogits: Vec<f32>,
    /// Gradient of `loss` with respect to each tap (None where the loss does not depend on it).
    pub dtaps: Vec<Option<Vec<f32>>>,
}

/// A training loss. The trainer runs the model forward in training mode, hands the objective the
/// logits and the activations it named, and runs backward from the gradients it returns: those
/// of the taps are added into the backward pass where each activation is produced.
pub trait Objective {
    /// Names of intermediate tensors of the trained model the loss reads (none by default).
    fn taps(&self) -> Vec<String> {
        Vec::new()
    }
    /// Loss and gradients of one batch.
    fn loss(&mut self, batch: &Batch<'_>) -> Result<LossGrad, EngineError>;
}

/// Softmax cross-entropy against the labels: the default objective.
#[derive(Debug, Clone, Copy, Default)]
pub struct CrossEntropy;

impl Objective for CrossEntropy {
    fn loss(&mut self, b: &Batch<'_>) -> Result<LossGrad, EngineError> {
        let n = b.labels.len();
        let (s, g) = cross_entropy(b.logits, n, b.labels, true);
        Ok(LossGrad {
            loss: s.loss_sum / n as f64,
            dlogits: g.expect("gradient requested"),
            dtaps: Vec::new(),
        })
    }
}
