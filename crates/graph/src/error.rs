use thiserror::Error;

/// An error found while validating a graph or inferring its shapes. Every variant names the node
/// or tensor involved.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum GraphError {
    /// A node reads a value that no earlier node, input or weight produces.
    #[error(
        "node '{node}' reads '{value}', which is not a graph input, a weight or an earlier node's output"
    )]
    UndefinedValue {
        /// The reading node.
        node: String,
        /// The missing value.
        value: String,
    },
    /// A value is produced twice.
    #[error("value '{value}' is produced twice (second time by node '{node}')")]
    DuplicateValue {
        /// The second producer.
        node: String,
        /// The value name.
        value: String,
    },
    /// A node has the wrong number of inputs or outputs for its op.
    #[error("node '{node}' ({op}) has {got} {what}, expected {expected}")]
    Arity {
        /// The node.
        node: String,
        /// The op type.
        op: &'static str,
        /// "inputs" or "outputs".
        what: &'static str,
        /// How many were given.
        got: usize,
        /// What the op accepts.
        expected: String,
    },
    /// Operand shapes do not fit the op.
    #[error("node '{node}' ({op}): {detail}")]
    Shape {
        /// The node.
        node: String,
        /// The op type.
        op: &'static str,
        /// What is wrong, with the shapes involved.
        detail: String,
    },
    /// A graph output is never produced.
    #[error("graph output '{0}' is not produced by any node, input or weight")]
    MissingOutput(String),
    /// A tensor's data length does not match its shape.
    #[error("tensor '{name}' has shape {shape:?} ({expected} elements) but {got} values")]
    TensorLength {
        /// Tensor name.
        name: String,
        /// Declared shape.
        shape: Vec<usize>,
        /// Elements the shape implies.
        expected: usize,
        /// Elements present.
        got: usize,
    },
}
