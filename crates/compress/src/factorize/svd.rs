//! Truncated SVD of fully-connected layers: one Gemm (or MatMul) becomes two.
//!
//! **What**: `W ≈ U_k S_k V_kᵀ` (Denton et al. 2014); the layer `y = x Wᵀ + b` becomes
//! `h = x (V_k S_k^½)` then `y = h (U_k S_k^½)ᵀ + b`. Parameters and MACs fall from `m n` to
//! `k (m + n)`. The square root of `S` goes to both factors so they have equal scale when
//! fine-tuned.
//! **When**: large fully-connected layers whose spectrum decays (trained LeNet-300-100's fc1
//! keeps most of its energy in a few dozen of its 300 components).
//! **Cost**: the relative reconstruction error is exactly `sqrt(Σ_{i>k} s_i² / Σ s_i²)`; a few
//! epochs of fine-tuning recover most of the accuracy lost.
//! **Paper**: Denton, Zaremba, Bruna, LeCun and Fergus, "Exploiting Linear Structure Within
//! Convolutional Networks for Efficient Evaluation", NIPS 2014.
//! **Recipe**:
//! ```toml
//! [[pass]]
//! kind = "svd"
//! ratio = 4.0                 # or energy = 0.9, or rank = 32
//! scope = "net"               # the ratio for all factorized layers together
//! skip = ["fc3.weight"]
//! finetune_epochs = 4
//! ```

use deepshrink_graph::{Node, Op, Tensor};

use super::linalg::{svd, Svd, M};
use super::Rewrite;

/// The logical `out x in` matrix of a fully-connected node's weight, or why it has none.
pub fn matrix(node: &Node, w: &Tensor) -> Result<M, String> {
    let data = w.as_f32().ok_or("weight is not f32")?;
    if w.shape.len() != 2 {
        return Err(format!("weight shape {:?} is not a matrix", w.shape));
    }
    let (r, c) = (w.shape[0], w.shape[1]);
    let m = M::new(r, c, data.iter().map(|&v| v as f64).collect());
    match node.op {
        Op::Gemm { trans_b: true, .. } => Ok(m),
        Op::Gemm { trans_b: false, .. } | Op::MatMul => Ok(m.t()),
        _ => Err(format!("{} is not a fully-connected layer", node.op.name())),
    }
}

/// The SVD of a weight matrix, or why it cannot be taken.
pub fn decompose(m: &M) -> Result<Svd, String> {
    if m.data.iter().any(|v| !v.is_finite()) {
        return Err("weights are not finite (NaN or infinity)".into());
    }
    svd(m).ok_or_else(|| "the SVD did not converge".into())
}

/// Relative Frobenius error of keeping the first `k` singular values.
pub fn rel_error(s: &[f64], k: usize) -> f64 {
    let total: f64 = s.iter().map(|v| v * v).sum();
    if total <= 0.0 {
        return 0.0;
    }
    (s[k.min(s.len())..].iter().map(|v| v * v).sum::<f64>() / total).sqrt()
}

/// Replaces `node` (weight input `w_name`) by two fully-connected nodes of rank `k`.
pub fn rewrite(node: &Node, w_name: &str, d: &Svd, k: usize) -> Rewrite {
    let (out, inp) = (d.u.rows, d.v.rows);
    // a = V_k S_k^½ (in x k), b = U_k S_k^½ (out x k).
    let scaled = |m: &M| -> Vec<f32> {
        let mut v = Vec::with_capacity(m.rows * k);
        for r in 0..m.rows {
            for c in 0..k {
                v.push((m.at(r, c) * d.s[c].sqrt()) as f32);
            }
        }
        v
    };
    let (a, b) = (scaled(&d.v), scaled(&d.u));
    let t = |rows: usize, cols: usize, v: &[f32]| -> Vec<f32> {
        let mut o = vec![0.0; v.len()];
        for r in 0..rows {
            for c in 0..cols {
                o[c * rows + r] = v[r * cols + c];
            }
        }
        o
    };
    let (w_in, w_out) = (format!("{w_name}.svd_in"), format!("{w_name}.svd_out"));
    let mid = format!("{}.svd_in", node.name);
    let x = node.inputs[0].clone();
    let (first, second, weights) = match node.op {
        Op::Gemm { alpha, beta, trans_a, .. } => {
            let mut second_in = vec![mid.clone(), w_out.clone()];
            second_in.extend(node.inputs.get(2).cloned());
            (
                (Op::Gemm { alpha: 1.0, beta: 1.0, trans_a, trans_b: true }, vec![x, w_in.clone()]),
                (Op::Gemm { alpha, beta, trans_a: false, trans_b: true }, second_in),
                vec![(w_in, Tensor::f32(vec![k, inp], t(inp, k, &a))), (w_out, Tensor::f32(vec![out, k], b))],
            )
        }
        _ => (
            (Op::MatMul, vec![x, w_in.clone()]),
            (Op::MatMul, vec![mid.clone(), w_out.clone()]),
            vec![(w_in, Tensor::f32(vec![inp, k], a)), (w_out, Tensor::f32(vec![k, out], t(out, k, &b)))],
        ),
    };
    Rewrite {
        nodes: vec![
            Node { name: mid.clone(), op: first.0, inputs: first.1, outputs: vec![mid] },
            Node { name: node.name.clone(), op: second.0, inputs: second.1, outputs: node.outputs.clone() },
        ],
        weights,
        rank: k.to_string(),
        rel_error: rel_error(&d.s, k),
        note: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gemm(trans_b: bool) -> Node {
        Node {
            name: "fc".into(),
            op: Op::Gemm { alpha: 1.0, beta: 1.0, trans_a: false, trans_b },
            inputs: vec!["x".into(), "w".into(), "b".into()],
            outputs: vec!["fc".into()],
        }
    }

    #[test]
    fn full_rank_rewrite_is_exact_and_truncation_error_is_the_tail() {
        // W (2 x 3, out x in) = [[3, 0, 0], [0, 2, 0]]: singular values 3 and 2.
        let w = Tensor::f32(vec![2, 3], vec![3.0, 0.0, 0.0, 0.0, 2.0, 0.0]);
        let m = matrix(&gemm(true), &w).unwrap();
        let d = decompose(&m).unwrap();
        let r = rewrite(&gemm(true), "w", &d, 2);
        assert_eq!(r.rel_error, 0.0);
        let (a, b) = (r.weights[0].1.as_f32().unwrap(), r.weights[1].1.as_f32().unwrap());
        // b (2 x 2) × a (2 x 3) = W.
        for o in 0..2 {
            for i in 0..3 {
                let v: f32 = (0..2).map(|c| b[o * 2 + c] * a[c * 3 + i]).sum();
                assert!((v - w.as_f32().unwrap()[o * 3 + i]).abs() < 1e-6);
            }
        }
        assert!((rel_error(&d.s, 1) - (4.0f64 / 13.0).sqrt()).abs() < 1e-12);
        let bad = Tensor::f32(vec![1, 2], vec![f32::NAN, 1.0]);
        assert!(decompose(&matrix(&gemm(true), &bad).unwrap()).unwrap_err().contains("not finite"));
    }
}
