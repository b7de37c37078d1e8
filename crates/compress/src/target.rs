//! Which weights a pass may compress.

use deepshrink_graph::{Graph, Op};

/// The kind of layer a weight belongs to (Deep Compression treats them differently: conv layers
/// are more sensitive and get more bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum LayerKind {
    /// A fully-connected layer (Gemm or MatMul weight).
    Fc,
    /// A convolution kernel.
    Conv,
}

/// The weights that pruning and sharing act on, in node order: the weight matrix of every Gemm
/// and MatMul and the kernel of every Conv (biases and normalisation parameters stay dense; they
/// are a tiny fraction of the parameters).
pub fn compressible_weights(g: &Graph) -> Vec<(String, LayerKind)> {
    let mut out: Vec<(String, LayerKind)> = Vec::new();
    for n in &g.nodes {
        let (idx, kind) = match n.op {
            Op::Gemm { .. } | Op::MatMul => (1, LayerKind::Fc),
            Op::Conv(_) => (1, LayerKind::Conv),
            _ => continue,
        };
        if let Some(w) = n.inputs.get(idx) {
            let is_float_weight =
                g.weights.get(w).is_some_and(|t| t.as_f32().is_some() && t.shape.len() >= 2);
            if is_float_weight && !out.iter().any(|(name, _)| name == w) {
                out.push((w.clone(), kind));
            }
        }
    }
    out
}
