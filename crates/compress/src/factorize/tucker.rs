//! Tucker-2 decomposition of convolutions: a k×k conv becomes 1x1 → k×k core → 1x1.
//!
//! **What**: the kernel `W[S, C, kh, kw]` is approximated as `G ×₀ U_out ×₁ U_in` with
//! `U_out` (`S x r_out`) and `U_in` (`C x r_in`) orthonormal (Kim et al. 2016). The layer becomes
//! a 1x1 conv `C → r_in` (weight `U_inᵀ`), the core conv `r_in → r_out` with the original
//! kernel size, stride, padding and dilation, and a 1x1 conv `r_out → S` (weight `U_out`, the
//! original bias). Initialised by HOSVD (leading left singular vectors of the two mode
//! unfoldings); `hooi_iters` rounds of HOOI then refine both factors in turn.
//! **When**: 3x3 (or larger) convolutions with many channels: MACs fall from `S C k²` to about
//! `C r_in + r_in r_out k² + r_out S` per output pixel.
//! **Cost**: the relative error is `sqrt(‖W‖² - ‖G‖²) / ‖W‖`; fine-tuning recovers the rest.
//! **Paper**: Kim, Park, Yoo, Choi, Yang and Shin, "Compression of Deep Convolutional Neural
//! Networks for Fast and Low Power Mobile Applications", ICLR 2016 (ranks by VBMF).
//! **Recipe**:
//! ```toml
//! [[pass]]
//! kind = "tucker2"
//! vbmf = true                # or ratio = 3.0 (MACs), energy = 0.9, rank = 16
//! hooi_iters = 10
//! finetune_epochs = 2
//! ```

use deepshrink_graph::{ConvAttrs, Node, Op, Tensor};

use super::linalg::{leading_left, svd, M};
use super::Rewrite;

/// A Tucker-2 decomposition of a `[S, C, kh, kw]` kernel.
#[derive(Debug, Clone)]
pub struct Tucker2 {
    /// `U_out`, `S x r_out`.
    pub out: M,
    /// `U_in`, `C x r_in`.
    pub inp: M,
    /// The core, `[r_out, r_in, kh, kw]` row-major.
    pub core: Vec<f64>,
    /// Relative Frobenius reconstruction error.
    pub rel_error: f64,
    /// HOOI rounds run.
    pub iters: usize,
}

/// Mode-0 unfolding (`S x C*kk`): the kernel as stored.
pub fn unfold0(w: &[f64], s: usize, ckk: usize) -> M {
    M::new(s, ckk, w.to_vec())
}

/// Mode-1 unfolding (`C x S*kk`), columns in C order over (s, cell) as numpy/tensorly.
pub fn unfold1(w: &[f64], s: usize, c: usize, kk: usize) -> M {
    let mut out = M::zeros(c, s * kk);
    for si in 0..s {
        for ci in 0..c {
            for p in 0..kk {
                out.data[ci * s * kk + si * kk + p] = w[(si * c + ci) * kk + p];
            }
        }
    }
    out
}

/// `W ×₁ Uᵀ`: `[S, C, kk]` → `[S, r, kk]` with `U` `C x r`.
fn mode1(w: &[f64], s: usize, c: usize, kk: usize, u: &M) -> Vec<f64> {
    let r = u.cols;
    let mut out = vec![0.0; s * r * kk];
    for si in 0..s {
        for ci in 0..c {
            let src = &w[(si * c + ci) * kk..][..kk];
            for j in 0..r {
                let f = u.at(ci, j);
                let dst = &mut out[(si * r + j) * kk..][..kk];
                dst.iter_mut().zip(src).for_each(|(d, x)| *d += f * x);
            }
        }
    }
    out
}

/// `W ×₀ Uᵀ`: `[S, C, kk]` → `[r, C, kk]` with `U` `S x r`.
fn mode0(w: &[f64], s: usize, ckk: usize, u: &M) -> Vec<f64> {
    let r = u.cols;
    let mut out = vec![0.0; r * ckk];
    for si in 0..s {
        let src = &w[si * ckk..][..ckk];
        for j in 0..r {
            let f = u.at(si, j);
            out[j * ckk..][..ckk].iter_mut().zip(src).for_each(|(d, x)| *d += f * x);
        }
    }
    out
}

/// Tucker-2 of `w` (`shape = [S, C, kh, kw]`) at ranks `(r_out, r_in)`: HOSVD, then up to
/// `hooi_iters` HOOI rounds, stopping when the error changes by less than `tol` (tensorly's
/// `partial_tucker` rule). `None` if an SVD fails.
pub fn decompose(
    w: &[f64],
    shape: [usize; 4],
    r_out: usize,
    r_in: usize,
    hooi_iters: usize,
    tol: f64,
) -> Option<Tucker2> {
    let [s, c, kh, kw] = shape;
    let kk = kh * kw;
    let norm2: f64 = w.iter().map(|v| v * v).sum();
    let mut out = leading_left(&unfold0(w, s, c * kk), r_out)?;
    let mut inp = leading_left(&unfold1(w, s, c, kk), r_in)?;
    let error = |core: &[f64]| {
        let g2: f64 = core.iter().map(|v| v * v).sum();
        if norm2 > 0.0 {
            ((norm2 - g2).abs()).sqrt() / norm2.sqrt()
        } else {
            0.0
        }
    };
    let core_of = |out: &M, inp: &M| mode1(&mode0(w, s, c * kk, out), out.cols, c, kk, inp);
    let mut core = core_of(&out, &inp);
    let mut err = error(&core);
    let mut iters = 0;
    for _ in 0..hooi_iters {
        iters += 1;
        let y = mode1(w, s, c, kk, &inp);
        out = leading_left(&unfold0(&y, s, r_in * kk), r_out)?;
        let z = mode0(w, s, c * kk, &out);
        inp = leading_left(&unfold1(&z, r_out, c, kk), r_in)?;
        core = core_of(&out, &inp);
        let e = error(&core);
        let done = (err - e).abs() < tol;
        err = e;
        if done {
            break;
        }
    }
    Some(Tucker2 { out, inp, core, rel_error: err, iters })
}

/// Singular values of the two unfoldings (output mode, input mode), for rank selection.
pub fn spectra(w: &[f64], shape: [usize; 4]) -> Option<(Vec<f64>, Vec<f64>)> {
    let [s, c, kh, kw] = shape;
    let kk = kh * kw;
    Some((svd(&unfold0(w, s, c * kk))?.s, svd(&unfold1(w, s, c, kk))?.s))
}

/// MACs per output pixel of the factored layer times the output pixels, given the input and
/// output spatial sizes (`hw_in`, `hw_out`).
pub fn macs(shape: [usize; 4], r_out: usize, r_in: usize, hw_in: usize, hw_out: usize) -> f64 {
    let [s, c, kh, kw] = shape;
    (hw_in * c * r_in + hw_out * (r_in * r_out * kh * kw + r_out * s)) as f64
}

/// Replaces the conv `node` (weight `w_name`) by the 1x1 → core → 1x1 chain of `t`.
pub fn rewrite(node: &Node, w_name: &str, attrs: &ConvAttrs, shape: [usize; 4], t: &Tucker2) -> Rewrite {
    let [s, c, kh, kw] = shape;
    let (r_out, r_in) = (t.out.cols, t.inp.cols);
    let f = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();
    let first = f(&t.inp.t().data); // [r_in, C]
    let last = f(&t.out.data); // [S, r_out]
    let names =
        [format!("{w_name}.tucker_in"), format!("{w_name}.tucker_core"), format!("{w_name}.tucker_out")];
    let (n1, n2) = (format!("{}.tucker_in", node.name), format!("{}.tucker_core", node.name));
    let pointwise = ConvAttrs::default();
    let mut last_in = vec![n2.clone(), names[2].clone()];
    last_in.extend(node.inputs.get(2).cloned());
    Rewrite {
        nodes: vec![
            Node {
                name: n1.clone(),
                op: Op::Conv(pointwise.clone()),
                inputs: vec![node.inputs[0].clone(), names[0].clone()],
                outputs: vec![n1.clone()],
            },
            Node {
                name: n2.clone(),
                op: Op::Conv(ConvAttrs { group: 1, ..attrs.clone() }),
                inputs: vec![n1, names[1].clone()],
                outputs: vec![n2],
            },
            Node {
                name: node.name.clone(),
                op: Op::Conv(pointwise),
                inputs: last_in,
                outputs: node.outputs.clone(),
            },
        ],
        weights: vec![
            (names[0].clone(), Tensor::f32(vec![r_in, c, 1, 1], first)),
            (names[1].clone(), Tensor::f32(vec![r_out, r_in, kh, kw], f(&t.core))),
            (names[2].clone(), Tensor::f32(vec![s, r_out, 1, 1], last)),
        ],
        rank: format!("{r_in}x{r_out}"),
        rel_error: t.rel_error,
        note: (t.iters > 0).then(|| format!("HOOI {} rounds", t.iters)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_ranks_reconstruct_exactly() {
        let shape = [3, 2, 2, 2];
        let w: Vec<f64> = (0..24).map(|i| ((i * 7 % 11) as f64 - 5.0) / 3.0).collect();
        let t = decompose(&w, shape, 3, 2, 0, 1e-4).unwrap();
        assert!(t.rel_error < 1e-7, "{}", t.rel_error);
        // Rebuild W = core ×0 U_out ×1 U_in and compare.
        for s in 0..3 {
            for c in 0..2 {
                for p in 0..4 {
                    let mut v = 0.0;
                    for a in 0..3 {
                        for b in 0..2 {
                            v += t.out.at(s, a) * t.inp.at(c, b) * t.core[(a * 2 + b) * 4 + p];
                        }
                    }
                    assert!((v - w[(s * 2 + c) * 4 + p]).abs() < 1e-9);
                }
            }
        }
    }

    #[test]
    fn hooi_never_worse_than_hosvd() {
        let shape = [6, 5, 3, 3];
        let w: Vec<f64> = (0..270).map(|i| (i * 37 % 101) as f64 / 50.0 - 1.0).collect();
        let h = decompose(&w, shape, 3, 2, 0, 1e-4).unwrap();
        let o = decompose(&w, shape, 3, 2, 50, 1e-10).unwrap();
        assert!(o.rel_error <= h.rel_error + 1e-12, "{} > {}", o.rel_error, h.rel_error);
    }
}
