//! Gemm and Conv on quantized weights: the integer kernels of `deepshrink-kernels` on the codes
//! as stored (int8 codes as `i8`, 4- and 2-bit codes in their packed bytes, binary sign bits),
//! each activation vector quantized to int8 per call (dynamic quantization) or, if the matrix
//! carries a calibrated activation scale, with that fixed scale (static quantization).
//!
//! Binary weights read through a `Sign` node (XNOR-Net, `qat` method `xnor`) run on the
//! XNOR-popcount kernel: `sign(x)` is ±1, so `gemv_xnor`'s activation scale `mean|x|` is 1 and
//! the product is exactly `α_r · Σ sign(w) sign(x)`.
//!
//! A quantized weight runs on these kernels where it is the B operand of a Gemm with `trans_b`
//! (`[N, K]`, one scale per output row). Anywhere else it is decoded to f32 at load time and
//! runs dense (the file stays packed); `Runtime::node_kinds` shows which:
//! - a MatMul or a Gemm without `trans_b`: per-row scales lie along the reduced dimension;
//! - a Conv: one integer GEMV per output pixel (im2col, each pixel's inputs quantized on their
//!   own) measured 1.4x (LeNet-5 conv2, 50x500 over 8x8 pixels) to 6x (conv1, 20x25 over 24x24)
//!   slower than the f32 im2col GEMM (bench/results/quantization/README.md); an integer GEMM
//!   that quantizes the column matrix once is the missing piece.

use deepshrink_codec::QuantMatrix;
use deepshrink_graph::{Node, Op};
use deepshrink_kernels::{BinaryWeights, Int8Weights, KernelError, LowBitWeights};

use crate::gemm::{run_gemm, Checked};

/// A quantized `rows x cols` matrix in kernel form.
pub(crate) enum QuantW {
    Int8(Int8Weights),
    Low(LowBitWeights),
    Binary(BinaryWeights),
    /// Two-scale ternary (TTQ): the `+wp` codes and the `−wn` codes as two 2-bit matrices.
    TwoScale(LowBitWeights, LowBitWeights),
}

impl QuantW {
    /// The kernel form of `m` (`rows = shape[0]`, `cols = Π shape[1..]`).
    pub fn new(m: &QuantMatrix) -> Result<QuantW, KernelError> {
        let (rows, cols) = (m.rows(), m.cols());
        let scale: Vec<f32> = (0..rows).map(|r| m.scale(r)).collect();
        if m.neg_scales.is_some() {
            // y = wp · Σ_{code 3} x − wn · Σ_{code 1} x: each half a symmetric 2-bit matrix.
            let half = |keep: u8, scale: Vec<f32>| {
                let codes = m.codes.iter().map(|&c| if c == keep { c } else { 2 }).collect();
                let h = QuantMatrix { codes, neg_scales: None, ..m.clone() };
                LowBitWeights::new(2, rows, cols, h.packed(), scale, vec![2; rows])?
                    .with_input_scale(m.act_scale)
            };
            let neg = (0..rows).map(|r| m.neg_scale(r)).collect();
            return Ok(QuantW::TwoScale(half(3, scale)?, half(1, neg)?));
        }
        Ok(match m.bits {
            8 => {
                // code - zero = (code - 128) - (zero - 128): signed codes for the kernel.
                let q = m.codes.iter().map(|&c| (c as i16 - 128) as i8).collect();
                let zero = (0..rows).map(|r| m.zero(r) as i32 - 128).collect();
                QuantW::Int8(Int8Weights::new(rows, cols, q, scale, zero)?.with_input_scale(m.act_scale)?)
            }
            4 | 2 => {
                let zero = (0..rows).map(|r| m.zero(r) as i32).collect();
                let w = LowBitWeights::new(m.bits as u32, rows, cols, m.packed(), scale, zero)?;
                QuantW::Low(w.with_input_scale(m.act_scale)?)
            }
            1 => QuantW::Binary(
                BinaryWeights::from_bytes(rows, cols, &m.packed(), scale)?.with_input_scale(m.act_scale)?,
            ),
            b => return Err(KernelError::Csr(format!("{b}-bit codes have no kernel"))),
        })
    }

    pub fn rows(&self) -> usize {
        match self {
            QuantW::Int8(w) => w.rows(),
            QuantW::Low(w) => w.rows(),
            QuantW::Binary(w) => w.rows(),
            QuantW::TwoScale(w, _) => w.rows(),
        }
    }

    pub fn cols(&self) -> usize {
        match self {
            QuantW::Int8(w) => w.cols(),
            QuantW::Low(w) => w.cols(),
            QuantW::Binary(w) => w.cols(),
            QuantW::TwoScale(w, _) => w.cols(),
        }
    }

    /// `"int8"`, `"int4"`, `"int2"`, `"binary"` or `"ternary2"` (two scales).
    pub fn kind(&self) -> &'static str {
        match self {
            QuantW::Int8(_) => "int8",
            QuantW::Low(w) if w.bits() == 4 => "int4",
            QuantW::Low(_) => "int2",
            QuantW::Binary(_) => "binary",
            QuantW::TwoScale(..) => "ternary2",
        }
    }

    /// `y = x · Wᵀ` for `batch` rows of `x`; binary weights with `xnor` run the XNOR-popcount
    /// kernel (the input binarized to its signs, scaled by `mean|x|`, which is 1 for an input
    /// that is already ±1).
    pub fn matmul(&self, x: &[f32], batch: usize, y: &mut [f32], xnor: bool) -> Result<(), KernelError> {
        match self {
            QuantW::Int8(w) => w.matmul(x, batch, y),
            QuantW::Low(w) => w.matmul(x, batch, y),
            QuantW::Binary(w) => w.matmul(x, batch, y, xnor),
            QuantW::TwoScale(p, n) => {
                p.matmul(x, batch, y)?;
                let mut yn = vec![0.0f32; y.len()];
                n.matmul(x, batch, &mut yn)?;
                y.iter_mut().zip(&yn).for_each(|(a, b)| *a += b);
                Ok(())
            }
        }
    }
}

/// True if the quantized weight `name` can run on the integer kernels in every node that reads
/// it: input B of a Gemm with `trans_b`.
pub(crate) fn runs_on_kernels<'a>(name: &str, mut readers: impl Iterator<Item = &'a Node>) -> bool {
    readers.all(|n| {
        n.inputs
            .iter()
            .enumerate()
            .filter(|(_, i)| *i == name)
            .all(|(pos, _)| matches!((&n.op, pos), (Op::Gemm { trans_b: true, .. }, 1)))
    })
}

/// A Gemm whose B (`[N, K]`, `trans_b`) is quantized.
pub(crate) struct QuantGemm {
    pub w: QuantW,
    /// Binary weights whose input is the output of a `Sign` node (XNOR-Net): run by
    /// `BinaryWeights::gemv_xnor` (XOR and popcount) instead of the int8-activation kernel.
    pub xnor: bool,
    pub alpha: f32,
    pub beta: f32,
    pub trans_a: bool,
}

impl QuantGemm {
    pub fn run(
        &self,
        a: (&[usize], &[f32]),
        c: Option<(&[usize], &[f32])>,
    ) -> Checked<(Vec<usize>, Vec<f32>)> {
        let dims = (self.w.rows(), self.w.cols());
        let (alpha, beta) = (self.alpha, self.beta);
        run_gemm(a, c, dims, self.trans_a, alpha, beta, |x, m, y| self.w.matmul(x, m, y, self.xnor))
    }
}
