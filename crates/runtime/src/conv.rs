//! Convolution on a sparse weight: im2col per image, then sparse × dense.
//!
//! The column matrix of one image is `[C*KH*KW, OH*OW]`, row `r` holding input channel
//! `r / (KH*KW)` shifted by kernel cell `r % (KH*KW)` — the order of an OIHW weight's columns, so
//! `Y[O, OH*OW] = W × cols` is the image's output in NCHW order. The geometry (pads top, left,
//! bottom, right; strides; dilations) mirrors the engine's `ops/conv.rs`.

use deepshrink_graph::ConvAttrs;
use deepshrink_kernels::SparseWeights;

/// Geometry of one convolution call.
pub(crate) struct Geo {
    c: usize,
    h: usize,
    w: usize,
    kh: usize,
    kw: usize,
    pub oh: usize,
    pub ow: usize,
    a: ConvAttrs,
}

impl Geo {
    /// `x` is the input shape `[N, C, H, W]`, `kernel` the weight's `[KH, KW]`, `out` the output
    /// shape from shape inference.
    pub fn new(x: &[usize], kernel: [usize; 2], out: &[usize], a: &ConvAttrs) -> Geo {
        Geo { c: x[1], h: x[2], w: x[3], kh: kernel[0], kw: kernel[1], oh: out[2], ow: out[3], a: a.clone() }
    }

    /// Output pixels per channel.
    pub fn p(&self) -> usize {
        self.oh * self.ow
    }

    /// Input elements per image.
    pub fn chw(&self) -> usize {
        self.c * self.h * self.w
    }

    /// Rows of the column matrix.
    pub fn rows(&self) -> usize {
        self.c * self.kh * self.kw
    }

    /// True if the column matrix is the image itself (1x1 kernel, unit stride, no padding).
    pub fn is_pointwise(&self) -> bool {
        self.kh == 1 && self.kw == 1 && self.a.strides == [1, 1] && self.a.pads == [0; 4]
    }

    /// Writes the column matrix of one image `x` (`[C, H, W]`) into `cols` (`rows() x p()`).
    pub fn im2col(&self, x: &[f32], cols: &mut [f32]) {
        let (p, kk, sh, sw) = (self.p(), self.kh * self.kw, self.a.strides[0], self.a.strides[1]);
        for (r, row) in cols.chunks_exact_mut(p).enumerate() {
            let (c, ki, kj) = (r / kk, (r % kk) / self.kw, r % self.kw);
            let offh = (ki * self.a.dilations[0]) as isize - self.a.pads[0] as isize;
            let offw = (kj * self.a.dilations[1]) as isize - self.a.pads[1] as isize;
            let (h0, h1) = valid(self.oh, sh, offh, self.h);
            let (w0, w1) = valid(self.ow, sw, offw, self.w);
            let plane = &x[c * self.h * self.w..][..self.h * self.w];
            row.fill(0.0);
            for oh in h0..h1 {
                let ih = ((oh * sh) as isize + offh) as usize;
                let src = &plane[ih * self.w..][..self.w];
                let dst = &mut row[oh * self.ow..(oh + 1) * self.ow];
                if sw == 1 {
                    let s0 = (w0 as isize + offw) as usize;
                    dst[w0..w1].copy_from_slice(&src[s0..s0 + (w1 - w0)]);
                } else {
                    for ow in w0..w1 {
                        dst[ow] = src[((ow * sw) as isize + offw) as usize];
                    }
                }
            }
        }
    }
}

/// Output positions `o` in `0..len` with `o * stride + off` inside `0..limit`.
fn valid(len: usize, stride: usize, off: isize, limit: usize) -> (usize, usize) {
    let s = stride as isize;
    let lo = if off >= 0 { 0 } else { ((-off) + s - 1) / s };
    let hi = (limit as isize - off + s - 1).div_euclid(s).clamp(0, len as isize);
    (lo.min(hi) as usize, hi as usize)
}

/// Runs the convolution of `x` (`[N, C, H, W]`) with the sparse weight `w` (`O x C*KH*KW`),
/// adding `bias` (`[O]`), into `y` (`[N, O, OH, OW]`). Shapes were checked by the caller.
pub(crate) fn run(
    g: &Geo,
    w: &SparseWeights,
    x: &[f32],
    bias: Option<&[f32]>,
    y: &mut [f32],
) -> Result<(), deepshrink_kernels::KernelError> {
    let (p, o) = (g.p(), w.csr().rows());
    let mut cols = if g.is_pointwise() { Vec::new() } else { vec![0.0f32; g.rows() * p] };
    for (xn, yn) in x.chunks_exact(g.chw()).zip(y.chunks_exact_mut(o * p)) {
        if g.is_pointwise() {
            w.spmm(xn, p, yn)?;
        } else {
            g.im2col(xn, &mut cols);
            w.spmm(&cols, p, yn)?;
        }
        if let Some(b) = bias {
            for (row, &bv) in yn.chunks_exact_mut(p).zip(b) {
                row.iter_mut().for_each(|v| *v += bv);
            }
        }
    }
    Ok(())
}
