//! The `.dsk` container: a graph plus one encoding per weight tensor, with exact byte accounting.
//!
//! The format is specified in `docs/FORMAT.md`. This crate owns the in-memory form of compressed
//! weights ([`SparseMatrix`]), their byte encodings (relative-index sparse, codebook indices,
//! canonical Huffman streams) and the container that holds them.
#![deny(missing_docs)]

pub mod bits;
mod error;
pub mod huffman;
mod matrix;

pub use error::CodecError;
pub use matrix::{SparseMatrix, SparseValues};
