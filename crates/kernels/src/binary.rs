//! Binary weights: one sign bit per weight and one scale per row, `w[r, c] = ±scale[r]`
//! (BinaryConnect, Courbariaux et al. 2015; XNOR-Net, Rastegari et al. 2016).
//!
//! Two products:
//! - [`BinaryWeights::gemv_f32`]: binary weights × float activations (BinaryConnect):
//!   `y[r] = scale[r] · (2 Σ_{bit set} x[c] − Σ_c x[c])`, no multiplications by weights.
//! - [`BinaryWeights::matmul`] without `xnor`: the same product with the activations quantized
//!   to int8 per call, run by the 2-bit integer kernel on a copy of the signs as codes `{0, 2}`
//!   with zero point 1 (`±scale`). The masked float sums above cost more than a dense f32 GEMV
//!   (one compare-and-mask per 8 weights); the integer kernel is 4-7x faster than dense
//!   (bench/results/quantization/gemv.md). The copy costs 2 bits per weight in memory only.
//! - [`BinaryWeights::gemv_xnor`]: binary weights × binarized activations (XNOR-Net): the input
//!   becomes `sign(x)` (bit set for `x >= 0`) with one scale `β = mean|x|`, and
//!   `Σ_c sign(w) sign(x) = cols − 2 · popcount(w XOR x)`: 64 products per XOR and popcount.
//!
//! Bits are stored 64 to a `u64`, column `c` of a row at bit `c % 64` of word `c / 64`; padding
//! bits past `cols` are zero in weights and activations alike, so they never count.

use crate::error::{expect_len, KernelError};
use crate::quant::{pack_codes, LowBitWeights};

/// A `rows x cols` binary matrix with per-row scales.
#[derive(Debug, Clone, PartialEq)]
pub struct BinaryWeights {
    rows: usize,
    cols: usize,
    words: usize,
    bits: Vec<u64>,
    scale: Vec<f32>,
    /// The signs as 2-bit codes `{0, 2}` with zero point 1, for int8 activations.
    int8_act: LowBitWeights,
}

/// Packs sign bits into words: bit `c % 64` of word `c / 64` is set when `positive(c)`.
pub fn pack_signs(cols: usize, positive: impl Fn(usize) -> bool, out: &mut Vec<u64>) {
    let start = out.len();
    out.resize(start + cols.div_ceil(64), 0);
    for c in 0..cols {
        if positive(c) {
            out[start + c / 64] |= 1 << (c % 64);
        }
    }
}

impl BinaryWeights {
    /// From rows packed as bytes (`ceil(cols / 8)` per row, column `c` at bit `c % 8` of byte
    /// `c / 8`: the `.dsk` layout) and one finite scale per row. Padding bits must be zero.
    pub fn from_bytes(rows: usize, cols: usize, packed: &[u8], scale: Vec<f32>) -> Result<Self, KernelError> {
        let rb = cols.div_ceil(8);
        expect_len("packed", packed.len(), rows * rb)?;
        expect_len("scale", scale.len(), rows)?;
        if let Some(r) = scale.iter().position(|s| !s.is_finite()) {
            return Err(KernelError::Csr(format!("row {r} has a non-finite scale")));
        }
        let mut bits = Vec::with_capacity(rows * cols.div_ceil(64));
        let mut codes = Vec::with_capacity(rows * cols);
        for row in packed.chunks_exact(rb.max(1)).take(rows) {
            if !cols.is_multiple_of(8) && row[rb - 1] >> (cols % 8) != 0 {
                return Err(KernelError::Csr("non-zero padding bits in a binary row".into()));
            }
            pack_signs(cols, |c| row[c / 8] >> (c % 8) & 1 == 1, &mut bits);
            codes.extend((0..cols).map(|c| 2 * (row[c / 8] >> (c % 8) & 1)));
        }
        let int8_act = LowBitWeights::new(
            2,
            rows,
            cols,
            pack_codes(&codes, rows, cols, 2),
            scale.clone(),
            vec![1; rows],
        )?;
        Ok(BinaryWeights { rows, cols, words: cols.div_ceil(64), bits, scale, int8_act })
    }

    /// Quantizes activations of the int8 path (see [`BinaryWeights::matmul`]) with a fixed
    /// scale, as [`crate::Int8Weights::with_input_scale`].
    pub fn with_input_scale(mut self, s: Option<f32>) -> Result<Self, KernelError> {
        self.int8_act = self.int8_act.with_input_scale(s)?;
        Ok(self)
    }

    /// Number of rows (outputs).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns (inputs).
    pub fn cols(&self) -> usize {
        self.cols
    }

    fn row(&self, r: usize) -> &[u64] {
        &self.bits[r * self.words..(r + 1) * self.words]
    }

    /// BinaryConnect product `y = W x` with float activations.
    pub fn gemv_f32(&self, x: &[f32], y: &mut [f32]) -> Result<(), KernelError> {
        expect_len("x", x.len(), self.cols)?;
        expect_len("y", y.len(), self.rows)?;
        let total: f32 = x.iter().sum();
        for (r, o) in y.iter_mut().enumerate() {
            let w = self.row(r);
            #[cfg(target_arch = "x86_64")]
            let s = if crate::quant_x86::available() {
                // SAFETY: AVX2 checked just above.
                unsafe { crate::quant_x86::masked_sum(w, x) }
            } else {
                masked_sum(w, x)
            };
            #[cfg(not(target_arch = "x86_64"))]
            let s = masked_sum(w, x);
            *o = self.scale[r] * (2.0 * s - total);
        }
        Ok(())
    }

    /// XNOR-Net product: `x` binarized to `sign(x)` with scale `mean|x|`, then XOR and popcount.
    pub fn gemv_xnor(&self, x: &[f32], y: &mut [f32]) -> Result<(), KernelError> {
        expect_len("x", x.len(), self.cols)?;
        expect_len("y", y.len(), self.rows)?;
        let beta =
            if self.cols == 0 { 0.0 } else { x.iter().map(|v| v.abs()).sum::<f32>() / self.cols as f32 };
        let mut xb = Vec::with_capacity(self.words);
        pack_signs(self.cols, |c| x[c] >= 0.0, &mut xb);
        #[cfg(target_arch = "x86_64")]
        let fast = crate::quant_x86::has_popcnt();
        for (r, o) in y.iter_mut().enumerate() {
            let w = self.row(r);
            #[cfg(target_arch = "x86_64")]
            // SAFETY: popcnt checked above.
            let d =
                if fast { unsafe { crate::quant_x86::xor_popcount(w, &xb) } } else { xor_popcount(w, &xb) };
            #[cfg(not(target_arch = "x86_64"))]
            let d = xor_popcount(w, &xb);
            *o = self.scale[r] * beta * (self.cols as i64 - 2 * d as i64) as f32;
        }
        Ok(())
    }

    /// `y = x · Wᵀ` for `batch` rows of `x`: if `xnor`, each with
    /// [`BinaryWeights::gemv_xnor`]; otherwise with the activations quantized to int8 (one
    /// scale per row of `x`) on the 2-bit integer kernel — [`BinaryWeights::gemv_f32`] up to
    /// that quantization.
    pub fn matmul(&self, x: &[f32], batch: usize, y: &mut [f32], xnor: bool) -> Result<(), KernelError> {
        expect_len("x", x.len(), batch * self.cols)?;
        expect_len("y", y.len(), batch * self.rows)?;
        if !xnor {
            return self.int8_act.matmul(x, batch, y);
        }
        for b in 0..batch {
            let (xs, ys) =
                (&x[b * self.cols..(b + 1) * self.cols], &mut y[b * self.rows..(b + 1) * self.rows]);
            self.gemv_xnor(xs, ys)?;
        }
        Ok(())
    }
}

/// `Σ popcount(a[i] XOR b[i])`.
#[inline(always)]
pub(crate) fn xor_popcount(a: &[u64], b: &[u64]) -> u32 {
    a.iter().zip(b).map(|(p, q)| (p ^ q).count_ones()).sum()
}

/// `Σ x[c]` over the set bits `c` of `words`: each bit becomes an all-ones or all-zeros mask
/// on the float's bits, eight independent sums so the loop vectorises.
#[inline(always)]
pub(crate) fn masked_sum(words: &[u64], x: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    for (w, xs) in words.iter().zip(x.chunks(64)) {
        for (k, chunk) in xs.chunks(8).enumerate() {
            let byte = (w >> (8 * k)) as u32;
            for (i, &v) in chunk.iter().enumerate() {
                let m = 0u32.wrapping_sub((byte >> i) & 1);
                acc[i] += f32::from_bits(v.to_bits() & m);
            }
        }
    }
    acc.iter().sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::tests_support::{assert_close, vector};
    use proptest::prelude::*;

    fn signs(rows: usize, cols: usize, seed: u64) -> (Vec<u8>, Vec<bool>) {
        let b: Vec<bool> = vector(rows * cols, seed).iter().map(|v| *v >= 0.0).collect();
        let rb = cols.div_ceil(8);
        let mut packed = vec![0u8; rows * rb];
        for r in 0..rows {
            for c in 0..cols {
                if b[r * cols + c] {
                    packed[r * rb + c / 8] |= 1 << (c % 8);
                }
            }
        }
        (packed, b)
    }

    proptest! {
        #[test]
        fn binary_connect_matches_reference(rows in 0usize..10, cols in 0usize..300, seed in any::<u64>()) {
            let (packed, b) = signs(rows, cols, seed);
            let scale: Vec<f32> = (0..rows).map(|r| 0.5 + r as f32 * 0.1).collect();
            let w = BinaryWeights::from_bytes(rows, cols, &packed, scale.clone()).unwrap();
            let x = vector(cols, seed ^ 5);
            let mut y = vec![0.0; rows];
            w.gemv_f32(&x, &mut y).unwrap();
            let want = crate::reference::binary_gemv(rows, cols, |r, c| b[r * cols + c], &scale, &x);
            let mag: Vec<f32> = scale.iter().map(|s| 2.0 * s * x.iter().map(|v| v.abs()).sum::<f32>()).collect();
            assert_close(&y, &want, &mag)?;
        }

        /// The int8-activation path (2-bit kernel on the signs) against float arithmetic on the
        /// signs and the int8-rounded activations.
        #[test]
        fn int8_activation_path_matches_reference(rows in 0usize..11, cols in 0usize..300, seed in any::<u64>()) {
            let (packed, b) = signs(rows, cols, seed);
            let scale: Vec<f32> = (0..rows).map(|r| 0.5 + r as f32 * 0.1).collect();
            let w = BinaryWeights::from_bytes(rows, cols, &packed, scale.clone()).unwrap();
            let x = vector(cols, seed ^ 5);
            let mut y = vec![0.0; rows];
            w.matmul(&x, 1, &mut y, false).unwrap();
            let xi = crate::quant::QuantizedInput::of(&x);
            let xd: Vec<f32> = xi.q.iter().map(|&v| v as f32 * xi.scale).collect();
            let want = crate::reference::binary_gemv(rows, cols, |r, c| b[r * cols + c], &scale, &xd);
            let mag: Vec<f32> = scale.iter().map(|s| 2.0 * s * xd.iter().map(|v| v.abs()).sum::<f32>()).collect();
            assert_close(&y, &want, &mag)?;
        }

        /// XNOR against the float reference on sign(x) · mean|x|: exact up to the final product.
        #[test]
        fn xnor_matches_reference(rows in 0usize..10, cols in 0usize..300, seed in any::<u64>()) {
            let (packed, b) = signs(rows, cols, seed);
            let scale = vec![1.5; rows];
            let w = BinaryWeights::from_bytes(rows, cols, &packed, scale.clone()).unwrap();
            let x = vector(cols, seed ^ 11);
            let mut y = vec![0.0; rows];
            w.gemv_xnor(&x, &mut y).unwrap();
            let beta = if cols == 0 { 0.0 } else { x.iter().map(|v| v.abs()).sum::<f32>() / cols as f32 };
            let xs: Vec<f32> = x.iter().map(|&v| if v >= 0.0 { 1.0 } else { -1.0 }).collect();
            let want: Vec<f32> = crate::reference::binary_gemv(rows, cols, |r, c| b[r * cols + c], &scale, &xs)
                .iter().map(|v| v * beta).collect();
            let mag = vec![1.5 * beta * cols as f32; rows];
            assert_close(&y, &want, &mag)?;
        }
    }

    #[test]
    fn every_variant_matches_portable() {
        let x = vector(200, 1);
        let mut w = Vec::new();
        pack_signs(200, |c| c % 3 == 0, &mut w);
        let want: f32 = (0..200).filter(|c| c % 3 == 0).map(|c| x[c]).sum();
        assert!((masked_sum(&w, &x) - want).abs() < 1e-4);
        #[cfg(target_arch = "x86_64")]
        if crate::quant_x86::available() && crate::quant_x86::has_popcnt() {
            // SAFETY: features checked just above.
            unsafe {
                assert!((crate::quant_x86::masked_sum(&w, &x) - want).abs() < 1e-4);
                assert_eq!(crate::quant_x86::xor_popcount(&w, &w), 0);
                assert_eq!(crate::quant_x86::xor_popcount(&w, &[0; 4]), 67);
            }
        }
    }

    #[test]
    fn rejects_padding_bits_and_bad_lengths() {
        assert!(BinaryWeights::from_bytes(1, 3, &[0b1000], vec![1.0]).is_err());
        assert!(BinaryWeights::from_bytes(1, 3, &[0b111], vec![1.0]).is_ok());
        assert!(BinaryWeights::from_bytes(2, 3, &[0], vec![1.0; 2]).is_err());
    }
}
