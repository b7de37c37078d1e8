//! Gemm on a block-circulant weight: the FFT kernel of `deepshrink-kernels`
//! ([`CirculantWeights`]) on the stored defining values, spectra computed once at load time.
//!
//! A circulant weight runs on the kernel where it is the B operand of a Gemm with `trans_b`
//! (`[N, K]`, the layout the circulant pass defines its blocks on) and the FFTs are predicted to
//! be faster ([`fft_pays`]); anywhere else it is expanded to dense at load time (the file stays
//! circulant), and `Runtime::node_kinds` shows which.

use deepshrink_codec::CirculantTensor;
use deepshrink_kernels::{CirculantWeights, KernelError};

use crate::gemm::{run_gemm, Checked};

/// Whether the FFT product is predicted faster than the dense one: the dense multiply-adds
/// exceed twice the FFT form's operation count ([`CirculantWeights::fft_macs`]). Measured on
/// LeNet-300-100 (bench/results/low-rank/circulant.md): `784 → 300` in one block (235k dense vs
/// 39k) runs 3.7x faster on the FFTs, `300 → 100` in one block (30k vs 13k) 1.0x, `100 → 10`
/// (1k vs 3.5k) 0.2x; the factor 2 covers the FFTs' constant costs.
pub(crate) fn fft_pays(t: &CirculantTensor) -> bool {
    t.rows() * t.cols() > 2 * CirculantWeights::fft_macs(t.rows(), t.cols(), t.block)
}

/// The kernel form of a stored circulant tensor (checked by `CirculantTensor::check`).
pub(crate) fn kernel_form(t: &CirculantTensor) -> Result<CirculantWeights, KernelError> {
    CirculantWeights::new(t.rows(), t.cols(), t.block, &t.values, t.negative().as_deref())
}

/// A Gemm whose B (`[N, K]`, `trans_b`) is block-circulant.
pub(crate) struct CirculantGemm {
    pub w: CirculantWeights,
    pub alpha: f32,
    pub beta: f32,
    pub trans_a: bool,
}

impl CirculantGemm {
    pub fn run(
        &self,
        a: (&[usize], &[f32]),
        c: Option<(&[usize], &[f32])>,
    ) -> Checked<(Vec<usize>, Vec<f32>)> {
        let dims = (self.w.rows(), self.w.cols());
        let (alpha, beta) = (self.alpha, self.beta);
        run_gemm(a, c, dims, self.trans_a, alpha, beta, |x, m, y| self.w.matmul(x, m, y))
    }
}
