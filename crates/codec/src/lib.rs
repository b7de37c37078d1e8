//! The `.dsk` container: a graph plus one encoding per weight tensor, with exact byte accounting.
//!
//! The format is specified in `docs/FORMAT.md`. This crate owns the in-memory form of compressed
//! weights ([`SparseMatrix`]), their byte encodings (relative-index sparse, codebook indices,
//! canonical Huffman streams, Han et al. ICLR 2016) and the container that holds them.
//!
//! - [`to_bytes`] / [`from_bytes`]: a [`DskModel`] (graph + dense weights + compressed weights) to
//!   and from file bytes, with a [`SizeReport`] that accounts for every byte. Writing files
//!   atomically is the caller's job (`deepshrink_io::write_atomic`).
//! - [`huffman`]: canonical, length-limited Huffman codes and the entropy they are compared with.
//! - Reading treats bytes as hostile: every length, offset and index is checked, sections carry
//!   CRC-32s, and allocations are bounded by [`ReadOptions`].
#![deny(missing_docs)]

pub mod bits;
pub mod circulant;
mod container;
mod encoding;
mod error;
mod graph_section;
pub mod hashed;
pub mod hashing;
pub mod huffman;
mod matrix;
mod quant;
mod report;
pub mod sparse_index;
mod stream;

pub use bits::crc32;
pub use circulant::CirculantTensor;
pub use container::{
    from_bytes, from_bytes_with, to_bytes, DskModel, PackOptions, ReadOptions, HEADER_LEN, MAGIC, VERSION,
};
pub use encoding::{code_width, Encoding};
pub use error::CodecError;
pub use hashed::HashedTensor;
pub use matrix::{SparseMatrix, SparseValues};
pub use quant::QuantMatrix;
pub use report::{SizeReport, StreamStats, TensorSize};
