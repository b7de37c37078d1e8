use thiserror::Error;

/// An error from a compression pass or recipe.
#[derive(Debug, Error)]
pub enum CompressError {
    /// The recipe text is not valid (unknown pass or key, value out of range).
    #[error("recipe: {0}")]
    Recipe(String),
    /// The model has nothing the pass can act on.
    #[error("{0}")]
    NothingToCompress(String),
    /// A configuration value is out of range.
    #[error("{pass}: {detail}")]
    Config {
        /// The pass.
        pass: &'static str,
        /// What is wrong.
        detail: String,
    },
    /// The graph does not fit together (shapes).
    #[error(transparent)]
    Graph(#[from] deepshrink_graph::GraphError),
    /// Training or evaluation failed.
    #[error(transparent)]
    Engine(#[from] deepshrink_engine::EngineError),
}
