//! Gemm and Conv on quantized weights: the integer kernels of `deepshrink-kernels` on the codes
//! as stored (int8 codes as `i8`, 4- and 2-bit codes in their packed bytes, binary sign bits),
//! each activation vector quantized to int8 per call (dynamic quantization).
//!
//! A quantized weight runs on these kernels where it is the B operand of a Gemm with `trans_b`
//! (`[N, K]`, one scale per output row) or the W operand of an ungrouped Conv. Anywhere else
//! (a MatMul, a Gemm without `trans_b`, where per-row scales lie along the reduced dimension) it
//! is decoded to f32 at load time and runs dense; `Runtime::node_kinds` shows which.

use deepshrink_codec::QuantMatrix;
use deepshrink_graph::{ConvAttrs, Node, Op};
use deepshrink_kernels::{BinaryWeights, Int8Weights, KernelError, LowBitWeights};

use crate::conv::Geo;
use crate::gemm::{a_dims, finish, transpose, Checked};

/// A quantized `rows x cols` matrix in kernel form.
pub(crate) enum QuantW {
    Int8(Int8Weights),
    Low(LowBitWeights),
    Binary(BinaryWeights),
}

impl QuantW {
    /// The kernel form of `m` (`rows = shape[0]`, `cols = Π shape[1..]`).
    pub fn new(m: &QuantMatrix) -> Result<QuantW, KernelError> {
        let (rows, cols) = (m.rows(), m.cols());
        let scale: Vec<f32> = (0..rows).map(|r| m.scale(r)).collect();
        Ok(match m.bits {
            8 => {
                // code - zero = (code - 128) - (zero - 128): signed codes for the kernel.
                let q = m.codes.iter().map(|&c| (c as i16 - 128) as i8).collect();
                let zero = (0..rows).map(|r| m.zero(r) as i32 - 128).collect();
                QuantW::Int8(Int8Weights::new(rows, cols, q, scale, zero)?)
            }
            4 | 2 => {
                let zero = (0..rows).map(|r| m.zero(r) as i32).collect();
                QuantW::Low(LowBitWeights::new(m.bits as u32, rows, cols, m.packed(), scale, zero)?)
            }
            1 => QuantW::Binary(BinaryWeights::from_bytes(rows, cols, &m.packed(), scale)?),
            b => return Err(KernelError::Csr(format!("{b}-bit codes have no kernel"))),
        })
    }

    pub fn rows(&self) -> usize {
        match self {
            QuantW::Int8(w) => w.rows(),
            QuantW::Low(w) => w.rows(),
            QuantW::Binary(w) => w.rows(),
        }
    }

    pub fn cols(&self) -> usize {
        match self {
            QuantW::Int8(w) => w.cols(),
            QuantW::Low(w) => w.cols(),
            QuantW::Binary(w) => w.cols(),
        }
    }

    /// `"int8"`, `"int4"`, `"int2"` or `"binary"`.
    pub fn kind(&self) -> &'static str {
        match self {
            QuantW::Int8(_) => "int8",
            QuantW::Low(w) if w.bits() == 4 => "int4",
            QuantW::Low(_) => "int2",
            QuantW::Binary(_) => "binary",
        }
    }

    /// `y = x · Wᵀ` for `batch` rows of `x`.
    pub fn matmul(&self, x: &[f32], batch: usize, y: &mut [f32]) -> Result<(), KernelError> {
        match self {
            QuantW::Int8(w) => w.matmul(x, batch, y),
            QuantW::Low(w) => w.matmul(x, batch, y),
            QuantW::Binary(w) => w.matmul(x, batch, y, false),
        }
    }
}

/// True if the quantized weight `name` can run on the integer kernels in every node that reads
/// it: input B of a Gemm with `trans_b`, or input W of an ungrouped Conv.
pub(crate) fn runs_on_kernels<'a>(name: &str, mut readers: impl Iterator<Item = &'a Node>) -> bool {
    readers.all(|n| {
        n.inputs.iter().enumerate().filter(|(_, i)| *i == name).all(|(pos, _)| match (&n.op, pos) {
            (Op::Gemm { trans_b: true, .. }, 1) => true,
            (Op::Conv(a), 1) => a.group == 1,
            _ => false,
        })
    })
}

/// A Gemm whose B (`[N, K]`, `trans_b`) is quantized.
pub(crate) struct QuantGemm {
    pub w: QuantW,
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
        let (m, k) = a_dims(a.0, self.trans_a)?;
        let (n, wk) = (self.w.rows(), self.w.cols());
        if k != wk {
            return Err(format!(
                "A {:?} (trans_a {}) does not multiply a weight of {wk} inputs",
                a.0, self.trans_a
            ));
        }
        let x = if self.trans_a { transpose(a.1, k, m) } else { a.1.to_vec() };
        let mut y = vec![0.0f32; m * n];
        self.w.matmul(&x, m, &mut y).map_err(|e| e.to_string())?;
        finish(&mut y, m, n, self.alpha, self.beta, c)?;
        Ok((vec![m, n], y))
    }
}

/// An ungrouped Conv on a quantized W (`O x C*KH*KW`).
pub(crate) struct QuantConv {
    pub w: QuantW,
    pub kernel: [usize; 2],
    pub attrs: ConvAttrs,
}

impl QuantConv {
    /// Per image: im2col, transposed to one row of `C*KH*KW` inputs per output pixel, the
    /// integer product (each pixel's inputs quantized on their own), transposed back to NCHW.
    pub fn run(&self, x: (&[usize], &[f32]), bias: Option<&[f32]>) -> Checked<(Vec<usize>, Vec<f32>)> {
        let (xs, o) = (x.0, self.w.rows());
        let wshape = [o, xs.get(1).copied().unwrap_or(0), self.kernel[0], self.kernel[1]];
        let out = deepshrink_graph::shape::conv_shape(xs, &wshape, &self.attrs)
            .ok()
            .filter(|_| xs[1] * self.kernel[0] * self.kernel[1] == self.w.cols())
            .ok_or_else(|| format!("input {xs:?} does not fit the weight {wshape:?}"))?;
        if bias.is_some_and(|b| b.len() != o) {
            return Err(format!("bias does not match {o} output channels"));
        }
        let g = Geo::new(xs, self.kernel, &out, &self.attrs);
        let (p, k) = (g.p(), g.rows());
        let mut cols = vec![0.0f32; k * p];
        let mut py = vec![0.0f32; p * o];
        let mut y = vec![0.0f32; out.iter().product()];
        for (xn, yn) in x.1.chunks_exact(g.chw()).zip(y.chunks_exact_mut(o * p)) {
            g.im2col(xn, &mut cols);
            let pix = transpose(&cols, k, p);
            self.w.matmul(&pix, p, &mut py).map_err(|e| e.to_string())?;
            for (ch, row) in yn.chunks_exact_mut(p).enumerate() {
                let b = bias.map_or(0.0, |b| b[ch]);
                for (i, v) in row.iter_mut().enumerate() {
                    *v = py[i * o + ch] + b;
                }
            }
        }
        Ok((out, y))
    }
}
