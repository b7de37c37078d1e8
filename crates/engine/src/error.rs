use deepshrink_graph::GraphError;
use thiserror::Error;

/// An error building, running or training a model.
#[derive(Debug, Error)]
pub enum EngineError {
    /// The graph is invalid or its shapes do not fit.
    #[error(transparent)]
    Graph(#[from] GraphError),
    /// The data does not fit the model.
    #[error("data does not fit the model: {0}")]
    Data(String),
    /// The graph uses something the engine cannot execute.
    #[error("cannot execute: {0}")]
    Unsupported(String),
    /// A configuration value is out of range.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// Training diverged.
    #[error(
        "training diverged: loss became {loss} at epoch {epoch}, step {step} (try a lower learning rate)"
    )]
    Diverged {
        /// The loss value.
        loss: f32,
        /// Epoch (1-based).
        epoch: usize,
        /// Step within the epoch.
        step: usize,
    },
}
