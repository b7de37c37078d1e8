//! Direct depthwise convolution (`group == C == M`: one filter per channel), any kernel shape
//! (k×1, 1×k, k×k), stride, padding and dilation.
//!
//! The general path (`conv.rs`) runs a grouped convolution as one GEMM per group; for a
//! depthwise conv that is a `1 x KH*KW` by `KH*KW x pixels` product per channel, far too small
//! for a matrix kernel, so it costs more than the multiply-adds it does (the CP form of a conv,
//! 1x1 → k×1 depthwise → 1×k depthwise → 1x1, was measured slower than the original because of
//! it). Here every kernel cell is one pass over the output plane: for each output row, a scaled
//! input row segment is added to it (`out[oh, w0..w1] += w * x[ih, s0..]`, an axpy along the
//! image row that the compiler vectorizes when the horizontal stride is 1).
//!
//! Work is split over images only (one image per task), like the GEMM path, so batch 1 runs on
//! one thread on both sides of a comparison. The weight gradient is a sum over images per channel,
//! computed per channel in image order, so results do not depend on thread timing.

use rayon::prelude::*;

use super::Buf;
use deepshrink_graph::ConvAttrs;

/// True if the convolution of input shape `x` with weight shape `w` is depthwise: one group per
/// input channel, one output channel per group.
pub(super) fn is_depthwise(x: &[usize], w: &[usize], a: &ConvAttrs) -> bool {
    x.len() == 4 && w.len() == 4 && a.group > 1 && a.group == x[1] && w[0] == x[1] && w[1] == 1
}

/// Geometry of one depthwise call.
struct Dw {
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    kh: usize,
    kw: usize,
    oh: usize,
    ow: usize,
    a: ConvAttrs,
}

/// One kernel cell's footprint: input offsets and the valid output rows and columns.
struct Cell {
    offh: isize,
    offw: isize,
    rows: (usize, usize),
    cols: (usize, usize),
}

impl Dw {
    fn new(x: &[usize], w: &[usize], a: &ConvAttrs) -> Dw {
        let out = deepshrink_graph::shape::conv_shape(x, w, a).expect("checked by shape inference");
        Dw { n: x[0], c: x[1], h: x[2], w: x[3], kh: w[2], kw: w[3], oh: out[2], ow: out[3], a: a.clone() }
    }
    fn hw(&self) -> usize {
        self.h * self.w
    }
    fn p(&self) -> usize {
        self.oh * self.ow
    }
    fn cell(&self, ki: usize, kj: usize) -> Cell {
        let offh = (ki * self.a.dilations[0]) as isize - self.a.pads[0] as isize;
        let offw = (kj * self.a.dilations[1]) as isize - self.a.pads[1] as isize;
        Cell {
            offh,
            offw,
            rows: valid(self.oh, self.a.strides[0], offh, self.h),
            cols: valid(self.ow, self.a.strides[1], offw, self.w),
        }
    }
    /// Calls `f(output row, input row, output columns, first input column)` for every valid row
    /// of one kernel cell.
    fn rows(&self, cell: &Cell, mut f: impl FnMut(usize, usize, (usize, usize), usize)) {
        let (sh, sw) = (self.a.strides[0], self.a.strides[1]);
        let (w0, w1) = cell.cols;
        if w0 >= w1 {
            return;
        }
        let s0 = ((w0 * sw) as isize + cell.offw) as usize;
        for oh in cell.rows.0..cell.rows.1 {
            let ih = ((oh * sh) as isize + cell.offh) as usize;
            f(oh, ih, (w0, w1), s0);
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

/// `dst[i] += k * src[i * stride]` for every `i`.
#[inline]
fn axpy(dst: &mut [f32], k: f32, src: &[f32], stride: usize) {
    if stride == 1 {
        dst.iter_mut().zip(src).for_each(|(d, s)| *d += k * s);
    } else {
        dst.iter_mut().zip(src.iter().step_by(stride)).for_each(|(d, s)| *d += k * s);
    }
}

/// One channel plane of the forward pass: `out` (`OH*OW`) from `x` (`H*W`) and the channel's
/// filter `k` (`KH*KW`).
fn plane_forward(g: &Dw, x: &[f32], k: &[f32], bias: f32, out: &mut [f32]) {
    out.fill(bias);
    let sw = g.a.strides[1];
    for ki in 0..g.kh {
        for kj in 0..g.kw {
            let kv = k[ki * g.kw + kj];
            let cell = g.cell(ki, kj);
            g.rows(&cell, |oh, ih, (w0, w1), s0| {
                let dst = &mut out[oh * g.ow + w0..oh * g.ow + w1];
                axpy(dst, kv, &x[ih * g.w + s0..(ih + 1) * g.w], sw);
            });
        }
    }
}

/// Forward of a depthwise convolution (`is_depthwise` holds).
pub(super) fn forward(ins: &[&Buf], a: &ConvAttrs) -> Buf {
    let (x, w) = (ins[0], ins[1]);
    let g = Dw::new(&x.shape, &w.shape, a);
    let (hw, p, kk) = (g.hw(), g.p(), g.kh * g.kw);
    let bias = ins.get(2).map(|b| &b.data[..]);
    let mut out = vec![0.0f32; g.n * g.c * p];
    out.par_chunks_mut(g.c * p).zip(x.data.par_chunks(g.c * hw)).for_each(|(on, xn)| {
        for (ci, (o, xp)) in on.chunks_mut(p).zip(xn.chunks(hw)).enumerate() {
            let b = bias.map_or(0.0, |b| b[ci]);
            plane_forward(&g, xp, &w.data[ci * kk..(ci + 1) * kk], b, o);
        }
    });
    Buf::new(vec![g.n, g.c, g.oh, g.ow], out)
}

/// Backward of a depthwise convolution: gradients of input, weight and bias, each only if needed.
pub(super) fn backward(ins: &[&Buf], a: &ConvAttrs, dy: &[f32], need: &[bool]) -> Vec<Option<Vec<f32>>> {
    let (x, w) = (ins[0], ins[1]);
    let g = Dw::new(&x.shape, &w.shape, a);
    let (hw, p, kk) = (g.hw(), g.p(), g.kh * g.kw);
    let sw = g.a.strides[1];
    let mut out = vec![None, None, None];
    if need[0] {
        // dx[ih, s0 + i*sw] += k * dy[oh, w0 + i]: the forward's scatter transposed.
        let mut dx = vec![0.0f32; x.data.len()];
        dx.par_chunks_mut(g.c * hw).zip(dy.par_chunks(g.c * p)).for_each(|(dxn, dyn_)| {
            for (ci, (dxp, dyp)) in dxn.chunks_mut(hw).zip(dyn_.chunks(p)).enumerate() {
                let k = &w.data[ci * kk..(ci + 1) * kk];
                for ki in 0..g.kh {
                    for kj in 0..g.kw {
                        let kv = k[ki * g.kw + kj];
                        let cell = g.cell(ki, kj);
                        g.rows(&cell, |oh, ih, (w0, w1), s0| {
                            let src = &dyp[oh * g.ow + w0..oh * g.ow + w1];
                            let row = &mut dxp[ih * g.w + s0..(ih + 1) * g.w];
                            if sw == 1 {
                                row.iter_mut().zip(src).for_each(|(d, s)| *d += kv * s);
                            } else {
                                row.iter_mut().step_by(sw).zip(src).for_each(|(d, s)| *d += kv * s);
                            }
                        });
                    }
                }
            }
        });
        out[0] = Some(dx);
    }
    if need.get(1) == Some(&true) {
        // dw[c, cell] = sum over images and valid rows of dot(dy row, x row): one task per
        // channel, images in order.
        let mut dw = vec![0.0f32; w.data.len()];
        dw.par_chunks_mut(kk).enumerate().for_each(|(ci, dk)| {
            for ni in 0..g.n {
                let xp = &x.data[(ni * g.c + ci) * hw..][..hw];
                let dyp = &dy[(ni * g.c + ci) * p..][..p];
                for ki in 0..g.kh {
                    for kj in 0..g.kw {
                        let cell = g.cell(ki, kj);
                        let mut acc = 0.0f32;
                        g.rows(&cell, |oh, ih, (w0, w1), s0| {
                            let d = &dyp[oh * g.ow + w0..oh * g.ow + w1];
                            let xr = &xp[ih * g.w + s0..(ih + 1) * g.w];
                            acc += if sw == 1 {
                                d.iter().zip(xr).map(|(a, b)| a * b).sum::<f32>()
                            } else {
                                d.iter().zip(xr.iter().step_by(sw)).map(|(a, b)| a * b).sum::<f32>()
                            };
                        });
                        dk[ki * g.kw + kj] += acc;
                    }
                }
            }
        });
        out[1] = Some(dw);
    }
    if need.get(2) == Some(&true) && ins.len() > 2 {
        let mut db = vec![0.0f32; g.c];
        for dyn_ in dy.chunks(g.c * p) {
            for (d, row) in db.iter_mut().zip(dyn_.chunks(p)) {
                *d += row.iter().sum::<f32>();
            }
        }
        out[2] = Some(db);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    fn rand(rng: &mut Rng, shape: Vec<usize>) -> Buf {
        let n = shape.iter().product();
        Buf::new(shape, (0..n).map(|_| rng.range(-1.0, 1.0)).collect())
    }

    /// The direct kernel against the general grouped-GEMM path (`conv.rs` with the depthwise
    /// dispatch bypassed), forward and all three gradients, over kernel shapes k×1, 1×k and k×k
    /// with strides, asymmetric pads and dilations.
    #[test]
    fn matches_the_grouped_gemm_path() {
        let mut rng = Rng::new(3);
        let cases: [([usize; 2], ConvAttrs); 5] = [
            ([3, 1], ConvAttrs { pads: [1, 0, 1, 0], group: 5, ..Default::default() }),
            ([1, 3], ConvAttrs { pads: [0, 1, 0, 1], group: 5, ..Default::default() }),
            ([3, 3], ConvAttrs { pads: [1; 4], group: 5, ..Default::default() }),
            ([3, 2], ConvAttrs { strides: [2, 3], pads: [2, 0, 1, 1], dilations: [1, 2], group: 5 }),
            ([5, 1], ConvAttrs { strides: [1, 2], pads: [0, 3, 2, 0], dilations: [2, 1], group: 5 }),
        ];
        for (kernel, a) in cases {
            let x = rand(&mut rng, vec![3, 5, 9, 8]);
            let w = rand(&mut rng, vec![5, 1, kernel[0], kernel[1]]);
            let b = rand(&mut rng, vec![5]);
            assert!(is_depthwise(&x.shape, &w.shape, &a));
            let ins = [&x, &w, &b];
            let fast = forward(&ins, &a);
            let (slow, _) = super::super::conv::forward_im2col(&ins, &a);
            assert_eq!(fast.shape, slow.shape, "{kernel:?} {a:?}");
            close(&fast.data, &slow.data, "forward");
            let dy: Vec<f32> = (0..fast.data.len()).map(|_| rng.range(-1.0, 1.0)).collect();
            let need = [true, true, true];
            let gf = backward(&ins, &a, &dy, &need);
            let gs = super::super::conv::backward_gemm(&ins, &a, &dy, &need);
            for (i, (f, s)) in gf.iter().zip(&gs).enumerate() {
                close(f.as_ref().unwrap(), s.as_ref().unwrap(), &format!("gradient {i} of {kernel:?}"));
            }
        }
    }

    fn close(a: &[f32], b: &[f32], what: &str) {
        assert_eq!(a.len(), b.len(), "{what}");
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!((x - y).abs() <= 1e-4 * (1.0 + y.abs()), "{what}[{i}]: {x} vs {y}");
        }
    }
}
