//! Gemm on a sparse weight, and the batch-1 dense GEMV fast path of the dense baseline.

use std::borrow::Cow;

use deepshrink_kernels::{KernelError, SparseWeights};

/// A Gemm whose B operand is compressed. `w` is `B'` transposed, i.e. `[N, K]` (the weight as
/// stored when the node has `trans_b`, transposed once at load time otherwise), so the product
/// is always `A' · wᵀ`.
pub(crate) struct SparseGemm {
    pub w: SparseWeights,
    pub alpha: f32,
    pub beta: f32,
    pub trans_a: bool,
}

/// Outcome of a Gemm operand check: the error detail names the shapes.
pub(crate) type Checked<T> = Result<T, String>;

/// `(m, k)` of `A'` for a 2-D `a`.
pub(crate) fn a_dims(a: &[usize], trans_a: bool) -> Checked<(usize, usize)> {
    match (a, trans_a) {
        ([m, k], false) | ([k, m], true) => Ok((*m, *k)),
        _ => Err(format!("A {a:?} is not 2-D")),
    }
}

impl SparseGemm {
    /// Runs the node on `a` and the optional `c`.
    pub fn run(
        &self,
        a: (&[usize], &[f32]),
        c: Option<(&[usize], &[f32])>,
    ) -> Checked<(Vec<usize>, Vec<f32>)> {
        let dims = (self.w.csr().rows(), self.w.csr().cols());
        let (alpha, beta) = (self.alpha, self.beta);
        run_gemm(a, c, dims, self.trans_a, alpha, beta, |x, m, y| self.w.matmul(x, m, y))
    }
}

/// A Gemm `alpha · A' · Wᵀ + beta · C` whose `[n, k]` weight (`dims`) only a kernel can multiply:
/// checks A against the weight, transposes it if `trans_a`, runs `matmul(x, m, y)` (`y = x · Wᵀ`
/// for `m` rows) and applies `alpha`, `beta` and `C`. Every compressed Gemm runs through here.
pub(crate) fn run_gemm(
    a: (&[usize], &[f32]),
    c: Option<(&[usize], &[f32])>,
    (n, wk): (usize, usize),
    trans_a: bool,
    alpha: f32,
    beta: f32,
    matmul: impl FnOnce(&[f32], usize, &mut [f32]) -> Result<(), KernelError>,
) -> Checked<(Vec<usize>, Vec<f32>)> {
    let (m, k) = a_dims(a.0, trans_a)?;
    if k != wk {
        return Err(format!("A {:?} (trans_a {trans_a}) does not multiply a weight of {wk} inputs", a.0));
    }
    let x: Cow<[f32]> = if trans_a { Cow::Owned(transpose(a.1, k, m)) } else { Cow::Borrowed(a.1) };
    let mut y = vec![0.0f32; m * n];
    matmul(&x, m, &mut y).map_err(kernel)?;
    finish(&mut y, m, n, alpha, beta, c)?;
    Ok((vec![m, n], y))
}

/// The dense baseline's batch-1 Gemm (`x [1, K] · Wᵀ`, `W [N, K]`), reading the weight in place.
///
/// It runs on the `gemm` crate (run-time AVX2/FMA dispatch), single-threaded: the fastest dense
/// f32 GEMV measured here, so the compressed model is compared with an honest baseline. On
/// LeNet's FC shapes it was 5-15% faster than `deepshrink_kernels::dense_gemv` (AVX2 FMA dot
/// products), and `Parallelism::Rayon` ran no faster than `None` at batch 1 (bench/kernels.md).
/// The compressed side runs on one thread too.
pub(crate) fn dense_row(
    a: &[f32],
    w: (&[usize], &[f32]),
    alpha: f32,
    beta: f32,
    c: Option<(&[usize], &[f32])>,
) -> Checked<(Vec<usize>, Vec<f32>)> {
    let (n, k) = (w.0[0], w.0[1]);
    if w.1.len() != n * k || a.len() != k {
        return Err(format!("A [1, {}] does not multiply W {:?}", a.len(), w.0));
    }
    let mut y = vec![0.0f32; n];
    // SAFETY: W is n x k row-major (`W[r, c]` at `r * k + c`), read as the n x k left operand
    // with row stride k; x is k x 1; y is n x 1; all lengths checked above.
    unsafe {
        gemm::gemm(
            n,
            1,
            k,
            y.as_mut_ptr(),
            1,
            1,
            false,
            w.1.as_ptr(),
            1,
            k as isize,
            a.as_ptr(),
            1,
            1,
            0.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        )
    };
    finish(&mut y, 1, n, alpha, beta, c)?;
    Ok((vec![1, n], y))
}

fn kernel(e: KernelError) -> String {
    e.to_string()
}

/// `y = alpha * y + beta * C`, with `C` broadcast to `[m, n]`.
pub(crate) fn finish(
    y: &mut [f32],
    m: usize,
    n: usize,
    alpha: f32,
    beta: f32,
    c: Option<(&[usize], &[f32])>,
) -> Checked<()> {
    if alpha != 1.0 {
        y.iter_mut().for_each(|v| *v *= alpha);
    }
    let Some((cs, cd)) = c else { return Ok(()) };
    let (cm, cn) = match cs {
        [] => (1, 1),
        [a] => (1, *a),
        [a, b] => (*a, *b),
        _ => return Err(format!("C {cs:?} does not broadcast to [{m}, {n}]")),
    };
    if (cm != 1 && cm != m) || (cn != 1 && cn != n) || cd.len() != cm * cn {
        return Err(format!("C {cs:?} does not broadcast to [{m}, {n}]"));
    }
    if beta == 0.0 {
        return Ok(());
    }
    for (i, row) in y.chunks_exact_mut(n.max(1)).enumerate().take(m) {
        let crow = &cd[if cm == 1 { 0 } else { i * cn }..][..cn];
        if cn == 1 {
            row.iter_mut().for_each(|v| *v += beta * crow[0]);
        } else {
            row.iter_mut().zip(crow).for_each(|(v, c)| *v += beta * c);
        }
    }
    Ok(())
}

/// Transpose of row-major `a` (`r x c`).
pub(crate) fn transpose(a: &[f32], r: usize, c: usize) -> Vec<f32> {
    let mut out = vec![0.0f32; a.len()];
    for i in 0..r {
        for j in 0..c {
            out[j * r + i] = a[i * c + j];
        }
    }
    out
}
