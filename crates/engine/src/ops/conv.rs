//! 2-D convolution as im2col + GEMM, one image at a time per thread.
//!
//! Images are processed in micro-batches (about 1024 output pixels each, see `micro_batch`), one
//! micro-batch per task: its column matrix `[C*KH*KW, b*OH*OW]` is small enough to stay in cache
//! and wide enough for the GEMM kernel to run near peak, where one GEMM per image (K or N = 64
//! for LeNet-5's second layer) would not. The backward pass rebuilds the columns instead of
//! storing them (cheaper than a round trip through memory).
//! The weight gradient is accumulated per worker and summed in worker order, so results do not
//! depend on thread timing.

use rayon::prelude::*;

use super::{depthwise, Buf, Saved};
use crate::linalg::{matmul_seq, Mat};
use deepshrink_graph::ConvAttrs;

/// Geometry of one convolution call.
struct Geo {
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    m: usize,
    kh: usize,
    kw: usize,
    oh: usize,
    ow: usize,
    a: ConvAttrs,
}

impl Geo {
    fn new(x: &[usize], w: &[usize], a: &ConvAttrs) -> Geo {
        let out = deepshrink_graph::shape::conv_shape(x, w, a).expect("checked by shape inference");
        Geo {
            n: x[0],
            c: x[1],
            h: x[2],
            w: x[3],
            m: w[0],
            kh: w[2],
            kw: w[3],
            oh: out[2],
            ow: out[3],
            a: a.clone(),
        }
    }
    fn p(&self) -> usize {
        self.oh * self.ow
    }
    fn kk(&self) -> usize {
        self.kh * self.kw
    }
    fn chw(&self) -> usize {
        self.c * self.h * self.w
    }
    /// Rows of the column matrix: input channels times kernel cells.
    fn rows(&self) -> usize {
        self.c * self.kk()
    }
    /// Rows of one group's weight matrix and of its block of columns.
    fn group_dims(&self) -> (usize, usize) {
        (self.m / self.a.group, (self.c / self.a.group) * self.kk())
    }
    /// For column-matrix row `r`: (channel, vertical offset, horizontal offset, valid output rows,
    /// valid output columns).
    fn row(&self, r: usize) -> (usize, isize, isize, (usize, usize), (usize, usize)) {
        let kk = self.kk();
        let (c, ki, kj) = (r / kk, (r % kk) / self.kw, r % self.kw);
        let offh = (ki * self.a.dilations[0]) as isize - self.a.pads[0] as isize;
        let offw = (kj * self.a.dilations[1]) as isize - self.a.pads[1] as isize;
        let vh = valid(self.oh, self.a.strides[0], offh, self.h);
        let vw = valid(self.ow, self.a.strides[1], offw, self.w);
        (c, offh, offw, vh, vw)
    }
    /// Images per worker: a fixed split, so reductions do not depend on scheduling.
    fn share(&self) -> usize {
        self.n.div_ceil(rayon::current_num_threads().max(1)).max(1)
    }
}

/// Output positions `o` in `0..len` with `o * stride + off` inside `0..limit`.
fn valid(len: usize, stride: usize, off: isize, limit: usize) -> (usize, usize) {
    let s = stride as isize;
    let lo = if off >= 0 { 0 } else { ((-off) + s - 1) / s };
    let hi = (limit as isize - off + s - 1).div_euclid(s).clamp(0, len as isize);
    (lo.min(hi) as usize, hi as usize)
}

/// Writes the column matrix `[C*KH*KW, OH*OW]` of one image `x` (`[C, H, W]`) into `cols`, a
/// matrix with row stride `ld`, starting at column `off`.
fn im2col(x: &[f32], g: &Geo, cols: &mut [f32], ld: usize, off: usize) {
    let (p, sh, sw) = (g.p(), g.a.strides[0], g.a.strides[1]);
    for r in 0..g.rows() {
        let row = &mut cols[r * ld + off..][..p];
        let (c, offh, offw, (h0, h1), (w0, w1)) = g.row(r);
        let plane = &x[c * g.h * g.w..][..g.h * g.w];
        row.fill(0.0);
        for oh in h0..h1 {
            let ih = ((oh * sh) as isize + offh) as usize;
            let src = &plane[ih * g.w..][..g.w];
            let dst = &mut row[oh * g.ow..(oh + 1) * g.ow];
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

/// Adds the column-matrix gradient of one image (row stride `ld`, starting at column `off`) back
/// onto its input gradient `dx` (`[C, H, W]`).
fn col2im(dcols: &[f32], g: &Geo, dx: &mut [f32], ld: usize, off: usize) {
    let (p, sh, sw) = (g.p(), g.a.strides[0], g.a.strides[1]);
    for r in 0..g.rows() {
        let src = &dcols[r * ld + off..][..p];
        let (c, offh, offw, (h0, h1), (w0, w1)) = g.row(r);
        let plane = &mut dx[c * g.h * g.w..][..g.h * g.w];
        for oh in h0..h1 {
            let ih = ((oh * sh) as isize + offh) as usize;
            let dst = &mut plane[ih * g.w..][..g.w];
            let s = &src[oh * g.ow..(oh + 1) * g.ow];
            if sw == 1 {
                let d0 = (w0 as isize + offw) as usize;
                dst[d0..d0 + (w1 - w0)].iter_mut().zip(&s[w0..w1]).for_each(|(d, v)| *d += v);
            } else {
                for ow in w0..w1 {
                    dst[((ow * sw) as isize + offw) as usize] += s[ow];
                }
            }
        }
    }
}

/// Images per GEMM: enough columns (about 1024) for the matrix kernel to run efficiently, few
/// enough for the column matrix to stay in cache.
fn micro_batch(g: &Geo) -> usize {
    (1024 / g.p().max(1)).clamp(1, 64)
}

/// Forward. Convolution saves nothing: the backward pass rebuilds the columns. Depthwise
/// convolutions run on the direct kernel (`depthwise.rs`).
pub(super) fn forward(ins: &[&Buf], a: &ConvAttrs, _train: bool) -> (Buf, Saved) {
    if depthwise::is_depthwise(&ins[0].shape, &ins[1].shape, a) {
        return (depthwise::forward(ins, a), Saved::None);
    }
    forward_gemm(ins, a)
}

/// Forward by GEMM: a pointwise convolution on images of at least 256 pixels straight from the
/// input (no column matrix), the others by im2col + GEMM (one GEMM per group).
pub(super) fn forward_gemm(ins: &[&Buf], a: &ConvAttrs) -> (Buf, Saved) {
    let g = Geo::new(&ins[0].shape, &ins[1].shape, a);
    if g.kk() == 1 && a.group == 1 && a.strides == [1, 1] && a.pads == [0; 4] && g.p() >= 256 {
        return (pointwise_forward(ins, &g), Saved::None);
    }
    forward_im2col(ins, a)
}

/// A 1x1 convolution with unit stride and no padding: per image, `Y[M, P] = W[M, C] X[C, P]`
/// written in place (the image is its own column matrix, and the output needs no reordering).
fn pointwise_forward(ins: &[&Buf], g: &Geo) -> Buf {
    let (x, w) = (ins[0], ins[1]);
    let p = g.p();
    let bias = ins.get(2).map(|b| &b.data[..]);
    let mut out = vec![0.0f32; g.n * g.m * p];
    out.par_chunks_mut(g.m * p).zip(x.data.par_chunks(g.chw())).for_each(|(on, xn)| {
        matmul_seq(on, Mat::rm(&w.data, g.m, g.c), Mat::rm(xn, g.c, p), false, 1.0);
        if let Some(b) = bias {
            for (row, bm) in on.chunks_mut(p).zip(b) {
                row.iter_mut().for_each(|v| *v += bm);
            }
        }
    });
    Buf::new(vec![g.n, g.m, g.oh, g.ow], out)
}

/// Forward by im2col + GEMM (one GEMM per group).
pub(super) fn forward_im2col(ins: &[&Buf], a: &ConvAttrs) -> (Buf, Saved) {
    let (x, w) = (ins[0], ins[1]);
    let g = Geo::new(&x.shape, &w.shape, a);
    let (p, (mg, ckk), mb) = (g.p(), g.group_dims(), micro_batch(&g));
    let bias = ins.get(2).map(|b| &b.data[..]);
    let mut out = vec![0.0f32; g.n * g.m * p];
    out.par_chunks_mut(mb * g.m * p).zip(x.data.par_chunks(mb * g.chw())).for_each(|(outs, xs)| {
        let b = xs.len() / g.chw();
        let ld = b * p;
        let mut cols = vec![0.0f32; g.rows() * ld];
        let mut y = vec![0.0f32; g.m * ld];
        for (i, xn) in xs.chunks(g.chw()).enumerate() {
            im2col(xn, &g, &mut cols, ld, i * p);
        }
        for gi in 0..a.group {
            let wg = Mat::rm(&w.data[gi * mg * ckk..], mg, ckk);
            let cg = Mat::rm(&cols[gi * ckk * ld..], ckk, ld);
            matmul_seq(&mut y[gi * mg * ld..(gi + 1) * mg * ld], wg, cg, false, 1.0);
        }
        // [M, b*P] -> [b, M, P], adding the bias.
        for (i, on) in outs.chunks_mut(g.m * p).enumerate() {
            for (m, row) in on.chunks_mut(p).enumerate() {
                let bm = bias.map_or(0.0, |b| b[m]);
                row.iter_mut().zip(&y[m * ld + i * p..][..p]).for_each(|(o, v)| *o = v + bm);
            }
        }
    });
    (Buf::new(vec![g.n, g.m, g.oh, g.ow], out), Saved::None)
}

/// Backward: gradients of input, weight and bias, each only if needed.
pub(super) fn backward(ins: &[&Buf], a: &ConvAttrs, dy: &[f32], need: &[bool]) -> Vec<Option<Vec<f32>>> {
    if depthwise::is_depthwise(&ins[0].shape, &ins[1].shape, a) {
        return depthwise::backward(ins, a, dy, need);
    }
    backward_gemm(ins, a, dy, need)
}

/// Backward by im2col + GEMM.
pub(super) fn backward_gemm(ins: &[&Buf], a: &ConvAttrs, dy: &[f32], need: &[bool]) -> Vec<Option<Vec<f32>>> {
    let (x, w) = (ins[0], ins[1]);
    let g = Geo::new(&x.shape, &w.shape, a);
    let (p, (mg, ckk), mb) = (g.p(), g.group_dims(), micro_batch(&g));
    let (need_x, need_w) = (need[0], need.get(1) == Some(&true));
    let share = g.share().div_ceil(mb) * mb;
    let mut dx = if need_x { vec![0.0f32; x.data.len()] } else { Vec::new() };
    // Per worker: its images' input gradients (written in place) and its partial weight gradient.
    let work = |xs: &[f32], dys: &[f32], dxs: &mut [f32]| -> Vec<f32> {
        let mut dw = if need_w { vec![0.0f32; w.data.len()] } else { Vec::new() };
        let (mut cols, mut dym) = (Vec::new(), Vec::new());
        for (j, (xb, dyb)) in xs.chunks(mb * g.chw()).zip(dys.chunks(mb * g.m * p)).enumerate() {
            let b = xb.len() / g.chw();
            let ld = b * p;
            cols.resize(g.rows() * ld, 0.0);
            dym.resize(g.m * ld, 0.0);
            // [b, M, P] -> [M, b*P].
            for (i, dyn_) in dyb.chunks(g.m * p).enumerate() {
                for (m, row) in dyn_.chunks(p).enumerate() {
                    dym[m * ld + i * p..][..p].copy_from_slice(row);
                }
            }
            if need_w {
                for (i, xn) in xb.chunks(g.chw()).enumerate() {
                    im2col(xn, &g, &mut cols, ld, i * p);
                }
                for gi in 0..a.group {
                    let dyg = Mat::rm(&dym[gi * mg * ld..], mg, ld);
                    let cg = Mat::rm(&cols[gi * ckk * ld..], ckk, ld);
                    matmul_seq(&mut dw[gi * mg * ckk..(gi + 1) * mg * ckk], dyg, cg.t(), true, 1.0);
                }
            }
            if need_x {
                for gi in 0..a.group {
                    let wg = Mat::rm(&w.data[gi * mg * ckk..], mg, ckk);
                    let dyg = Mat::rm(&dym[gi * mg * ld..], mg, ld);
                    matmul_seq(&mut cols[gi * ckk * ld..(gi + 1) * ckk * ld], wg.t(), dyg, false, 1.0);
                }
                let dxb = &mut dxs[j * mb * g.chw()..][..b * g.chw()];
                for (i, dxn) in dxb.chunks_mut(g.chw()).enumerate() {
                    col2im(&cols, &g, dxn, ld, i * p);
                }
            }
        }
        dw
    };
    let partial_dw: Vec<Vec<f32>> = if need_x {
        x.data
            .par_chunks(share * g.chw())
            .zip(dy.par_chunks(share * g.m * p))
            .zip(dx.par_chunks_mut(share * g.chw()))
            .map(|((xs, dys), dxs)| work(xs, dys, dxs))
            .collect()
    } else {
        x.data
            .par_chunks(share * g.chw())
            .zip(dy.par_chunks(share * g.m * p))
            .map(|(xs, dys)| work(xs, dys, &mut []))
            .collect()
    };
    let mut out = vec![None, None, None];
    if need_w {
        let mut it = partial_dw.into_iter();
        let mut dw = it.next().unwrap_or_else(|| vec![0.0; w.data.len()]);
        for part in it {
            dw.iter_mut().zip(&part).for_each(|(a, b)| *a += b);
        }
        out[1] = Some(dw);
    }
    if need.get(2) == Some(&true) && ins.len() > 2 {
        let mut db = vec![0.0f32; g.m];
        for dyn_ in dy.chunks(g.m * p) {
            for (d, row) in db.iter_mut().zip(dyn_.chunks(p)) {
                *d += row.iter().sum::<f32>();
            }
        }
        out[2] = Some(db);
    }
    if need_x {
        out[0] = Some(dx);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    /// The pointwise path against im2col + GEMM on a 1x1 conv over 16x17 images.
    #[test]
    fn pointwise_matches_im2col() {
        let mut rng = Rng::new(11);
        let mut rand = |shape: Vec<usize>| {
            let n = shape.iter().product();
            Buf::new(shape, (0..n).map(|_| rng.range(-1.0, 1.0)).collect())
        };
        let (x, w, b) = (rand(vec![3, 5, 16, 17]), rand(vec![7, 5, 1, 1]), rand(vec![7]));
        let a = ConvAttrs::default();
        let (fast, _) = forward_gemm(&[&x, &w, &b], &a);
        let (slow, _) = forward_im2col(&[&x, &w, &b], &a);
        assert_eq!(fast.shape, slow.shape);
        for (u, v) in fast.data.iter().zip(&slow.data) {
            assert!((u - v).abs() <= 1e-5 * (1.0 + v.abs()), "{u} vs {v}");
        }
    }
}
