//! Integer kernels for uniformly quantized weights: int8 codes, and 4- or 2-bit codes packed into
//! bytes, each with a per-row scale and zero point, multiplied by activations quantized to int8
//! on the fly (dynamic quantization).
//!
//! A weight is `w[r, c] = scale[r] * (q[r, c] - zero[r])` with integer codes `q`; an activation
//! vector is `x[c] ≈ sx * xq[c]` with `xq` in `[-127, 127]` and `sx = max|x| / 127`. Then
//!
//! ```text
//! y[r] = Σ_c w[r, c] x[c] ≈ scale[r] * sx * (Σ_c q[r, c] xq[c] − zero[r] * Σ_c xq[c])
//! ```
//!
//! The sum over `c` is an exact integer dot product (`i32`); one multiply per output turns it
//! back into floats. Per-tensor quantization is the special case where every row has the same
//! scale and zero point.
//!
//! Inner loops (AVX2, chosen at run time; the portable loops are the fallback and the reference
//! for the tests):
//! - int8: `vpmaddubsw` multiplies unsigned by signed bytes, so the weight's sign is moved onto
//!   the activation (`|q|` times `sign(q)·xq`); pair sums stay below `2·128·127 < 2^15`, then
//!   `vpmaddwd` widens them to `i32`. 32 weights per four instructions.
//! - 4 and 2 bits: codes are unsigned (`0..2^b`), so they feed `vpmaddubsw` directly after a
//!   shift and a mask; the activation is reordered once per call so that the `k`-th code of every
//!   byte of a 32-byte block meets its activation in the same lane. Partial sums are at most
//!   `2·15·127` per instruction, so a block's sub-sums stay in `i16`.
//!
//! No VNNI (`vpdpbusd`) path: the development machine has none to test it on.

use crate::error::{expect_len, KernelError};

/// Largest number of columns: keeps every `i32` accumulator exact (`cols · 128 · 127 < 2^31`).
pub const QUANT_MAX_COLS: usize = 1 << 16;

/// Activations quantized symmetrically to `[-127, 127]`: `x ≈ scale * q`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QuantizedInput {
    /// The codes.
    pub q: Vec<i8>,
    /// `max|x| / 127` (0 if `x` is all zeros).
    pub scale: f32,
    /// `Σ q`, for the zero-point correction.
    pub sum: i32,
}

impl QuantizedInput {
    /// Quantizes `x` into `self`, reusing its buffer: `q = round(x / scale)`, ties to even,
    /// clamped to `[-127, 127]`. Non-finite inputs are left out of the range; NaN quantizes to 0
    /// and ±inf to ±127.
    pub fn quantize(&mut self, x: &[f32]) {
        self.q.resize(x.len(), 0);
        #[cfg(target_arch = "x86_64")]
        if crate::quant_x86::available() {
            // SAFETY: AVX2 checked just above; `q` has `x.len()` elements.
            let amax = unsafe { crate::quant_x86::finite_amax(x) };
            let inv = inv_scale(amax);
            self.scale = amax / 127.0;
            // SAFETY: as above.
            self.sum = unsafe { crate::quant_x86::quantize_codes(x, &mut self.q, inv) };
            return;
        }
        (self.scale, self.sum) = quantize_portable(x, &mut self.q);
    }

    /// Quantizes `x` with a fixed (static, calibrated) `scale > 0`: `q = round(x · (1 /
    /// scale))`, ties to even, clamped to `[-127, 127]` (values beyond the calibrated range
    /// saturate), NaN to 0.
    pub fn quantize_static(&mut self, x: &[f32], scale: f32) {
        self.q.resize(x.len(), 0);
        let inv = 1.0 / scale;
        self.scale = scale;
        #[cfg(target_arch = "x86_64")]
        if crate::quant_x86::available() {
            // SAFETY: AVX2 checked just above; `q` has `x.len()` elements.
            self.sum = unsafe { crate::quant_x86::quantize_codes(x, &mut self.q, inv) };
            return;
        }
        self.sum = codes_portable(x, &mut self.q, inv);
    }

    /// A new quantized copy of `x`.
    pub fn of(x: &[f32]) -> QuantizedInput {
        let mut q = QuantizedInput::default();
        q.quantize(x);
        q
    }
}

/// `max |v|` over the finite `v` (0 if none).
#[inline]
pub(crate) fn finite_amax(x: &[f32]) -> f32 {
    x.iter().fold(0.0f32, |m, v| {
        let a = v.abs();
        if a <= f32::MAX {
            m.max(a)
        } else {
            m
        }
    })
}

/// `1 / scale` for the codes, 0 when the range is empty.
#[inline]
pub(crate) fn inv_scale(amax: f32) -> f32 {
    if amax > 0.0 {
        127.0 / amax
    } else {
        0.0
    }
}

/// One activation code: `v * inv` rounded half to even (the 1.5·2^23 trick, exact for the
/// clamped range, and what `vcvtps2dq` does), clamped to `[-127, 127]`, NaN to 0.
#[inline(always)]
pub(crate) fn quantize_one(v: f32, inv: f32) -> i8 {
    let t = v * inv;
    if t.is_nan() {
        return 0;
    }
    ((t.clamp(-127.0, 127.0) + 12_582_912.0) - 12_582_912.0) as i8
}

/// Portable activation quantization: returns `(scale, Σq)`.
pub(crate) fn quantize_portable(x: &[f32], q: &mut [i8]) -> (f32, i32) {
    let amax = finite_amax(x);
    (amax / 127.0, codes_portable(x, q, inv_scale(amax)))
}

/// Portable activation codes for `1 / scale = inv`: returns `Σq`.
fn codes_portable(x: &[f32], q: &mut [i8], inv: f32) -> i32 {
    let mut sum = 0i32;
    for (o, &v) in q.iter_mut().zip(x) {
        *o = quantize_one(v, inv);
        sum += *o as i32;
    }
    sum
}

/// Per-row scales and zero points, checked.
fn check_rows(rows: usize, cols: usize, scale: &[f32], zero: &[i32]) -> Result<(), KernelError> {
    expect_len("scale", scale.len(), rows)?;
    expect_len("zero", zero.len(), rows)?;
    if cols > QUANT_MAX_COLS {
        return Err(KernelError::Csr(format!(
            "{cols} columns, at most {QUANT_MAX_COLS} for integer kernels"
        )));
    }
    if let Some(r) = scale.iter().position(|s| !s.is_finite()) {
        return Err(KernelError::Csr(format!("row {r} has a non-finite scale")));
    }
    Ok(())
}

/// `y[r] = scale[r] * sx * (acc[r] - zero[r] * Σxq)`.
#[inline]
fn rescale(acc: i32, scale: f32, zero: i32, x: &QuantizedInput) -> f32 {
    let exact = acc as i64 - zero as i64 * x.sum as i64;
    scale * x.scale * exact as f32
}

/// Int8 weights, row-major `[rows, cols]`, one scale and zero point per row.
///
/// Rows are kept in memory with a stride rounded up to 32 codes (zero padding), and activations
/// are padded alike, so the SIMD loop has no scalar tail (a 5x5 convolution has 25 inputs).
/// Rows are stored in tiles of [`TILE_ROWS`] (the last tile padded with zero rows), block by
/// block: tile `t`, block `k` holds 32 codes of each of its rows one after the other, so the
/// kernel reads one sequential stream (the hardware prefetcher follows one stream well, eight
/// short ones badly) and every activation load serves eight rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Int8Weights {
    rows: usize,
    cols: usize,
    stride: usize,
    /// No code is -128 (the faster sign trick applies).
    no_min: bool,
    /// Every zero point is 0 (the rescale needs no correction term).
    symmetric: bool,
    /// Tiled codes, `ceil(rows / TILE_ROWS) * TILE_ROWS * stride` bytes.
    q: Vec<i8>,
    scale: Vec<f32>,
    zero: Vec<i32>,
    /// Static activation scale; `None`: dynamic.
    input_scale: Option<f32>,
}

/// Rows per tile of [`Int8Weights`] and [`LowBitWeights`].
const TILE_ROWS: usize = 8;

/// `rows` rows of `row_len` elements (row-major `src`) laid out in tiles of [`TILE_ROWS`] rows,
/// block by block: each row zero-padded to `stride` elements (a multiple of 32), block `k` (32
/// elements) of row `r` at [`tile_offset`], the last tile padded with zero rows.
fn tile<T: Copy + Default>(src: &[T], rows: usize, row_len: usize, stride: usize) -> Vec<T> {
    let mut tiled = vec![T::default(); rows.next_multiple_of(TILE_ROWS) * stride];
    for r in 0..rows {
        for (k, block) in src[r * row_len..(r + 1) * row_len].chunks(32).enumerate() {
            let at = tile_offset(stride, r, k);
            tiled[at..at + block.len()].copy_from_slice(block);
        }
    }
    tiled
}

/// Where block `k` of row `r` starts in a [`tile`]d layout of `stride` elements per row.
#[inline]
fn tile_offset(stride: usize, r: usize, k: usize) -> usize {
    let (t, i) = (r / TILE_ROWS, r % TILE_ROWS);
    t * TILE_ROWS * stride + (k * TILE_ROWS + i) * 32
}

/// The portable product of [`tile`]d weights (`stride` elements per row) with activations of
/// `x_block` codes per 32-element weight block: `acc[r] = Σ_k dot(block k of row r, x block k)`.
fn tiled_dot_portable<T>(
    tiles: &[T],
    stride: usize,
    xq: &[i8],
    x_block: usize,
    acc: &mut [i32],
    dot: impl Fn(&[T], &[i8]) -> i32,
) {
    if stride == 0 {
        acc.fill(0);
        return;
    }
    for (a, tile) in acc.chunks_mut(TILE_ROWS).zip(tiles.chunks_exact(TILE_ROWS * stride)) {
        a.fill(0);
        for (k, x) in xq.chunks_exact(x_block).enumerate() {
            for (i, o) in a.iter_mut().enumerate() {
                let at = (k * TILE_ROWS + i) * 32;
                *o += dot(&tile[at..at + 32], x);
            }
        }
    }
}

/// Quantizes `x` into `buf` (with the static scale if there is one), zero-padded to `len` codes.
fn quantize_padded(x: &[f32], len: usize, input_scale: Option<f32>, buf: &mut QuantizedInput) {
    match input_scale {
        Some(s) => buf.quantize_static(x, s),
        None => buf.quantize(x),
    }
    buf.q.resize(len, 0);
}

/// Checks a static activation scale.
fn check_input_scale(s: Option<f32>) -> Result<Option<f32>, KernelError> {
    match s {
        Some(v) if !(v.is_finite() && v > 0.0) => {
            Err(KernelError::Csr(format!("static activation scale {v} is not finite and > 0")))
        }
        _ => Ok(s),
    }
}

/// `y[r] = scale[r] * sx * (acc[r] - zero[r] * Σxq)` for every row; without zero points the
/// loop is a plain convert-and-multiply that the compiler vectorises.
fn rescale_rows(
    acc: &[i32],
    scale: &[f32],
    zero: &[i32],
    symmetric: bool,
    x: &QuantizedInput,
    y: &mut [f32],
) {
    if symmetric {
        let sx = x.scale;
        for ((o, &a), &s) in y.iter_mut().zip(acc).zip(scale) {
            *o = s * sx * a as f32;
        }
    } else {
        for (((o, &a), &s), &z) in y.iter_mut().zip(acc).zip(scale).zip(zero) {
            *o = rescale(a, s, z, x);
        }
    }
}

impl Int8Weights {
    /// Checks the lengths (`q`: `rows * cols`; `scale`, `zero`: `rows`), that scales are finite
    /// and that `cols <= QUANT_MAX_COLS`.
    pub fn new(
        rows: usize,
        cols: usize,
        q: Vec<i8>,
        scale: Vec<f32>,
        zero: Vec<i32>,
    ) -> Result<Self, KernelError> {
        expect_len("q", q.len(), rows * cols)?;
        check_rows(rows, cols, &scale, &zero)?;
        let no_min = !q.contains(&i8::MIN);
        let symmetric = zero.iter().all(|&z| z == 0);
        let stride = cols.next_multiple_of(32);
        let q = tile(&q, rows, cols, stride);
        Ok(Int8Weights { rows, cols, stride, no_min, symmetric, q, scale, zero, input_scale: None })
    }

    /// Quantizes activations with a fixed, calibrated scale (`Some(s)`, finite and `> 0`) instead
    /// of `max|x| / 127` per call (`None`).
    pub fn with_input_scale(mut self, s: Option<f32>) -> Result<Self, KernelError> {
        self.input_scale = check_input_scale(s)?;
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

    /// The integer dot products `acc[r] = Σ_c q[r, c] xq[c]` (`xq` in `[-127, 127]`).
    pub fn dot_rows(&self, xq: &[i8], acc: &mut [i32]) -> Result<(), KernelError> {
        expect_len("xq", xq.len(), self.cols)?;
        expect_len("acc", acc.len(), self.rows)?;
        let mut xp = xq.to_vec();
        xp.resize(self.stride, 0);
        self.dot_padded(&xp, acc);
        Ok(())
    }

    /// [`Int8Weights::dot_rows`] on activations already padded to the stride.
    fn dot_padded(&self, xq: &[i8], acc: &mut [i32]) {
        #[cfg(target_arch = "x86_64")]
        if crate::quant_x86::available() && self.stride > 0 {
            let tile_len = TILE_ROWS * self.stride;
            for (a, tile) in acc.chunks_mut(TILE_ROWS).zip(self.q.chunks_exact(tile_len)) {
                // SAFETY: AVX2 checked above; a tile holds `TILE_ROWS * stride` codes and `xq`
                // `stride`; `no_min` is true only if no code is -128.
                let t = unsafe { crate::quant_x86::dot_i8_x8(tile, xq, self.no_min) };
                a.copy_from_slice(&t[..a.len()]);
            }
            return;
        }
        self.dot_padded_portable(xq, acc);
    }

    /// The portable loop of [`Int8Weights::dot_padded`] (and the tests' check of the layout).
    fn dot_padded_portable(&self, xq: &[i8], acc: &mut [i32]) {
        tiled_dot_portable(&self.q, self.stride, xq, 32, acc, dot_i8);
    }

    /// `y = x · Wᵀ` for `batch` rows of `x` (`[batch, cols]`), each quantized dynamically
    /// (its own scale), into `y` (`[batch, rows]`).
    pub fn matmul(&self, x: &[f32], batch: usize, y: &mut [f32]) -> Result<(), KernelError> {
        expect_len("x", x.len(), batch * self.cols)?;
        expect_len("y", y.len(), batch * self.rows)?;
        let mut xq = QuantizedInput::default();
        let mut acc = vec![0i32; self.rows];
        for b in 0..batch {
            quantize_padded(&x[b * self.cols..(b + 1) * self.cols], self.stride, self.input_scale, &mut xq);
            self.dot_padded(&xq.q, &mut acc);
            let out = &mut y[b * self.rows..(b + 1) * self.rows];
            rescale_rows(&acc, &self.scale, &self.zero, self.symmetric, &xq, out);
        }
        Ok(())
    }
}

/// Portable int8 dot product (auto-vectorised).
pub(crate) fn dot_i8(w: &[i8], x: &[i8]) -> i32 {
    w.iter().zip(x).map(|(&a, &b)| a as i32 * b as i32).sum()
}

/// Weights of 4 or 2 bits, `8 / bits` unsigned codes per byte, the first column in the low
/// bits; each row starts on a byte (`row_bytes = ceil(cols * bits / 8)`, unused high bits 0).
///
/// In memory each row is padded with zero bytes to a multiple of 32 bytes (64 or 128 codes),
/// and activations with zeros alike, so the SIMD loop has no scalar tail.
#[derive(Debug, Clone, PartialEq)]
pub struct LowBitWeights {
    bits: u32,
    rows: usize,
    cols: usize,
    /// Bytes per row in memory (a multiple of 32).
    stride: usize,
    /// Packed rows in tiles of [`TILE_ROWS`], laid out as [`Int8Weights`]' codes.
    packed: Vec<u8>,
    scale: Vec<f32>,
    zero: Vec<i32>,
    /// Static activation scale; `None`: dynamic.
    input_scale: Option<f32>,
}

/// Bytes of one packed row of `cols` codes of `bits` bits.
pub fn packed_row_bytes(cols: usize, bits: u32) -> usize {
    (cols * bits as usize).div_ceil(8)
}

/// Packs codes (each `< 2^bits`, `bits` in 1, 2, 4, 8) row by row, first column in the low bits.
pub fn pack_codes(codes: &[u8], rows: usize, cols: usize, bits: u32) -> Vec<u8> {
    let (rb, per) = (packed_row_bytes(cols, bits), 8 / bits as usize);
    let mut out = vec![0u8; rows * rb];
    for r in 0..rows {
        for c in 0..cols {
            out[r * rb + c / per] |= codes[r * cols + c] << ((c % per) as u32 * bits);
        }
    }
    out
}

/// The code of column `c` in a packed row.
#[inline]
pub fn packed_code(row: &[u8], c: usize, bits: u32) -> u8 {
    let per = 8 / bits as usize;
    (row[c / per] >> ((c % per) as u32 * bits)) & ((1u16 << bits) - 1) as u8
}

impl LowBitWeights {
    /// Checks `bits` (4 or 2), the lengths (`packed`: `rows * ceil(cols * bits / 8)`; `scale`,
    /// `zero`: `rows`), finite scales and `cols <= QUANT_MAX_COLS`.
    pub fn new(
        bits: u32,
        rows: usize,
        cols: usize,
        packed: Vec<u8>,
        scale: Vec<f32>,
        zero: Vec<i32>,
    ) -> Result<Self, KernelError> {
        if bits != 4 && bits != 2 {
            return Err(KernelError::Csr(format!("{bits}-bit codes; the low-bit kernel runs 4 or 2")));
        }
        let row_bytes = packed_row_bytes(cols, bits);
        expect_len("packed", packed.len(), rows * row_bytes)?;
        check_rows(rows, cols, &scale, &zero)?;
        let stride = row_bytes.next_multiple_of(32);
        let packed = tile(&packed, rows, row_bytes, stride);
        Ok(LowBitWeights { bits, rows, cols, stride, packed, scale, zero, input_scale: None })
    }

    /// As [`Int8Weights::with_input_scale`].
    pub fn with_input_scale(mut self, s: Option<f32>) -> Result<Self, KernelError> {
        self.input_scale = check_input_scale(s)?;
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

    /// Bits per code.
    pub fn bits(&self) -> u32 {
        self.bits
    }

    /// Codes per padded row.
    fn padded_cols(&self) -> usize {
        self.stride * 8 / self.bits as usize
    }

    /// The integer dot products `acc[r] = Σ_c q[r, c] xq[c]` (`xq` in `[-127, 127]`).
    pub fn dot_rows(&self, xq: &[i8], acc: &mut [i32]) -> Result<(), KernelError> {
        expect_len("xq", xq.len(), self.cols)?;
        expect_len("acc", acc.len(), self.rows)?;
        let mut xp = xq.to_vec();
        xp.resize(self.padded_cols(), 0);
        self.dot_padded(&xp, acc, &mut Vec::new());
        Ok(())
    }

    /// [`LowBitWeights::dot_rows`] on activations padded to the row stride; `scratch` holds the
    /// reordered activations between calls.
    fn dot_padded(&self, xq: &[i8], acc: &mut [i32], scratch: &mut Vec<i8>) {
        let rb = self.stride;
        if rb == 0 {
            acc.fill(0);
            return;
        }
        #[cfg(target_arch = "x86_64")]
        if crate::quant_x86::available() {
            let per = 8 / self.bits as usize;
            let (block, nb) = (32 * per, rb / 32);
            // Activations reordered so that lane j of sub-block s holds column per*j + s.
            scratch.resize(nb * block, 0);
            for (b, dst) in scratch.chunks_exact_mut(block).enumerate() {
                let src = &xq[b * block..(b + 1) * block];
                for s in 0..per {
                    for j in 0..32 {
                        dst[s * 32 + j] = src[per * j + s];
                    }
                }
            }
            for (a, tile) in acc.chunks_mut(TILE_ROWS).zip(self.packed.chunks_exact(TILE_ROWS * rb)) {
                // SAFETY: AVX2 checked above; a tile has `TILE_ROWS * nb * 32` bytes and the
                // scratch `nb * block` codes.
                let t = unsafe { crate::quant_x86::dot_lowbit_x8(tile, scratch, nb, self.bits) };
                a.copy_from_slice(&t[..a.len()]);
            }
            return;
        }
        self.dot_padded_portable(xq, acc);
    }

    /// The portable loop of [`LowBitWeights::dot_padded`] on the tiled layout.
    fn dot_padded_portable(&self, xq: &[i8], acc: &mut [i32]) {
        let x_block = 32 * 8 / self.bits as usize;
        tiled_dot_portable(&self.packed, self.stride, xq, x_block, acc, |w, x| dot_packed(w, x, self.bits));
    }

    /// `y = x · Wᵀ` for `batch` rows of `x`, each quantized dynamically.
    pub fn matmul(&self, x: &[f32], batch: usize, y: &mut [f32]) -> Result<(), KernelError> {
        expect_len("x", x.len(), batch * self.cols)?;
        expect_len("y", y.len(), batch * self.rows)?;
        let mut xq = QuantizedInput::default();
        let (mut acc, mut scratch) = (vec![0i32; self.rows], Vec::new());
        for b in 0..batch {
            let xs = &x[b * self.cols..(b + 1) * self.cols];
            quantize_padded(xs, self.padded_cols(), self.input_scale, &mut xq);
            self.dot_padded(&xq.q, &mut acc, &mut scratch);
            let out = &mut y[b * self.rows..(b + 1) * self.rows];
            rescale_rows(&acc, &self.scale, &self.zero, false, &xq, out);
        }
        Ok(())
    }
}

/// Portable `Σ_c q[c] xq[c]` over a packed row (`xq` covers every code of the row's bytes).
fn dot_packed(row: &[u8], xq: &[i8], bits: u32) -> i32 {
    let per = 8 / bits as usize;
    let mask = ((1u16 << bits) - 1) as u8;
    let mut s = 0i32;
    for (byte, xs) in row.iter().zip(xq.chunks_exact(per)) {
        for (k, &xv) in xs.iter().enumerate() {
            s += ((byte >> (k as u32 * bits)) & mask) as i32 * xv as i32;
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::tests_support::vector;
    use proptest::prelude::*;

    fn codes(n: usize, seed: u64, bits: u32) -> Vec<u8> {
        let m = (1u32 << bits) as f32;
        vector(n, seed).iter().map(|v| (((v + 1.0) / 2.0 * m) as u32).min(m as u32 - 1) as u8).collect()
    }

    fn xq(n: usize, seed: u64) -> Vec<i8> {
        vector(n, seed).iter().map(|v| (v * 127.0).round() as i8).collect()
    }

    proptest! {
        /// The integer products are exact: the fast path equals the scalar reference bit for bit,
        /// with and without -128 among the weights (two kernels).
        #[test]
        fn int8_dot_matches_reference(rows in 0usize..12, cols in 0usize..300, seed in any::<u64>(), min in any::<bool>()) {
            // Full i8 range for weights (or -127..=127), [-127, 127] for activations.
            let q: Vec<i8> =
                codes(rows * cols, seed, 8).iter().map(|&c| if min { c as i8 } else { (c as i8).max(-127) }).collect();
            let x = xq(cols, seed ^ 7);
            let w = Int8Weights::new(rows, cols, q.clone(), vec![1.0; rows], vec![0; rows]).unwrap();
            let mut acc = vec![0; rows];
            w.dot_rows(&x, &mut acc).unwrap();
            let want = crate::reference::int_dot_rows(rows, cols, |r, c| q[r * cols + c] as i32, &x);
            prop_assert_eq!(&acc, &want);
            if cols > 0 {
                let portable: Vec<i32> = q.chunks(cols).map(|w| dot_i8(w, &x)).collect();
                prop_assert_eq!(&portable, &want);
            }
            // The tiled portable loop, whichever path the CPU takes above.
            let mut xpad = x.clone();
            xpad.resize(cols.next_multiple_of(32), 0);
            let mut tiled = vec![0; rows];
            w.dot_padded_portable(&xpad, &mut tiled);
            prop_assert_eq!(&tiled, &want);
        }

        #[test]
        fn lowbit_dot_matches_reference(
            bits in prop_oneof![Just(2u32), Just(4u32)],
            rows in 0usize..10,
            cols in 0usize..600,
            seed in any::<u64>(),
        ) {
            let c = codes(rows * cols, seed, bits);
            let w = LowBitWeights::new(bits, rows, cols, pack_codes(&c, rows, cols, bits), vec![1.0; rows], vec![0; rows])
                .unwrap();
            let x = xq(cols, seed ^ 3);
            let mut acc = vec![0; rows];
            w.dot_rows(&x, &mut acc).unwrap();
            let want = crate::reference::int_dot_rows(rows, cols, |r, k| c[r * cols + k] as i32, &x);
            prop_assert_eq!(&acc, &want);
            // The portable loop, whichever path the CPU takes above.
            let rb = packed_row_bytes(cols, bits);
            if rb > 0 {
                let mut xpad = x.clone();
                xpad.resize(rb * (8 / bits as usize), 0);
                let packed = pack_codes(&c, rows, cols, bits);
                let portable: Vec<i32> = packed.chunks(rb).map(|row| dot_packed(row, &xpad, bits)).collect();
                prop_assert_eq!(&portable, &want);
                xpad.resize(rb.next_multiple_of(32) * (8 / bits as usize), 0);
                let mut tiled = vec![0; rows];
                w.dot_padded_portable(&xpad, &mut tiled);
                prop_assert_eq!(&tiled, &want);
            }
        }

        /// End to end against f32 arithmetic on the dequantized weights and inputs.
        #[test]
        fn int8_matmul_matches_dequantized(rows in 1usize..8, cols in 1usize..200, seed in any::<u64>()) {
            let q: Vec<i8> = codes(rows * cols, seed, 8).iter().map(|&c| c as i8).collect();
            let scale: Vec<f32> = (0..rows).map(|r| 0.01 + r as f32 * 0.003).collect();
            let zero: Vec<i32> = (0..rows).map(|r| r as i32 * 5 - 10).collect();
            let w = Int8Weights::new(rows, cols, q.clone(), scale.clone(), zero.clone()).unwrap();
            let x = vector(cols, seed ^ 9);
            let mut y = vec![0.0; rows];
            w.matmul(&x, 1, &mut y).unwrap();
            let xi = QuantizedInput::of(&x);
            let wd: Vec<f32> = (0..rows * cols).map(|i| scale[i / cols] * (q[i] as i32 - zero[i / cols]) as f32).collect();
            let xd: Vec<f32> = xi.q.iter().map(|&v| v as f32 * xi.scale).collect();
            let mut want = vec![0.0; rows];
            crate::reference::dense_gemv(rows, cols, &wd, &xd, &mut want);
            let s = crate::reference::tests_support::abs_gemv(rows, cols, &wd, &xd);
            crate::reference::tests_support::assert_close(&y, &want, &s)?;
        }
    }

    #[test]
    fn quantize_input_is_symmetric_and_rounds() {
        let x = QuantizedInput::of(&[0.0, 1.0, -2.0, 0.5]);
        assert_eq!(x.q, vec![0, 64, -127, 32]); // 63.5 rounds to even (64); 31.75 -> 32
        assert_eq!(x.scale, 2.0 / 127.0);
        assert_eq!(x.sum, -31);
        assert_eq!(QuantizedInput::of(&[0.0; 3]).q, vec![0; 3]);
    }

    /// The AVX2 and the portable quantizers agree exactly, ties, NaN and infinities included.
    #[test]
    fn quantize_variants_agree() {
        for n in [0usize, 1, 7, 31, 32, 33, 100, 385] {
            let mut x = vector(n, n as u64);
            if n > 40 {
                x[3] = f32::NAN;
                x[5] = f32::INFINITY;
                x[9] = f32::NEG_INFINITY;
                x[11] = 2.5 * x[20].abs() / 127.0 * 127.0;
            }
            let mut q = vec![0i8; n];
            let (s, sum) = quantize_portable(&x, &mut q);
            let fast = QuantizedInput::of(&x);
            assert_eq!((fast.scale, fast.sum, &fast.q), (s, sum, &q), "n = {n}");
            assert_eq!(sum, q.iter().map(|&v| v as i32).sum::<i32>());
        }
        assert_eq!(quantize_one(0.5, 1.0), 0);
        assert_eq!(quantize_one(1.5, 1.0), 2);
        assert_eq!(quantize_one(-2.5, 1.0), -2);
    }

    /// The extreme case of the `i16` runs in the low-bit kernel: every code at its maximum
    /// and every activation at ±127 over many blocks, exact.
    #[test]
    fn lowbit_extremes_are_exact() {
        for bits in [2u32, 4] {
            let (rows, cols) = (9, 64 * 23);
            let top = (1u8 << bits) - 1;
            let c = vec![top; rows * cols];
            for sign in [127i8, -127] {
                let x = vec![sign; cols];
                let packed = pack_codes(&c, rows, cols, bits);
                let w = LowBitWeights::new(bits, rows, cols, packed, vec![1.0; rows], vec![0; rows]).unwrap();
                let mut acc = vec![0; rows];
                w.dot_rows(&x, &mut acc).unwrap();
                assert_eq!(acc, vec![top as i32 * sign as i32 * cols as i32; rows], "{bits} bits");
            }
        }
    }

    /// A static scale: the codes are `round(x / s)` saturated at ±127 (the AVX2 and portable
    /// loops agree), and the product equals float arithmetic on those codes.
    #[test]
    fn static_input_scale_saturates_and_matches() {
        let x: Vec<f32> = vector(70, 4).iter().map(|v| v * 3.0).collect();
        let s = 1.5 / 127.0; // calibrated to |x| <= 1.5: larger inputs saturate
        let mut fast = QuantizedInput::default();
        fast.quantize_static(&x, s);
        let mut q = vec![0i8; x.len()];
        let sum = codes_portable(&x, &mut q, 1.0 / s);
        assert_eq!((&fast.q, fast.sum, fast.scale), (&q, sum, s));
        assert!(q.contains(&127) && q.contains(&-127));
        let (rows, cols) = (5, 70);
        let codes: Vec<i8> = codes(rows * cols, 8, 8).iter().map(|&c| c as i8).collect();
        let scale: Vec<f32> = (0..rows).map(|r| 0.01 + r as f32 * 0.002).collect();
        let w = Int8Weights::new(rows, cols, codes.clone(), scale.clone(), vec![0; rows])
            .unwrap()
            .with_input_scale(Some(s))
            .unwrap();
        let mut y = vec![0.0; rows];
        w.matmul(&x, 1, &mut y).unwrap();
        let wd: Vec<f32> = (0..rows * cols).map(|i| scale[i / cols] * codes[i] as f32).collect();
        let xd: Vec<f32> = q.iter().map(|&v| v as f32 * s).collect();
        let mut want = vec![0.0; rows];
        crate::reference::dense_gemv(rows, cols, &wd, &xd, &mut want);
        let m = crate::reference::tests_support::abs_gemv(rows, cols, &wd, &xd);
        crate::reference::tests_support::assert_close(&y, &want, &m).unwrap();
        assert!(Int8Weights::new(1, 1, vec![1], vec![1.0], vec![0])
            .unwrap()
            .with_input_scale(Some(0.0))
            .is_err());
    }

    #[test]
    fn pack_codes_low_bits_first() {
        assert_eq!(pack_codes(&[1, 2, 3], 1, 3, 4), vec![0x21, 0x03]);
        assert_eq!(pack_codes(&[1, 2, 3, 0, 1], 1, 5, 2), vec![0b00_11_10_01, 0b01]);
        assert_eq!(packed_code(&[0x21, 0x03], 1, 4), 2);
    }

    #[test]
    fn rejects_bad_shapes() {
        assert!(Int8Weights::new(2, 3, vec![0; 5], vec![1.0; 2], vec![0; 2]).is_err());
        assert!(Int8Weights::new(1, 3, vec![0; 3], vec![f32::NAN], vec![0]).is_err());
        assert!(LowBitWeights::new(3, 1, 8, vec![0; 3], vec![1.0], vec![0]).is_err());
        assert!(LowBitWeights::new(4, 1, 9, vec![0; 4], vec![1.0], vec![0]).is_err());
        let w = Int8Weights::new(1, 2, vec![1, 2], vec![1.0], vec![0]).unwrap();
        assert!(w.matmul(&[1.0], 1, &mut [0.0]).is_err());
    }
}
