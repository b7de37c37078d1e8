//! The one in-memory model of deepshrink.
//!
//! A [`Graph`] is a list of [`Node`]s in topological order, each applying one [`Op`] (a closed
//! enum) to named values, plus named weight tensors ([`Tensor`]) and the graph's inputs and
//! outputs. Every file format (ONNX, safetensors, the `.dsk` container) converts to and from this
//! type, so nothing downstream knows where a model came from.
//!
//! Design choices:
//! - Values are named by strings, as in ONNX, so names in reports match the names in the file.
//! - Constant operands that ONNX passes as inputs (a Reshape's target shape, Clip's bounds) are
//!   folded into the op's attributes on import, so the engine never has to evaluate them.
//! - Tensors are stored row-major (C order) and activations use the NCHW layout.
//! - The batch dimension of the graph inputs is symbolic; shapes are inferred for a concrete
//!   batch size with [`Graph::infer_shapes`].
#![deny(missing_docs)]

mod cost;
mod error;
mod graph;
mod op;
pub mod shape;
mod tensor;

pub use cost::NodeCost;
pub use error::GraphError;
pub use graph::{Dim, Graph, Node, ValueInfo};
pub use op::{ConvAttrs, Op, PoolAttrs};
pub use shape::Shapes;
pub use tensor::{DType, Tensor, TensorData};
