//! Batch normalization over axis 1 (channels).

use rayon::prelude::*;

use super::{Buf, Saved};

struct Layout {
    n: usize,
    c: usize,
    inner: usize,
}

impl Layout {
    fn of(x: &Buf) -> Layout {
        Layout { n: x.shape[0], c: x.shape[1], inner: x.shape[2..].iter().product() }
    }
    fn count(&self) -> usize {
        self.n * self.inner
    }
    /// Sum of `f(linear index)` over all elements of channel `c`.
    fn sum(&self, c: usize, f: impl Fn(usize) -> f64) -> f64 {
        (0..self.n)
            .map(|n| ((n * self.c + c) * self.inner..(n * self.c + c + 1) * self.inner).map(&f).sum::<f64>())
            .sum()
    }
}

/// Applies per-channel `y = x * a[c] + b[c]`.
fn affine(x: &[f32], l: &Layout, a: &[f32], b: &[f32]) -> Vec<f32> {
    let mut y = vec![0.0f32; x.len()];
    y.par_chunks_mut(l.c * l.inner).zip(x.par_chunks(l.c * l.inner)).for_each(|(yn, xn)| {
        for c in 0..l.c {
            let r = c * l.inner..(c + 1) * l.inner;
            yn[r.clone()].iter_mut().zip(&xn[r]).for_each(|(y, x)| *y = x * a[c] + b[c]);
        }
    });
    y
}

pub(super) fn forward(ins: &[&Buf], eps: f32, train: bool) -> (Buf, Saved) {
    let (x, scale, bias) = (ins[0], &ins[1].data, &ins[2].data);
    let l = Layout::of(x);
    let (mean, var, saved) = if train {
        let cnt = l.count() as f64;
        let stats: Vec<(f32, f32)> = (0..l.c)
            .into_par_iter()
            .map(|c| {
                let mean = l.sum(c, |i| x.data[i] as f64) / cnt;
                let var = l.sum(c, |i| (x.data[i] as f64 - mean).powi(2)) / cnt;
                (mean as f32, var as f32)
            })
            .collect();
        let mean: Vec<f32> = stats.iter().map(|s| s.0).collect();
        let var: Vec<f32> = stats.iter().map(|s| s.1).collect();
        let unbias = if cnt > 1.0 { cnt / (cnt - 1.0) } else { 1.0 };
        let var_unbiased = var.iter().map(|&v| (v as f64 * unbias) as f32).collect();
        let invstd = var.iter().map(|v| 1.0 / (v + eps).sqrt()).collect();
        (mean.clone(), var, Saved::Bn { mean, invstd, var_unbiased })
    } else {
        (ins[3].data.clone(), ins[4].data.clone(), Saved::None)
    };
    let a: Vec<f32> = (0..l.c).map(|c| scale[c] / (var[c] + eps).sqrt()).collect();
    let b: Vec<f32> = (0..l.c).map(|c| bias[c] - mean[c] * a[c]).collect();
    (Buf::new(x.shape.clone(), affine(&x.data, &l, &a, &b)), saved)
}

pub(super) fn backward(
    ins: &[&Buf],
    saved: &Saved,
    eps: f32,
    dy: &[f32],
    need: &[bool],
) -> Vec<Option<Vec<f32>>> {
    let (x, scale) = (ins[0], &ins[1].data);
    let l = Layout::of(x);
    let (mean, invstd, batch_stats) = match saved {
        Saved::Bn { mean, invstd, .. } => (mean.clone(), invstd.clone(), true),
        _ => (ins[3].data.clone(), ins[4].data.iter().map(|v| 1.0 / (v + eps).sqrt()).collect(), false),
    };
    // Per channel: sum(dy) and sum(dy * xhat).
    let sums: Vec<(f64, f64)> = (0..l.c)
        .into_par_iter()
        .map(|c| {
            let (m, s) = (mean[c] as f64, invstd[c] as f64);
            (l.sum(c, |i| dy[i] as f64), l.sum(c, |i| dy[i] as f64 * (x.data[i] as f64 - m) * s))
        })
        .collect();
    let dbias: Vec<f32> = sums.iter().map(|s| s.0 as f32).collect();
    let dscale: Vec<f32> = sums.iter().map(|s| s.1 as f32).collect();
    let mut out = vec![None, None, None, None, None];
    if need[0] {
        let cnt = l.count() as f32;
        let mut dx = vec![0.0f32; x.data.len()];
        dx.par_chunks_mut(l.c * l.inner).enumerate().for_each(|(n, dxn)| {
            for c in 0..l.c {
                let k = scale[c] * invstd[c];
                let base = (n * l.c + c) * l.inner;
                for (j, d) in dxn[c * l.inner..(c + 1) * l.inner].iter_mut().enumerate() {
                    let i = base + j;
                    *d = if batch_stats {
                        let xhat = (x.data[i] - mean[c]) * invstd[c];
                        k / cnt * (cnt * dy[i] - dbias[c] - xhat * dscale[c])
                    } else {
                        k * dy[i]
                    };
                }
            }
        });
        out[0] = Some(dx);
    }
    if need[1] {
        out[1] = Some(dscale);
    }
    if need[2] {
        out[2] = Some(dbias);
    }
    out
}
