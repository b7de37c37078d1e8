//! CP decomposition of convolutions by ALS: 1x1 → k×1 depthwise → 1×k depthwise → 1x1.
//!
//! **What**: the kernel `W[S, C, kh, kw]` is approximated by a sum of `R` rank-one terms
//! `Σ_r a_S[:, r] ∘ a_C[:, r] ∘ a_h[:, r] ∘ a_w[:, r]` fitted by alternating least squares
//! (Lebedev et al. 2015; initialised like tensorly's `parafac(init="svd")`: leading left singular
//! vectors of each unfolding, the first scaled by the singular values, deterministic
//! pseudo-random columns where a mode is shorter than `R`). The layer becomes a 1x1 conv
//! `C → R`, a `kh×1` depthwise conv (stride, padding and dilation of the height), a `1×kw`
//! depthwise conv (those of the width) and a 1x1 conv `R → S` with the original bias.
//! **When**: when the MAC budget is tight: the chain costs `R (C + kh + kw + S)` per output
//! pixel (the first conv at input resolution) against `S C kh kw`.
//! **Cost**: larger reconstruction error than Tucker-2 at equal size and harder fine-tuning
//! (Lebedev et al. fine-tune with a small learning rate); ALS may stall, which the report shows.
//! **Paper**: Lebedev, Ganin, Rakhuba, Oseledets and Lempitsky, "Speeding-up Convolutional
//! Neural Networks Using Fine-tuned CP-Decomposition", ICLR 2015.
//! **Recipe**:
//! ```toml
//! [[pass]]
//! kind = "cp"
//! ratio = 3.0                # MACs of each layer shrink 3x; or rank = 24
//! max_iter = 200
//! finetune_epochs = 2
//! lr = 1e-4
//! ```

use deepshrink_graph::{ConvAttrs, Node, Op, Tensor};

use super::linalg::{solve_right_spd, svd, M};
use super::Rewrite;

/// A CP decomposition of a 4-way tensor: one `I_n x R` factor per mode.
#[derive(Debug, Clone)]
pub struct Cp {
    /// Factors for modes S, C, kh, kw.
    pub factors: [M; 4],
    /// Relative Frobenius reconstruction error.
    pub rel_error: f64,
    /// ALS sweeps run.
    pub iters: usize,
    /// True if the error settled (relative change below the tolerance) before `max_iter`.
    pub converged: bool,
}

/// Mode-`n` unfolding of a row-major tensor (numpy/tensorly order: the other modes in order,
/// the last fastest).
pub fn unfold(t: &[f64], dims: &[usize; 4], n: usize) -> M {
    let others: Vec<usize> = (0..4).filter(|&m| m != n).collect();
    let cols: usize = others.iter().map(|&m| dims[m]).product();
    let mut out = M::zeros(dims[n], cols);
    let mut idx = [0usize; 4];
    for &v in t {
        let col = others.iter().fold(0, |acc, &m| acc * dims[m] + idx[m]);
        out.data[idx[n] * cols + col] = v;
        for m in (0..4).rev() {
            idx[m] += 1;
            if idx[m] < dims[m] {
                break;
            }
            idx[m] = 0;
        }
    }
    out
}

/// Khatri-Rao product of the factors other than `skip`, in mode order (the first slowest),
/// matching [`unfold`].
fn khatri_rao(f: &[M; 4], skip: usize) -> M {
    let r = f[0].cols;
    let mut acc = M::new(1, r, vec![1.0; r]);
    for (m, a) in f.iter().enumerate() {
        if m == skip {
            continue;
        }
        let mut next = M::zeros(acc.rows * a.rows, r);
        for i in 0..acc.rows {
            for j in 0..a.rows {
                for k in 0..r {
                    next.data[(i * a.rows + j) * r + k] = acc.at(i, k) * a.at(j, k);
                }
            }
        }
        acc = next;
    }
    acc
}

/// A deterministic uniform [0, 1) stream (SplitMix64).
fn uniform(state: &mut u64) -> f64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
}

/// CP-ALS of `t` (`dims`, row-major) at rank `r`: at most `max_iter` sweeps, stopping when the
/// relative error changes by less than `tol` (relative). `None` if an SVD of the initialisation
/// fails (non-finite input).
pub fn decompose(t: &[f64], dims: [usize; 4], r: usize, max_iter: usize, tol: f64, seed: u64) -> Option<Cp> {
    let norm2: f64 = t.iter().map(|v| v * v).sum();
    let unfolded: Vec<M> = (0..4).map(|n| unfold(t, &dims, n)).collect();
    let mut state = seed;
    let mut init = Vec::with_capacity(4);
    for (n, u) in unfolded.iter().enumerate() {
        let d = svd(u)?;
        let mut a = M::zeros(dims[n], r);
        for i in 0..dims[n] {
            for k in 0..r {
                a.data[i * r + k] = if k < d.u.cols {
                    d.u.at(i, k) * if n == 0 { d.s[k] } else { 1.0 }
                } else {
                    uniform(&mut state)
                };
            }
        }
        init.push(a);
    }
    let mut f: [M; 4] = init.try_into().expect("four modes");
    let gram = |a: &M| a.t().mul(a);
    let mut grams: Vec<M> = f.iter().map(gram).collect();
    let (mut err, mut iters, mut converged) = (f64::INFINITY, 0, false);
    for _ in 0..max_iter {
        iters += 1;
        let mut mttkrp_last = M::zeros(0, 0);
        for n in 0..4 {
            let mut v = M::new(r, r, vec![1.0; r * r]);
            for (m, g) in grams.iter().enumerate() {
                if m != n {
                    v.data.iter_mut().zip(&g.data).for_each(|(x, y)| *x *= y);
                }
            }
            let mttkrp = unfolded[n].mul(&khatri_rao(&f, n));
            f[n] = solve_right_spd(&v, &mttkrp);
            grams[n] = gram(&f[n]);
            if n == 3 {
                mttkrp_last = mttkrp;
            }
        }
        // ‖T - [[A]]‖² = ‖T‖² - 2 <T, [[A]]> + ‖[[A]]‖², with <T, [[A]]> = Σ (A_3 ∘ MTTKRP_3) and
        // ‖[[A]]‖² = Σ of the Hadamard product of all Gram matrices (tensorly's fast error).
        let inner: f64 = f[3].data.iter().zip(&mttkrp_last.data).map(|(a, b)| a * b).sum();
        let mut had = M::new(r, r, vec![1.0; r * r]);
        for g in &grams {
            had.data.iter_mut().zip(&g.data).for_each(|(x, y)| *x *= y);
        }
        let model2: f64 = had.data.iter().sum();
        let e = (norm2 - 2.0 * inner + model2).abs().sqrt() / norm2.sqrt().max(f64::MIN_POSITIVE);
        if !e.is_finite() {
            return Some(Cp { factors: f, rel_error: e, iters, converged: false });
        }
        let settled = err.is_finite() && (err - e).abs() < tol * err.max(f64::MIN_POSITIVE);
        err = e;
        if settled {
            converged = true;
            break;
        }
    }
    Some(Cp { factors: f, rel_error: err, iters, converged })
}

/// MACs of the factored chain, given the spatial sizes of the input (`h x w`), after the
/// vertical conv (`oh x w`) and of the output (`oh x ow`).
pub fn macs(shape: [usize; 4], r: usize, hw_in: usize, oh_w: usize, hw_out: usize) -> f64 {
    let [s, c, kh, kw] = shape;
    (hw_in * c * r + oh_w * r * kh + hw_out * (r * kw + r * s)) as f64
}

/// Replaces the conv `node` (weight `w_name`) by the four-conv chain of `cp`. Each rank-one
/// term's scale is spread evenly over its four factors.
pub fn rewrite(node: &Node, w_name: &str, attrs: &ConvAttrs, shape: [usize; 4], cp: &Cp) -> Rewrite {
    let [s, c, kh, kw] = shape;
    let r = cp.factors[0].cols;
    // Column norms, then each factor's column scaled to the fourth root of the product.
    let mut scaled = cp.factors.clone();
    for k in 0..r {
        let norms: Vec<f64> =
            cp.factors.iter().map(|a| (0..a.rows).map(|i| a.at(i, k).powi(2)).sum::<f64>().sqrt()).collect();
        let lam: f64 = norms.iter().product::<f64>().powf(0.25);
        for (a, &nrm) in scaled.iter_mut().zip(&norms) {
            let f = if nrm > 0.0 { lam / nrm } else { 0.0 };
            for i in 0..a.rows {
                a.data[i * r + k] *= f;
            }
        }
    }
    let f32s = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();
    let tag = ["cp_in", "cp_v", "cp_h"];
    let w: Vec<String> = tag.iter().chain(&["cp_out"]).map(|t| format!("{w_name}.{t}")).collect();
    let n: Vec<String> = tag.iter().map(|t| format!("{}.{t}", node.name)).collect();
    let [p, q] = [[attrs.pads[0], 0, attrs.pads[2], 0], [0, attrs.pads[1], 0, attrs.pads[3]]];
    let vert =
        ConvAttrs { strides: [attrs.strides[0], 1], pads: p, dilations: [attrs.dilations[0], 1], group: r };
    let horiz =
        ConvAttrs { strides: [1, attrs.strides[1]], pads: q, dilations: [1, attrs.dilations[1]], group: r };
    let mut last_in = vec![n[2].clone(), w[3].clone()];
    last_in.extend(node.inputs.get(2).cloned());
    let conv = |name: &str, a: ConvAttrs, inputs: Vec<String>, out: Vec<String>| Node {
        name: name.into(),
        op: Op::Conv(a),
        inputs,
        outputs: out,
    };
    Rewrite {
        nodes: vec![
            conv(&n[0], ConvAttrs::default(), vec![node.inputs[0].clone(), w[0].clone()], vec![n[0].clone()]),
            conv(&n[1], vert, vec![n[0].clone(), w[1].clone()], vec![n[1].clone()]),
            conv(&n[2], horiz, vec![n[1].clone(), w[2].clone()], vec![n[2].clone()]),
            conv(&node.name, ConvAttrs::default(), last_in, node.outputs.clone()),
        ],
        weights: vec![
            (w[0].clone(), Tensor::f32(vec![r, c, 1, 1], f32s(&scaled[1].t().data))),
            (w[1].clone(), Tensor::f32(vec![r, 1, kh, 1], f32s(&scaled[2].t().data))),
            (w[2].clone(), Tensor::f32(vec![r, 1, 1, kw], f32s(&scaled[3].t().data))),
            (w[3].clone(), Tensor::f32(vec![s, r, 1, 1], f32s(&scaled[0].data))),
        ],
        rank: r.to_string(),
        rel_error: cp.rel_error,
        note: Some(format!("ALS {} sweeps{}", cp.iters, if cp.converged { "" } else { ", not settled" })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unfold_matches_numpy_order() {
        // t[i, j, k, l] = 1000 i + 100 j + 10 k + l for dims [2, 3, 2, 2].
        let dims = [2, 3, 2, 2];
        let t: Vec<f64> = (0..24)
            .map(|x| {
                let (i, j, k, l) = (x / 12, (x / 4) % 3, (x / 2) % 2, x % 2);
                (1000 * i + 100 * j + 10 * k + l) as f64
            })
            .collect();
        let u = unfold(&t, &dims, 1);
        // numpy: np.moveaxis(t, 1, 0).reshape(3, -1)[1, :5] = [100, 101, 110, 111, 1100].
        assert_eq!(&u.data[8..13], &[100.0, 101.0, 110.0, 111.0, 1100.0]);
    }

    #[test]
    fn recovers_an_exact_rank_two_tensor() {
        let dims = [4, 3, 3, 3];
        let a: [Vec<f64>; 4] = [
            vec![1.0, -2.0, 0.5, 1.5, 0.3, 1.0, -1.0, 2.0],
            vec![0.2, 1.0, -1.0, 0.7, 1.1, -0.4],
            vec![1.0, 0.5, -1.0, 0.2, 0.3, 1.0],
            vec![0.5, 1.0, 1.0, -0.5, 2.0, 0.1],
        ];
        let mut t = vec![0.0; 108];
        for (x, v) in t.iter_mut().enumerate() {
            let idx = [x / 27, (x / 9) % 3, (x / 3) % 3, x % 3];
            *v = (0..2).map(|k| (0..4).map(|m| a[m][idx[m] * 2 + k]).product::<f64>()).sum();
        }
        let cp = decompose(&t, dims, 2, 500, 1e-12, 1).unwrap();
        assert!(cp.rel_error < 1e-5, "{}", cp.rel_error);
    }
}
