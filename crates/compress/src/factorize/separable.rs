//! Spatially separable filters: a k×k conv `C → N` becomes a `kh×1` conv `C → K` then a `1×kw`
//! conv `K → N`.
//!
//! **What**: Jaderberg et al.'s scheme 2. The kernel `W[n, c, y, x]` is read as the
//! `(C·kh) × (N·kw)` matrix `M[(c, y), (n, x)]`; its rank-`K` truncated SVD `Σ_k σ_k u_k v_kᵀ`
//! gives the vertical filters `V[k, c, y] = √σ_k u_k[(c, y)]` and the horizontal filters
//! `H[n, k, x] = √σ_k v_k[(n, x)]`, and `Σ_k H[n, k, x] V[k, c, y]` is the best rank-`K` fit of
//! `W` of this form (Tai et al. 2016 show the closed form is optimal for scheme 2, where
//! Jaderberg et al. fitted it by gradient descent). The data-free initialisation is then
//! fine-tuned. Height stride, padding and dilation go to the vertical conv, those of the width to
//! the horizontal one, so at full rank the chain computes exactly the original convolution.
//! **When**: convolutions with kh, kw > 1 whose kernels are close to low rank in this unfolding:
//! the chain costs `K (C kh · OH·W + N kw · OH·OW)` MACs against `N C kh kw · OH·OW`.
//! **Cost**: the relative reconstruction error is exactly that of the truncated SVD,
//! `sqrt(Σ_{i>K} σ_i² / Σ σ_i²)`; fine-tuning recovers the accuracy lost.
//! **Papers**: Jaderberg, Vedaldi and Zisserman, "Speeding up Convolutional Neural Networks with
//! Low Rank Expansions", BMVC 2014; Tai, Xiao, Zhang, Wang and E, "Convolutional neural networks
//! with low-rank regularization", ICLR 2016.
//! **Recipe**:
//! ```toml
//! [[pass]]
//! kind = "separable"
//! ratio = 3.0                # MACs of each layer shrink 3x; or rank = 16, energy = 0.9, vbmf = true
//! finetune_epochs = 1
//! lr = 1e-4
//! ```

use deepshrink_graph::{ConvAttrs, Node, Op, Tensor};

use super::linalg::{svd, Svd, M};
use super::Rewrite;

/// The `(C·kh) × (N·kw)` matrix of a kernel `W[N, C, kh, kw]` (row-major): entry
/// `[(c·kh + y), (n·kw + x)] = W[n, c, y, x]`.
pub fn matrix(w: &[f64], shape: [usize; 4]) -> M {
    let [n, c, kh, kw] = shape;
    let cols = n * kw;
    let mut m = M::zeros(c * kh, cols);
    for ni in 0..n {
        for ci in 0..c {
            for y in 0..kh {
                for x in 0..kw {
                    m.data[(ci * kh + y) * cols + ni * kw + x] = w[((ni * c + ci) * kh + y) * kw + x];
                }
            }
        }
    }
    m
}

/// The SVD of a kernel's scheme-2 matrix. `None` if it does not converge (non-finite input).
pub fn decompose(w: &[f64], shape: [usize; 4]) -> Option<Svd> {
    svd(&matrix(w, shape))
}

/// MACs of the chain at rank `k`, given the spatial sizes after the vertical conv (`oh x w`)
/// and of the output (`oh x ow`).
pub fn macs(shape: [usize; 4], k: usize, oh_w: usize, hw_out: usize) -> f64 {
    let [n, c, kh, kw] = shape;
    (k * (c * kh * oh_w + n * kw * hw_out)) as f64
}

/// The kernel `Σ_{k<K} σ_k u_k v_kᵀ` read back as `[N, C, kh, kw]` (for tests and the error).
pub fn reconstruct(d: &Svd, shape: [usize; 4], k: usize) -> Vec<f64> {
    let [n, c, kh, kw] = shape;
    let mut out = vec![0.0; n * c * kh * kw];
    for ni in 0..n {
        for ci in 0..c {
            for y in 0..kh {
                for x in 0..kw {
                    let (r, col) = (ci * kh + y, ni * kw + x);
                    out[((ni * c + ci) * kh + y) * kw + x] =
                        (0..k).map(|j| d.u.at(r, j) * d.s[j] * d.v.at(col, j)).sum();
                }
            }
        }
    }
    out
}

/// Replaces the conv `node` (weight `w_name`, shape `[N, C, kh, kw]`) by the vertical and
/// horizontal pair of rank `k` from the SVD `d` of its scheme-2 matrix.
pub fn rewrite(
    node: &Node,
    w_name: &str,
    attrs: &ConvAttrs,
    shape: [usize; 4],
    d: &Svd,
    k: usize,
) -> Rewrite {
    let [n, c, kh, kw] = shape;
    let mut v = vec![0.0f32; k * c * kh];
    let mut h = vec![0.0f32; n * k * kw];
    for j in 0..k {
        let r = d.s[j].sqrt();
        for ci in 0..c {
            for y in 0..kh {
                v[(j * c + ci) * kh + y] = (d.u.at(ci * kh + y, j) * r) as f32;
            }
        }
        for ni in 0..n {
            for x in 0..kw {
                h[(ni * k + j) * kw + x] = (d.v.at(ni * kw + x, j) * r) as f32;
            }
        }
    }
    let vert = ConvAttrs {
        strides: [attrs.strides[0], 1],
        pads: [attrs.pads[0], 0, attrs.pads[2], 0],
        dilations: [attrs.dilations[0], 1],
        group: 1,
    };
    let horiz = ConvAttrs {
        strides: [1, attrs.strides[1]],
        pads: [0, attrs.pads[1], 0, attrs.pads[3]],
        dilations: [1, attrs.dilations[1]],
        group: 1,
    };
    let (wv, wh) = (format!("{w_name}.sep_v"), format!("{w_name}.sep_h"));
    let mid = format!("{}.sep_v", node.name);
    let mut last_in = vec![mid.clone(), wh.clone()];
    last_in.extend(node.inputs.get(2).cloned());
    Rewrite {
        nodes: vec![
            Node {
                name: mid.clone(),
                op: Op::Conv(vert),
                inputs: vec![node.inputs[0].clone(), wv.clone()],
                outputs: vec![mid],
            },
            Node {
                name: node.name.clone(),
                op: Op::Conv(horiz),
                inputs: last_in,
                outputs: node.outputs.clone(),
            },
        ],
        weights: vec![(wv, Tensor::f32(vec![k, c, kh, 1], v)), (wh, Tensor::f32(vec![n, k, 1, kw], h))],
        rank: k.to_string(),
        rel_error: super::svd::rel_error(&d.s, k),
        note: None,
    }
}
