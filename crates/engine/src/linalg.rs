//! A checked, safe front to the `gemm` crate's matrix product.

/// A read-only strided matrix view: element (i, j) is `data[i * rs + j * cs]`.
#[derive(Clone, Copy)]
pub(crate) struct Mat<'a> {
    pub data: &'a [f32],
    pub rows: usize,
    pub cols: usize,
    pub rs: usize,
    pub cs: usize,
}

impl<'a> Mat<'a> {
    /// Row-major `rows x cols`.
    pub fn rm(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Mat { data, rows, cols, rs: cols, cs: 1 }
    }

    /// The transpose (no copy).
    pub fn t(self) -> Self {
        Mat { data: self.data, rows: self.cols, cols: self.rows, rs: self.cs, cs: self.rs }
    }

    fn span(&self) -> usize {
        if self.rows == 0 || self.cols == 0 {
            0
        } else {
            (self.rows - 1) * self.rs + (self.cols - 1) * self.cs + 1
        }
    }
}

/// `dst = acc * dst + scale * a b` where `dst` is `a.rows x b.cols` with row stride `dst_rs` and
/// column stride `dst_cs`. `acc` is 0 (overwrite) or 1 (accumulate). Uses both cores for large
/// products.
pub(crate) fn matmul_strided(
    dst: &mut [f32],
    dst_rs: usize,
    dst_cs: usize,
    a: Mat,
    b: Mat,
    acc: bool,
    scale: f32,
) {
    let parallel = a.rows * a.cols * b.cols >= 1 << 16;
    matmul_impl(dst, dst_rs, dst_cs, a, b, acc, scale, parallel)
}

/// [`matmul`] on the calling thread only, for callers that already run one product per thread.
pub(crate) fn matmul_seq(dst: &mut [f32], a: Mat, b: Mat, acc: bool, scale: f32) {
    let n = b.cols;
    matmul_impl(dst, n, 1, a, b, acc, scale, false)
}

#[allow(clippy::too_many_arguments)]
fn matmul_impl(
    dst: &mut [f32],
    dst_rs: usize,
    dst_cs: usize,
    a: Mat,
    b: Mat,
    acc: bool,
    scale: f32,
    parallel: bool,
) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert_eq!(k, b.rows, "inner dimensions differ");
    assert!(a.data.len() >= a.span() && b.data.len() >= b.span(), "operand view out of bounds");
    if m == 0 || n == 0 {
        return;
    }
    let dspan = (m - 1) * dst_rs + (n - 1) * dst_cs + 1;
    assert!(dst.len() >= dspan, "destination view out of bounds");
    if k == 0 {
        if !acc {
            for i in 0..m {
                for j in 0..n {
                    dst[i * dst_rs + j * dst_cs] = 0.0;
                }
            }
        }
        return;
    }
    let par = if parallel {
        gemm::Parallelism::Rayon(rayon::current_num_threads())
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: all three views were checked to lie inside their slices above; `dst` is borrowed
    // mutably so it cannot alias `a` or `b`.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            dst_cs as isize,
            dst_rs as isize,
            acc,
            a.data.as_ptr(),
            a.cs as isize,
            a.rs as isize,
            b.data.as_ptr(),
            b.cs as isize,
            b.rs as isize,
            1.0,
            scale,
            false,
            false,
            false,
            par,
        );
    }
}

/// `dst = acc * dst + scale * a b` with `dst` row-major.
pub(crate) fn matmul(dst: &mut [f32], a: Mat, b: Mat, acc: bool, scale: f32) {
    let n = b.cols;
    matmul_strided(dst, n, 1, a, b, acc, scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: Mat, b: Mat) -> Vec<f32> {
        let mut c = vec![0.0; a.rows * b.cols];
        for i in 0..a.rows {
            for j in 0..b.cols {
                for p in 0..a.cols {
                    c[i * b.cols + j] += a.data[i * a.rs + p * a.cs] * b.data[p * b.rs + j * b.cs];
                }
            }
        }
        c
    }

    #[test]
    fn matches_naive_with_transposes_and_accumulation() {
        let mut r = crate::rng::Rng::new(3);
        for &(m, k, n) in &[(1, 1, 1), (7, 13, 5), (64, 100, 33), (130, 70, 90)] {
            let a: Vec<f32> = (0..m * k).map(|_| r.range(-1.0, 1.0)).collect();
            let b: Vec<f32> = (0..k * n).map(|_| r.range(-1.0, 1.0)).collect();
            // a stored transposed (k x m), b row-major.
            let at: Vec<f32> = (0..k * m).map(|idx| a[(idx % m) * k + idx / m]).collect();
            let want = naive(Mat::rm(&a, m, k), Mat::rm(&b, k, n));
            let mut got = vec![1.0; m * n];
            matmul(&mut got, Mat::rm(&at, k, m).t(), Mat::rm(&b, k, n), true, 2.0);
            for (g, w) in got.iter().zip(&want) {
                assert!((g - (1.0 + 2.0 * w)).abs() < 1e-4, "{g} vs {w}");
            }
        }
    }
}
