//! Block-circulant fully-connected layers multiplied with FFTs (Cheng et al. 2015, "An
//! exploration of parameter redundancy in deep networks with circulant projections"; the block
//! form is Ding et al. 2017, CirCNN).
//!
//! A `rows x cols` weight is cut into `b x b` blocks (`p = ceil(rows/b)` block rows, `q =
//! ceil(cols/b)` block columns, the last ones zero-padded); block `(i, j)` is the circulant
//! matrix of its `b` defining values `c`, entry `(u, v)` being `c[(u − v) mod b]`. An optional
//! sign per input column (Cheng et al.'s random sign diagonal `D`) multiplies column `v`.
//! Entry `(r, c)` of the weight is therefore
//!
//! ```text
//! values[((r / b) · q + c / b) · b + ((r mod b − c mod b) mod b)] · sign(c)
//! ```
//!
//! and a block times a vector is a circular convolution, `y = IFFT(FFT(c) ⊙ FFT(x))`: the
//! product costs `q` forward and `p` inverse real FFTs of length `b` plus `p · q · (b/2 + 1)`
//! complex multiply-adds, against `rows · cols` multiply-adds dense. The spectra `FFT(c)/b` are
//! computed once at load time (the file stores the `p · q · b` real values); the FFTs are
//! `realfft` on `rustfft`. [`crate::reference::circulant_dense`] expands the same matrix for the
//! tests.

use std::sync::Arc;

use rayon::prelude::*;
use realfft::num_complex::Complex;
use realfft::{ComplexToReal, RealFftPlanner, RealToComplex};

use crate::error::{expect_len, KernelError};

/// A block-circulant `rows x cols` matrix ready for `y = x · Wᵀ`.
#[derive(Clone)]
pub struct CirculantWeights {
    rows: usize,
    cols: usize,
    block: usize,
    /// Block rows and block columns.
    p: usize,
    q: usize,
    /// Spectra of every block, divided by `b` (the inverse FFT is unnormalised), as separate
    /// real and imaginary parts, laid out `[i][j][k]` with `k < b/2 + 1`.
    re: Vec<f32>,
    im: Vec<f32>,
    /// `±1` per input column, if the matrix has a sign diagonal.
    signs: Option<Vec<f32>>,
    fwd: Arc<dyn RealToComplex<f32>>,
    inv: Arc<dyn ComplexToReal<f32>>,
}

impl std::fmt::Debug for CirculantWeights {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CirculantWeights")
            .field("rows", &self.rows)
            .field("cols", &self.cols)
            .field("block", &self.block)
            .field("signs", &self.signs.is_some())
            .finish()
    }
}

/// Buffers of one product, reused across the samples of a call.
struct Scratch {
    time: Vec<f32>,
    freq: Vec<Complex<f32>>,
    fft: Vec<Complex<f32>>,
    /// Input spectra of every block column, `[j][k]`.
    xr: Vec<f32>,
    xi: Vec<f32>,
    acc_r: Vec<f32>,
    acc_i: Vec<f32>,
}

impl CirculantWeights {
    /// The matrix with blocks of `block` and `p · q · block` defining `values` (layout in the
    /// module docs), and an optional sign per input column (`true`: negative).
    pub fn new(
        rows: usize,
        cols: usize,
        block: usize,
        values: &[f32],
        negative: Option<&[bool]>,
    ) -> Result<CirculantWeights, KernelError> {
        if rows == 0 || cols == 0 || block == 0 {
            return Err(KernelError::Csr(format!(
                "block-circulant matrix {rows}x{cols} with block {block}: every size must be positive"
            )));
        }
        let (p, q) = (rows.div_ceil(block), cols.div_ceil(block));
        expect_len("values", values.len(), p * q * block)?;
        if let Some(n) = negative {
            expect_len("signs", n.len(), cols)?;
        }
        let mut planner = RealFftPlanner::<f32>::new();
        let fwd = planner.plan_fft_forward(block);
        let inv = planner.plan_fft_inverse(block);
        let half = block / 2 + 1;
        let (mut re, mut im) = (Vec::with_capacity(p * q * half), Vec::with_capacity(p * q * half));
        let mut time = vec![0.0f32; block];
        let mut freq = fwd.make_output_vec();
        let mut scratch = fwd.make_scratch_vec();
        let norm = 1.0 / block as f32;
        for c in values.chunks_exact(block) {
            time.copy_from_slice(c);
            fwd.process_with_scratch(&mut time, &mut freq, &mut scratch).expect("buffer sizes from the plan");
            re.extend(freq.iter().map(|z| z.re * norm));
            im.extend(freq.iter().map(|z| z.im * norm));
        }
        let signs = negative.map(|n| n.iter().map(|&s| if s { -1.0 } else { 1.0 }).collect());
        Ok(CirculantWeights { rows, cols, block, p, q, re, im, signs, fwd, inv })
    }

    /// Output rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Input columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Block size `b`.
    pub fn block(&self) -> usize {
        self.block
    }

    /// Real multiply-adds of one product: the complex products (4 each) and the FFTs
    /// (`≈ 2.5 · b · log2 b` per real FFT of length `b`, the split-radix count for half-length
    /// complex FFTs).
    pub fn macs(&self) -> usize {
        Self::fft_macs(self.rows, self.cols, self.block)
    }

    /// [`CirculantWeights::macs`] of a `rows x cols` matrix with blocks of `block`, without
    /// building it.
    pub fn fft_macs(rows: usize, cols: usize, block: usize) -> usize {
        let (b, p, q) = (block.max(1), rows.div_ceil(block.max(1)), cols.div_ceil(block.max(1)));
        let fft = (2.5 * b as f64 * (b as f64).log2().max(1.0)) as usize;
        4 * p * q * (b / 2 + 1) + (p + q) * fft
    }

    fn scratch(&self) -> Scratch {
        let half = self.block / 2 + 1;
        let len = self.fwd.get_scratch_len().max(self.inv.get_scratch_len());
        Scratch {
            time: vec![0.0; self.block],
            freq: vec![Complex::default(); half],
            fft: vec![Complex::default(); len],
            xr: vec![0.0; self.q * half],
            xi: vec![0.0; self.q * half],
            acc_r: vec![0.0; half],
            acc_i: vec![0.0; half],
        }
    }

    /// `y = x · Wᵀ` for `batch` rows of `x` (`[batch, cols]` → `[batch, rows]`); samples run in
    /// parallel when there are several.
    pub fn matmul(&self, x: &[f32], batch: usize, y: &mut [f32]) -> Result<(), KernelError> {
        expect_len("x", x.len(), batch * self.cols)?;
        expect_len("y", y.len(), batch * self.rows)?;
        if batch <= 1 {
            if batch == 1 {
                self.gemv(x, y, &mut self.scratch());
            }
            return Ok(());
        }
        x.par_chunks_exact(self.cols)
            .zip(y.par_chunks_exact_mut(self.rows))
            .for_each_init(|| self.scratch(), |s, (xs, ys)| self.gemv(xs, ys, s));
        Ok(())
    }

    fn gemv(&self, x: &[f32], y: &mut [f32], s: &mut Scratch) {
        let (b, half) = (self.block, self.block / 2 + 1);
        // Spectra of the (sign-flipped, zero-padded) input blocks.
        for j in 0..self.q {
            let (lo, hi) = (j * b, ((j + 1) * b).min(self.cols));
            match &self.signs {
                Some(sg) => {
                    for ((t, &v), &g) in s.time.iter_mut().zip(&x[lo..hi]).zip(&sg[lo..hi]) {
                        *t = v * g;
                    }
                }
                None => s.time[..hi - lo].copy_from_slice(&x[lo..hi]),
            }
            s.time[hi - lo..].fill(0.0);
            self.fwd.process_with_scratch(&mut s.time, &mut s.freq, &mut s.fft).expect("plan sizes");
            for (k, z) in s.freq.iter().enumerate() {
                s.xr[j * half + k] = z.re;
                s.xi[j * half + k] = z.im;
            }
        }
        for i in 0..self.p {
            s.acc_r.fill(0.0);
            s.acc_i.fill(0.0);
            for j in 0..self.q {
                let o = (i * self.q + j) * half;
                let (wr, wi) = (&self.re[o..o + half], &self.im[o..o + half]);
                let (xr, xi) = (&s.xr[j * half..(j + 1) * half], &s.xi[j * half..(j + 1) * half]);
                for k in 0..half {
                    s.acc_r[k] += wr[k] * xr[k] - wi[k] * xi[k];
                    s.acc_i[k] += wr[k] * xi[k] + wi[k] * xr[k];
                }
            }
            for (k, z) in s.freq.iter_mut().enumerate() {
                *z = Complex::new(s.acc_r[k], s.acc_i[k]);
            }
            // The spectrum of a real signal: the DC (and, for even b, Nyquist) terms are real.
            s.freq[0].im = 0.0;
            if b % 2 == 0 {
                s.freq[half - 1].im = 0.0;
            }
            self.inv.process_with_scratch(&mut s.freq, &mut s.time, &mut s.fft).expect("plan sizes");
            let (lo, hi) = (i * b, ((i + 1) * b).min(self.rows));
            y[lo..hi].copy_from_slice(&s.time[..hi - lo]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::{circulant_dense, dense_gemv};
    use proptest::prelude::*;

    /// A 3x3 circulant by hand: c = [1, 2, 3] gives [[1, 3, 2], [2, 1, 3], [3, 2, 1]].
    #[test]
    fn a_small_circulant_matches_the_definition() {
        let w = circulant_dense(3, 3, 3, &[1.0, 2.0, 3.0], None);
        assert_eq!(w, vec![1.0, 3.0, 2.0, 2.0, 1.0, 3.0, 3.0, 2.0, 1.0]);
        let k = CirculantWeights::new(3, 3, 3, &[1.0, 2.0, 3.0], None).unwrap();
        let mut y = vec![0.0; 3];
        k.matmul(&[1.0, 10.0, 100.0], 1, &mut y).unwrap();
        for (a, e) in y.iter().zip([231.0, 312.0, 123.0]) {
            assert!((a - e).abs() < 1e-3, "{y:?}");
        }
    }

    #[test]
    fn bad_sizes_are_errors() {
        assert!(CirculantWeights::new(0, 3, 3, &[], None).is_err());
        assert!(CirculantWeights::new(4, 3, 2, &[0.0; 3], None).is_err());
        assert!(CirculantWeights::new(4, 3, 2, &[0.0; 8], Some(&[false; 2])).is_err());
        let k = CirculantWeights::new(4, 3, 2, &[0.0; 8], None).unwrap();
        assert!(k.matmul(&[0.0; 3], 2, &mut [0.0; 8]).is_err());
    }

    proptest! {
        /// The FFT product equals the dense product of the expanded matrix, for any shape, block
        /// (odd, even, larger than the matrix), sign diagonal and batch.
        #[test]
        fn fft_product_matches_dense(
            rows in 1usize..40, cols in 1usize..40, block in 1usize..24,
            batch in 1usize..4, signed in any::<bool>(), seed in any::<u64>(),
        ) {
            let (p, q) = (rows.div_ceil(block), cols.div_ceil(block));
            let mut z = seed | 1;
            let mut next = move || {
                z ^= z << 13; z ^= z >> 7; z ^= z << 17;
                (z >> 40) as f32 / (1u64 << 23) as f32 - 1.0
            };
            let values: Vec<f32> = (0..p * q * block).map(|_| next()).collect();
            let neg: Vec<bool> = (0..cols).map(|_| next() < 0.0).collect();
            let neg = signed.then_some(&neg[..]);
            let dense = circulant_dense(rows, cols, block, &values, neg);
            let x: Vec<f32> = (0..batch * cols).map(|_| next()).collect();
            let k = CirculantWeights::new(rows, cols, block, &values, neg).unwrap();
            let mut y = vec![0.0; batch * rows];
            k.matmul(&x, batch, &mut y).unwrap();
            for s in 0..batch {
                let mut e = vec![0.0; rows];
                dense_gemv(rows, cols, &dense, &x[s * cols..(s + 1) * cols], &mut e);
                for (a, b) in y[s * rows..(s + 1) * rows].iter().zip(&e) {
                    prop_assert!((a - b).abs() < 1e-4 * (1.0 + cols as f32), "{a} vs {b}");
                }
            }
        }
    }
}
