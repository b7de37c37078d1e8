use deepshrink_graph::GraphError;
use thiserror::Error;

/// An error reading or writing a model or data file. Every variant names the file.
#[derive(Debug, Error)]
pub enum IoError {
    /// The operating system refused (missing file, permissions, disk full).
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The bytes are not a valid file of the expected format (truncated, bad magic, bad lengths).
    #[error("{path}: corrupt or truncated: {detail}")]
    Corrupt {
        /// The file.
        path: String,
        /// What is wrong.
        detail: String,
    },
    /// The file is valid but uses something deepshrink does not support.
    #[error("{path}: unsupported: {detail}")]
    Unsupported {
        /// The file.
        path: String,
        /// What is unsupported, e.g. the op type, node name and the supported list.
        detail: String,
    },
    /// The file extension names no format deepshrink reads as a model.
    #[error("{path}: unknown model format (expected a .onnx file)")]
    UnknownFormat {
        /// The file.
        path: String,
    },
    /// Two files that must agree do not (e.g. IDX images and labels of different counts).
    #[error("{path}: {detail}")]
    Mismatch {
        /// The file (or files).
        path: String,
        /// What disagrees.
        detail: String,
    },
    /// The model read is not a valid graph.
    #[error("{path}: {source}")]
    Graph {
        /// The file.
        path: String,
        /// The graph error, naming the node.
        #[source]
        source: GraphError,
    },
}
