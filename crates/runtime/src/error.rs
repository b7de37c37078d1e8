use deepshrink_engine::EngineError;
use deepshrink_graph::GraphError;
use deepshrink_kernels::KernelError;
use thiserror::Error;

/// An error building or running a [`crate::Runtime`]. Every variant names the node or tensor.
#[derive(Debug, Error)]
pub enum RuntimeError {
    /// The graph is malformed or its shapes do not fit.
    #[error(transparent)]
    Graph(Box<GraphError>),
    /// A node reads a value that is not a graph input, a weight or an earlier node's output.
    #[error("node '{node}' reads '{value}', which is not a graph input, a dense or sparse weight or an earlier output")]
    Undefined {
        /// The reading node.
        node: String,
        /// The missing value.
        value: String,
    },
    /// A compressed weight feeds an op or an operand position the kernels cannot run.
    #[error("sparse weight '{weight}' feeds node '{node}' ({op}) as input {position}: {detail}")]
    SparseUse {
        /// The weight.
        weight: String,
        /// The consuming node.
        node: String,
        /// Its op type.
        op: &'static str,
        /// Operand position.
        position: usize,
        /// What is not supported.
        detail: String,
    },
    /// A compressed weight is malformed.
    #[error("sparse weight '{weight}' (shape {shape:?}): {source}")]
    SparseWeight {
        /// The weight.
        weight: String,
        /// Its dense shape.
        shape: Vec<usize>,
        /// What the kernels found wrong.
        source: KernelError,
    },
    /// The graph has a form the runtime does not execute.
    #[error("cannot run: {0}")]
    Unsupported(String),
    /// The input does not fit the graph.
    #[error("input '{name}' has {got} values but batch {batch} of shape {sample:?} needs {expected}")]
    Input {
        /// Input name.
        name: String,
        /// Per-sample shape.
        sample: Vec<usize>,
        /// Requested batch size.
        batch: usize,
        /// Values expected.
        expected: usize,
        /// Values given.
        got: usize,
    },
    /// An operand does not fit a node at run time.
    #[error("node '{node}' ({op}): {detail}")]
    Shape {
        /// The node.
        node: String,
        /// Its op type.
        op: &'static str,
        /// Shapes involved.
        detail: String,
    },
    /// The engine failed to run a dense node.
    #[error("node '{node}' ({op}): {source}")]
    Engine {
        /// The node.
        node: String,
        /// Its op type.
        op: &'static str,
        /// The engine's error.
        source: Box<EngineError>,
    },
    /// A kernel rejected its buffers (a bug in the runtime's shape checks, reported not panicked).
    #[error("node '{node}': {source}")]
    Kernel {
        /// The node.
        node: String,
        /// The kernel's error.
        source: KernelError,
    },
}

impl From<GraphError> for RuntimeError {
    fn from(e: GraphError) -> Self {
        RuntimeError::Graph(Box::new(e))
    }
}
