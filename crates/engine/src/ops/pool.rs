//! Max, average and global average pooling over NCHW planes, one plane per task.

use rayon::prelude::*;

use super::{Buf, Saved};
use deepshrink_graph::{shape::pool_shape, PoolAttrs};

/// Window bounds along one axis for output index `o`: (start, end) clipped to the input, and the
/// window size counting padding (clipped to the padded extent), as PyTorch and ONNX define it.
fn window(
    o: usize,
    k: usize,
    s: usize,
    pad_begin: usize,
    pad_end: usize,
    len: usize,
) -> (usize, usize, usize) {
    let start = (o * s) as isize - pad_begin as isize;
    let end = (start + k as isize).min((len + pad_end) as isize);
    let padded = (end - start) as usize;
    (start.max(0) as usize, end.min(len as isize).max(0) as usize, padded)
}

pub(super) fn max_forward(x: &Buf, p: &PoolAttrs) -> (Buf, Saved) {
    let out_shape = pool_shape(&x.shape, p).expect("checked by shape inference");
    let (h, w, oh, ow) = (x.shape[2], x.shape[3], out_shape[2], out_shape[3]);
    let mut y = vec![0.0f32; out_shape.iter().product()];
    let mut arg = vec![0u32; y.len()];
    let simple = p.pads == [0; 4] && p.kernel == p.strides;
    let planes_per_task = (4096 / (oh * ow).max(1)).max(1);
    let task = |pl: usize, yp: &mut [f32], ap: &mut [u32]| {
        let xp = &x.data[pl * h * w..][..h * w];
        if simple && p.kernel == [2, 2] {
            // The common 2x2 / stride 2 case, unrolled.
            for i in 0..oh {
                let (r0, r1) = (&xp[2 * i * w..][..w], &xp[(2 * i + 1) * w..][..w]);
                for j in 0..ow {
                    let c = 2 * j;
                    let cands = [
                        (r0[c], 2 * i * w + c),
                        (r0[c + 1], 2 * i * w + c + 1),
                        (r1[c], (2 * i + 1) * w + c),
                        (r1[c + 1], (2 * i + 1) * w + c + 1),
                    ];
                    let mut best = cands[0];
                    for cand in &cands[1..] {
                        if cand.0 > best.0 {
                            best = *cand;
                        }
                    }
                    yp[i * ow + j] = best.0;
                    ap[i * ow + j] = best.1 as u32;
                }
            }
            return;
        }
        if simple {
            // Non-overlapping windows inside the input: no clipping needed.
            let (kh, kw) = (p.kernel[0], p.kernel[1]);
            for i in 0..oh {
                for j in 0..ow {
                    let (mut best, mut at) = (f32::NEG_INFINITY, i * kh * w + j * kw);
                    for r in i * kh..(i * kh + kh).min(h) {
                        for (c, &v) in xp[r * w..].iter().enumerate().take((j * kw + kw).min(w)).skip(j * kw)
                        {
                            if v > best {
                                best = v;
                                at = r * w + c;
                            }
                        }
                    }
                    yp[i * ow + j] = best;
                    ap[i * ow + j] = at as u32;
                }
            }
            return;
        }
        for i in 0..oh {
            let (h0, h1, _) = window(i, p.kernel[0], p.strides[0], p.pads[0], p.pads[2], h);
            for j in 0..ow {
                let (w0, w1, _) = window(j, p.kernel[1], p.strides[1], p.pads[1], p.pads[3], w);
                let (mut best, mut at) = (f32::NEG_INFINITY, h0 * w + w0);
                for r in h0..h1 {
                    for c in w0..w1 {
                        let v = xp[r * w + c];
                        if v > best {
                            best = v;
                            at = r * w + c;
                        }
                    }
                }
                yp[i * ow + j] = best;
                ap[i * ow + j] = at as u32;
            }
        }
    };
    let n = planes_per_task * oh * ow;
    y.par_chunks_mut(n).zip(arg.par_chunks_mut(n)).enumerate().for_each(|(t, (ys, as_))| {
        for (k, (yp, ap)) in ys.chunks_mut(oh * ow).zip(as_.chunks_mut(oh * ow)).enumerate() {
            task(t * planes_per_task + k, yp, ap);
        }
    });
    (Buf::new(out_shape, y), Saved::ArgMax(arg))
}

pub(super) fn max_backward(x: &Buf, saved: &Saved, dy: &[f32]) -> Vec<f32> {
    let Saved::ArgMax(arg) = saved else { unreachable!("max pool forward saves its argmax") };
    let hw = x.shape[2] * x.shape[3];
    let planes = x.shape[0] * x.shape[1];
    let ohw = dy.len() / planes.max(1);
    let mut dx = vec![0.0f32; x.data.len()];
    dx.par_chunks_mut(hw).enumerate().for_each(|(pl, dxp)| {
        for (g, &a) in dy[pl * ohw..(pl + 1) * ohw].iter().zip(&arg[pl * ohw..(pl + 1) * ohw]) {
            dxp[a as usize] += g;
        }
    });
    dx
}

/// Visits every (output cell, input cell, 1/divisor) of an average pooling of one plane.
fn avg_visit(x_shape: &[usize], p: &PoolAttrs, oh: usize, ow: usize, mut f: impl FnMut(usize, usize, f32)) {
    let (h, w) = (x_shape[2], x_shape[3]);
    for i in 0..oh {
        let (h0, h1, hp) = window(i, p.kernel[0], p.strides[0], p.pads[0], p.pads[2], h);
        for j in 0..ow {
            let (w0, w1, wp) = window(j, p.kernel[1], p.strides[1], p.pads[1], p.pads[3], w);
            let count = if p.count_include_pad { hp * wp } else { (h1 - h0) * (w1 - w0) };
            let inv = 1.0 / count.max(1) as f32;
            for r in h0..h1 {
                for c in w0..w1 {
                    f(i * ow + j, r * w + c, inv);
                }
            }
        }
    }
}

pub(super) fn avg_forward(x: &Buf, p: &PoolAttrs) -> Buf {
    let out_shape = pool_shape(&x.shape, p).expect("checked by shape inference");
    let (hw, oh, ow) = (x.shape[2] * x.shape[3], out_shape[2], out_shape[3]);
    let mut y = vec![0.0f32; out_shape.iter().product()];
    y.par_chunks_mut(oh * ow).enumerate().for_each(|(pl, yp)| {
        let xp = &x.data[pl * hw..][..hw];
        avg_visit(&x.shape, p, oh, ow, |o, i, inv| yp[o] += xp[i] * inv);
    });
    Buf::new(out_shape, y)
}

pub(super) fn avg_backward(x: &Buf, p: &PoolAttrs, dy: &[f32]) -> Vec<f32> {
    let out_shape = pool_shape(&x.shape, p).expect("checked by shape inference");
    let (hw, oh, ow) = (x.shape[2] * x.shape[3], out_shape[2], out_shape[3]);
    let mut dx = vec![0.0f32; x.data.len()];
    dx.par_chunks_mut(hw).enumerate().for_each(|(pl, dxp)| {
        let g = &dy[pl * oh * ow..][..oh * ow];
        avg_visit(&x.shape, p, oh, ow, |o, i, inv| dxp[i] += g[o] * inv);
    });
    dx
}

pub(super) fn global_avg_forward(x: &Buf) -> Buf {
    let hw: usize = x.shape[2..].iter().product();
    let y = x.data.chunks(hw.max(1)).map(|pl| pl.iter().sum::<f32>() / hw as f32).collect();
    let mut shape = x.shape.clone();
    shape[2..].iter_mut().for_each(|d| *d = 1);
    Buf::new(shape, y)
}

pub(super) fn global_avg_backward(x: &Buf, dy: &[f32]) -> Vec<f32> {
    let hw: usize = x.shape[2..].iter().product();
    let mut dx = vec![0.0f32; x.data.len()];
    for (pl, g) in dx.chunks_mut(hw.max(1)).zip(dy) {
        pl.iter_mut().for_each(|d| *d = g / hw as f32);
    }
    dx
}
