//! Errors of encoding and decoding `.dsk` files. Every variant that concerns one tensor names it;
//! `"graph"` names the graph section and `"header"` the file header.

use thiserror::Error;

/// What went wrong writing or reading a `.dsk` container.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum CodecError {
    /// The file does not start with the `.dsk` magic bytes.
    #[error("not a .dsk file: bad magic bytes {found:02x?}")]
    BadMagic {
        /// The first bytes found.
        found: Vec<u8>,
    },
    /// The file is a `.dsk` of a version this reader does not implement (not corruption).
    #[error("unsupported .dsk version {found} (this build reads version {supported})")]
    UnsupportedVersion {
        /// Version in the file.
        found: u16,
        /// Version this reader implements.
        supported: u16,
    },
    /// Data ends before a field is complete.
    #[error("'{section}': truncated: {what} needs {needed} bytes at offset {offset}, {available} left")]
    Truncated {
        /// Section (tensor name, "graph" or "header").
        section: String,
        /// The field being read.
        what: &'static str,
        /// Offset within the section (or file, for the header).
        offset: usize,
        /// Bytes the field needs.
        needed: usize,
        /// Bytes left.
        available: usize,
    },
    /// A section's CRC does not match its bytes.
    #[error(
        "'{section}': checksum mismatch (stored {stored:08x}, computed {computed:08x}): the file is corrupt"
    )]
    Checksum {
        /// Section (tensor name or "graph").
        section: String,
        /// CRC stored in the file.
        stored: u32,
        /// CRC of the bytes read.
        computed: u32,
    },
    /// An encoding tag this reader does not know.
    #[error("tensor '{tensor}': unknown encoding tag {tag} (written by a newer deepshrink?)")]
    UnknownTag {
        /// The tensor.
        tensor: String,
        /// The tag.
        tag: u8,
    },
    /// A length, count, offset or field value is out of its allowed range.
    #[error("'{section}': {what} out of range: {detail}")]
    OutOfRange {
        /// Section (tensor name, "graph" or "header").
        section: String,
        /// The field.
        what: &'static str,
        /// The value and its bound.
        detail: String,
    },
    /// A relative-index stream points past the end of the tensor or disagrees with its counts.
    #[error("tensor '{tensor}': index stream: {detail}")]
    IndexOverflow {
        /// The tensor.
        tensor: String,
        /// What is wrong.
        detail: String,
    },
    /// A Huffman table or bit sequence is invalid.
    #[error("tensor '{tensor}': {stream} stream: invalid Huffman data: {detail}")]
    Huffman {
        /// The tensor.
        tensor: String,
        /// "index" or "code".
        stream: &'static str,
        /// What is wrong.
        detail: String,
    },
    /// A codebook index is not below the number of centroids.
    #[error("tensor '{tensor}': code {code} at entry {entry} is out of the codebook (k = {k})")]
    CodeOutOfRange {
        /// The tensor.
        tensor: String,
        /// Entry index.
        entry: usize,
        /// The code.
        code: u32,
        /// Codebook size.
        k: usize,
    },
    /// An in-memory sparse matrix is inconsistent with its shape (found when writing).
    #[error("tensor '{tensor}' (shape {shape:?}): {detail}")]
    Matrix {
        /// The tensor.
        tensor: String,
        /// Its shape.
        shape: Vec<usize>,
        /// What is wrong.
        detail: String,
    },
    /// The graph section could not be inflated, parsed or serialised.
    #[error("graph section: {0}")]
    Graph(String),
    /// Two tensors have the same name, or a tensor name is invalid.
    #[error("tensor '{0}': name is empty, not UTF-8 or stored twice")]
    BadName(String),
    /// Bytes follow the last section.
    #[error("{extra} bytes after the last section")]
    TrailingBytes {
        /// How many.
        extra: usize,
    },
}

impl CodecError {
    pub(crate) fn range(section: &str, what: &'static str, detail: impl Into<String>) -> Self {
        CodecError::OutOfRange { section: section.to_string(), what, detail: detail.into() }
    }
}
