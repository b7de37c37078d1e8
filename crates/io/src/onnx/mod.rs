//! ONNX import and export.
//!
//! [`load`] / [`from_bytes`] turn an ONNX model (opsets 11–18 of the default domain) into a
//! [`Graph`]; [`save`] / [`to_bytes`] write a [`Graph`] as an ONNX model (IR version 8, opset 13)
//! that onnxruntime loads. Importing what was exported gives back an equal graph, with
//! bit-identical weights.
//!
//! # Import
//!
//! Each ONNX node maps onto one [`deepshrink_graph::Op`]; any other op type, any non-default
//! domain and any opset outside [`IMPORT_OPSETS`] is [`IoError::Unsupported`], naming the op,
//! the node and the supported list ([`deepshrink_graph::Op::SUPPORTED`]). Choices made on import:
//!
//! - Initializers and `Constant` nodes become weights, named by the initializer or the Constant's
//!   output. Only `FLOAT` and `INT64` tensors are read; external data is unsupported.
//! - Constant operands are folded into the op: a Reshape's target shape, Clip's bounds (an absent
//!   bound is ±∞) and Dropout's ratio. A constant used only that way does not stay a weight.
//! - Initializers listed among the graph inputs (older exporters do this) are not inputs.
//! - An input dimension with a `dim_param`, or with no value or value 0, is symbolic
//!   ([`Dim::Sym`](deepshrink_graph::Dim::Sym), named by the `dim_param`, else `batch` for the first dimension and `dimI`
//!   for the others); a positive `dim_value` is fixed.
//! - Outputs keep their declared shapes (fixed dimensions are checked against shape inference).
//!   An output declared without a shape gets the inferred one, with the dimensions that follow
//!   the batch size symbolic (`batch`).
//! - Softmax before opset 13 flattens its input to 2-D around `axis`, which equals a softmax
//!   over one axis only when `axis` is the last one. Such a node is accepted only when shape
//!   inference shows that `axis` is the last axis; otherwise it is unsupported.
//! - Extra outputs (Dropout's mask, BatchNormalization's running statistics) are accepted only
//!   when nothing reads them; MaxPool's indices output and BatchNormalization's `training_mode`
//!   are unsupported. Conv and pooling must be 2-D, with `auto_pad` `NOTSET` or `VALID`.
//! - Unnamed nodes are named `<OpType>_<index>`; repeated names get a `_<k>` suffix.
//!
//! Every length, index and dimension read from the file is checked before use: malformed bytes
//! give [`IoError::Corrupt`], never a panic. The imported graph is validated and its shapes
//! inferred for a batch of 1; a failure is [`IoError::Graph`].
//!
//! # Export
//!
//! Weights become initializers with little-endian `raw_data`; folded constants are written back
//! as initializers named `<node>.shape`, `<node>.min`, `<node>.max` and `<node>.ratio` (with a
//! numeric suffix if the name is taken). Symbolic dimensions are written as `dim_param`.

mod attrs;
mod export;
mod import;
mod ops;
#[allow(missing_docs, clippy::all)]
pub mod proto;
mod tensor;

use std::ops::RangeInclusive;
use std::path::Path;

use deepshrink_graph::Graph;
use prost::Message;

use crate::IoError;

/// Opset versions of the default domain (`""` or `"ai.onnx"`) that [`load`] accepts.
pub const IMPORT_OPSETS: RangeInclusive<i64> = 11..=18;
/// Opset version of the default domain that [`save`] writes.
pub const EXPORT_OPSET: i64 = 13;
/// ONNX IR version that [`save`] writes.
pub const EXPORT_IR_VERSION: i64 = 8;

/// Reads an ONNX model file into a graph. See the [module docs](self) for what is supported.
pub fn load(path: &Path) -> Result<Graph, IoError> {
    let bytes =
        std::fs::read(path).map_err(|e| IoError::Io { path: path.display().to_string(), source: e })?;
    from_bytes(&bytes, &path.display().to_string())
}

/// Parses the bytes of an ONNX model into a graph; `path_for_errors` names the source in errors.
pub fn from_bytes(bytes: &[u8], path_for_errors: &str) -> Result<Graph, IoError> {
    let model = proto::ModelProto::decode(bytes)
        .map_err(|e| corrupt(path_for_errors, format!("not a valid ONNX protobuf: {e}")))?;
    from_model(&model, path_for_errors)
}

/// Converts a decoded ONNX model into a graph; `path_for_errors` names the source in errors.
pub fn from_model(model: &proto::ModelProto, path_for_errors: &str) -> Result<Graph, IoError> {
    import::import_model(model, path_for_errors)
}

/// Writes a graph as an ONNX model file, atomically (see [`crate::write_atomic`]). The graph is
/// validated first, so a file that would not load again is never written.
pub fn save(graph: &Graph, path: &Path) -> Result<(), IoError> {
    graph.validate().map_err(|e| IoError::Graph { path: path.display().to_string(), source: e })?;
    crate::write_atomic(path, &to_bytes(graph))
}

/// Encodes a graph as the bytes of an ONNX model (IR version [`EXPORT_IR_VERSION`], opset
/// [`EXPORT_OPSET`]). The graph is not validated; use [`save`] for that.
pub fn to_bytes(graph: &Graph) -> Vec<u8> {
    to_model(graph).encode_to_vec()
}

/// Converts a graph into an ONNX model message (what [`to_bytes`] encodes).
pub fn to_model(graph: &Graph) -> proto::ModelProto {
    export::export_model(graph)
}

fn corrupt(path: &str, detail: impl Into<String>) -> IoError {
    IoError::Corrupt { path: path.to_string(), detail: detail.into() }
}

fn unsupported(path: &str, detail: impl Into<String>) -> IoError {
    IoError::Unsupported { path: path.to_string(), detail: detail.into() }
}
