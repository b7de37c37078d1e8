//! Plain scalar reference implementations: one loop nest each, checked indexing, summation in
//! storage order. The fast kernels are tested against these; they are not meant to be fast.

/// Reference `y = x · Wᵀ`: `y[b*rows + r] = Σ_j value(j) * x[b*cols + col_idx[j]]` over the
/// non-zeros `j` of row `r`. Panics if the buffers do not fit.
#[allow(clippy::too_many_arguments)]
pub fn csr_matmul(
    rows: usize,
    cols: usize,
    row_ptr: &[u32],
    col_idx: &[u32],
    value: impl Fn(usize) -> f32,
    x: &[f32],
    batch: usize,
    y: &mut [f32],
) {
    for b in 0..batch {
        for r in 0..rows {
            let mut s = 0.0f32;
            for j in row_ptr[r] as usize..row_ptr[r + 1] as usize {
                s += value(j) * x[b * cols + col_idx[j] as usize];
            }
            y[b * rows + r] = s;
        }
    }
}

/// Reference `Y = W × B` for `B` row-major `[cols, n]`, `Y` `[rows, n]`. Panics if the buffers do
/// not fit.
#[allow(clippy::too_many_arguments)]
pub fn csr_spmm(
    rows: usize,
    cols: usize,
    row_ptr: &[u32],
    col_idx: &[u32],
    value: impl Fn(usize) -> f32,
    b: &[f32],
    n: usize,
    y: &mut [f32],
) {
    assert_eq!(b.len(), cols * n);
    for r in 0..rows {
        for k in 0..n {
            let mut s = 0.0f32;
            for j in row_ptr[r] as usize..row_ptr[r + 1] as usize {
                s += value(j) * b[col_idx[j] as usize * n + k];
            }
            y[r * n + k] = s;
        }
    }
}

/// Reference dense `y = W x` for row-major `W` (`rows x cols`). Panics if the buffers do not fit.
pub fn dense_gemv(rows: usize, cols: usize, w: &[f32], x: &[f32], y: &mut [f32]) {
    for r in 0..rows {
        y[r] = (0..cols).map(|c| w[r * cols + c] * x[c]).sum();
    }
}

/// Reference integer products `acc[r] = Σ_c q(r, c) · x[c]` in `i64`, for `rows x cols` codes
/// given by `q`. Panics if the sum leaves `i32`.
pub fn int_dot_rows(rows: usize, cols: usize, q: impl Fn(usize, usize) -> i32, x: &[i8]) -> Vec<i32> {
    (0..rows)
        .map(|r| {
            let s: i64 = (0..cols).map(|c| q(r, c) as i64 * x[c] as i64).sum();
            i32::try_from(s).expect("integer product fits i32")
        })
        .collect()
}

/// Reference binary × f32 product: `y[r] = scale[r] · Σ_c ±x[c]`, `+` where bit `c` of row `r`
/// is set (`bit(r, c)`).
pub fn binary_gemv(
    rows: usize,
    cols: usize,
    bit: impl Fn(usize, usize) -> bool,
    scale: &[f32],
    x: &[f32],
) -> Vec<f32> {
    (0..rows)
        .map(|r| scale[r] * (0..cols).map(|c| if bit(r, c) { x[c] } else { -x[c] }).sum::<f32>())
        .collect()
}

/// The dense `rows x cols` block-circulant matrix with blocks of `block` (row-major): entry
/// `(r, c)` is `values[((r / b) · q + c / b) · b + ((r mod b − c mod b) mod b)]`, negated where
/// `negative[c]`, with `q = ceil(cols / b)` (see [`crate::CirculantWeights`]).
pub fn circulant_dense(
    rows: usize,
    cols: usize,
    block: usize,
    values: &[f32],
    negative: Option<&[bool]>,
) -> Vec<f32> {
    let q = cols.div_ceil(block);
    let mut w = Vec::with_capacity(rows * cols);
    for r in 0..rows {
        for c in 0..cols {
            let k = (r % block + block - c % block) % block;
            let v = values[((r / block) * q + c / block) * block + k];
            w.push(if negative.is_some_and(|n| n[c]) { -v } else { v });
        }
    }
    w
}

/// Random inputs and the normalised comparison the property tests share.
#[cfg(test)]
pub(crate) mod tests_support {
    /// Normalised tolerance: `|fast - ref| <= TOL * Σ|w·x|` for each output (the f32 rounding
    /// of a sum grows with the sum of the magnitudes of its terms, not with its value).
    pub const TOL: f32 = 1e-5;

    /// A deterministic pseudo-random vector in [-1, 1) (splitmix64).
    pub fn vector(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
                let mut z = s;
                z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
                ((z ^ (z >> 31)) >> 40) as f32 / (1u64 << 23) as f32 - 1.0
            })
            .collect()
    }

    /// `Σ_c |w[r,c] x[c]|` per row.
    pub fn abs_gemv(rows: usize, cols: usize, w: &[f32], x: &[f32]) -> Vec<f32> {
        let (wa, xa): (Vec<f32>, Vec<f32>) =
            (w.iter().map(|v| v.abs()).collect(), x.iter().map(|v| v.abs()).collect());
        let mut y = vec![0.0; rows];
        super::dense_gemv(rows, cols, &wa, &xa, &mut y);
        y
    }

    /// Fails the property if any output differs from the reference by more than the tolerance.
    pub fn assert_close(
        fast: &[f32],
        slow: &[f32],
        scale: &[f32],
    ) -> Result<(), proptest::test_runner::TestCaseError> {
        proptest::prop_assert_eq!(fast.len(), slow.len());
        for (i, ((f, s), a)) in fast.iter().zip(slow).zip(scale).enumerate() {
            proptest::prop_assert!(
                (f - s).abs() <= TOL * a.max(f32::MIN_POSITIVE),
                "output {i}: fast {f} vs reference {s} (scale {a})"
            );
        }
        Ok(())
    }
}
