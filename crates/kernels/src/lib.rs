//! Compute kernels on compressed weights.
//!
//! Every fast kernel here has a plain scalar twin in [`reference`], and a property test compares
//! the two by normalised error. The crate knows nothing of graphs or files: kernels take slices.
//!
//! Design choices:
//! - **Validate once, run unchecked.** A [`SparseWeights`] checks its CSR structure (monotone row
//!   offsets, column indices in range, codebook codes in range) when it is built; its kernels then
//!   index without bounds checks in the inner loops and only check the O(1) buffer lengths per
//!   call. The free functions ([`csr_matmul_f32`], ...) validate on every call and are meant for
//!   one-off use and tests; a runtime builds [`SparseWeights`] once at load time.
//! - **x · Wᵀ at batch 1 is a sparse GEMV**: one dot product per row over its non-zeros, four
//!   independent accumulators so the gathers overlap. At larger batches `x` is transposed to
//!   `[cols, batch]` and the product becomes a sparse × dense product ([`SparseWeights::spmm`]),
//!   where each non-zero does one contiguous, vectorised axpy of length `batch`.
//! - **Codebook values** (Han et al. 2016's weight sharing) are looked up in the inner loop:
//!   `w = centroids[code]`. Codes are stored as `u8` when every code fits (≤ 8-bit codebooks,
//!   the common case), halving the bytes streamed per non-zero compared with `u16`.
//! - **Batch 1 runs on a packed copy** ([`RowPacked`], built by
//!   [`SparseWeights::with_packed_rows`]): `u16` column indices and the codebook expanded to one
//!   `f32` per non-zero at load time (the file stays codebook-coded), compiled for AVX2 when the
//!   CPU has it — 1.7x faster than the CSR kernels; a packed transpose serves the column path.
//! - **A second thread for batch 1** ([`pair_chunks_mut`]): one persistent helper that spins
//!   briefly before parking, for splits too short for rayon. Measured, not used by default.
//! - **Threads**: rows are split across rayon workers only when a call has more than
//!   [`PAR_MIN_WORK`] multiply-adds; batch-1 fully-connected layers of LeNet size stay on one
//!   thread, where a fork/join would cost more than the product.
//! - **Integer kernels** ([`Int8Weights`], [`LowBitWeights`], [`BinaryWeights`]): quantized
//!   weights times activations quantized to int8 per call, exact `i32` sums, one rescale per
//!   output; binary weights by sign-masked sums or XNOR-popcount. AVX2 picked at run time.
//! - **Block-circulant weights** ([`CirculantWeights`]): `b x b` circulant blocks multiplied
//!   with real FFTs (`realfft`), spectra computed once at load time.
//! - No compile-time `target-cpu`: loops are written so the portable (SSE2) build vectorises them.
//!
//! ```
//! use deepshrink_kernels::{Csr, SparseWeights, Values};
//! // W = [[1, 0, 2], [0, 3, 0]]
//! let csr = Csr::new(2, 3, vec![0, 2, 3], vec![0, 2, 1]).unwrap();
//! let w = SparseWeights::new(csr, Values::F32(vec![1.0, 2.0, 3.0])).unwrap();
//! let mut y = vec![0.0; 2];
//! w.matmul(&[1.0, 1.0, 1.0], 1, &mut y).unwrap(); // y = x · Wᵀ
//! assert_eq!(y, vec![3.0, 3.0]);
//! ```
#![deny(missing_docs)]

mod binary;
mod block;
mod circulant;
mod csr;
mod dense;
mod error;
mod free;
mod packed;
mod pair;
mod quant;
#[cfg(target_arch = "x86_64")]
mod quant_x86;
pub mod reference;
mod sparse;
#[cfg(target_arch = "x86_64")]
mod x86;

pub use binary::{pack_signs, BinaryWeights};
pub use block::{BlockPacked, BLOCK, MIN_FILL};
pub use circulant::CirculantWeights;
pub use csr::{
    Csr, SparseWeights, Values, COLUMN_PATH_MAX_DENSITY, COLUMN_PATH_MIN_NNZ_PER_INPUT,
    PACKED_COLUMN_PATH_MAX_DENSITY,
};
pub use dense::dense_gemv;
pub use error::KernelError;
pub use free::{csr_matmul_f32, csr_matmul_lut, csr_spmm_f32, csr_spmm_lut};
pub use packed::{RowPacked, PAIR_MIN_NNZ};
pub use pair::{pair_chunks_mut, SPIN};
pub use quant::{
    pack_codes, packed_code, packed_row_bytes, Int8Weights, LowBitWeights, QuantizedInput, QUANT_MAX_COLS,
};

/// Multiply-adds per call above which a kernel splits its rows across rayon workers.
///
/// Measured on a 2-core machine (bench/kernels.md): a fork/join costs roughly 5–20 µs, so below
/// about 200k multiply-adds (≈ 50 µs of work) one thread is faster.
pub const PAR_MIN_WORK: usize = 200_000;
