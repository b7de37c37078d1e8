//! XNOR-Net (Rastegari, Ordonez, Redmon and Farhadi 2016): binary weights *and* binary inputs.
//!
//! Which layers: of the layers the pass quantizes (every Gemm/MatMul, and every Conv unless
//! `conv = false`), all but the first and the last, whose weights and inputs stay float (the
//! paper's setting); with `float_ends = false` the first and last get binary weights too (the
//! first layer's input, the image, is never binarized). Each binarized layer gets
//! `sign(w) · α_c` weights (`α_c = mean|w_c|` per output channel, BinaryConnect's STE) and a
//! [`Op::Sign`] node on its input, trained with the clipped STE `1{|x| ≤ 1}`.
//!
//! The ReLU in front of a binarized layer is removed: `sign(relu(x))` would be +1 everywhere
//! (sign(0) = +1), so the Sign *is* the layer's non-linearity, as in the paper's block
//! (BN → Sign → binary conv/FC). A ReLU is found by walking back from the layer's input through
//! shape and max-pooling ops (which commute with the sign); one read by anything else is kept.
//!
//! The paper's per-sample input scale `K = mean|x|` is not modelled: the binarized layer sees
//! `sign(x)` alone, so the stored graph is plain ONNX (Sign, Gemm) and the runtime's
//! XNOR-popcount kernel computes exactly `α_c · Σ sign(w) sign(x)` (its `β = mean|sign(x)| = 1`).

use deepshrink_graph::{Graph, Node, Op};

use super::QatConfig;
use crate::{CompressError, LayerKind};

/// The weights the xnor method binarizes and, of them, those whose layer input gets a Sign.
/// Fails if fewer than three layers are quantizable (nothing would be binarized between the
/// float first and last layer).
pub fn select(
    cfg: &QatConfig,
    layers: &[(String, LayerKind)],
) -> Result<(Vec<String>, Vec<String>), CompressError> {
    let q: Vec<&String> = layers.iter().filter(|(_, k)| cfg.applies(*k)).map(|(n, _)| n).collect();
    if q.len() < 3 {
        let conv = if cfg.conv { "" } else { " (conv = false leaves the convolutions out)" };
        return Err(CompressError::Config {
            pass: "qat",
            detail: format!(
                "method \"xnor\" needs at least 3 quantizable layers (the first and last stay float), \
                 this model has {}{conv}",
                q.len()
            ),
        });
    }
    let inner: Vec<String> = q[1..q.len() - 1].iter().map(|s| s.to_string()).collect();
    if cfg.float_ends {
        Ok((inner.clone(), inner))
    } else {
        let signed = q[1..].iter().map(|s| s.to_string()).collect();
        Ok((q.iter().map(|s| s.to_string()).collect(), signed))
    }
}

/// Ops through which `sign(relu(x))` becomes `sign(x)` once the ReLU is removed: shape ops and
/// max pooling (monotone, so it commutes with sign).
fn passes_sign(op: &Op) -> bool {
    matches!(op, Op::MaxPool(_) | Op::Flatten { .. } | Op::Reshape { .. } | Op::Identity | Op::Dropout { .. })
}

/// `graph` with a Sign node on the data input of the layer reading each weight of `signed`
/// (named `<node>.sign`), and the ReLU in front of it removed. Already signed inputs are left.
pub fn binarize_inputs(graph: &Graph, signed: &[String]) -> Result<Graph, CompressError> {
    let mut g = graph.clone();
    for w in signed {
        let Some(idx) = g.nodes.iter().position(|n| n.inputs.get(1) == Some(w)) else {
            return Err(CompressError::Config {
                pass: "qat",
                detail: format!("'{w}' is not the weight input of a layer"),
            });
        };
        let input = g.nodes[idx].inputs[0].clone();
        if g.producer(&input).is_some_and(|p| p.op == Op::Sign) {
            continue;
        }
        remove_relu_before(&mut g, &input);
        let idx = g.nodes.iter().position(|n| n.inputs.get(1) == Some(w)).expect("found above");
        let input = g.nodes[idx].inputs[0].clone();
        let name = unique(&g, &format!("{}.sign", g.nodes[idx].name));
        g.nodes.insert(
            idx,
            Node { name: name.clone(), op: Op::Sign, inputs: vec![input], outputs: vec![name.clone()] },
        );
        g.nodes[idx + 1].inputs[0] = name;
    }
    Ok(g)
}

/// Walks back from `value` through [`passes_sign`] ops, each read by one node only, and removes
/// the first ReLU found (its readers read its input instead).
fn remove_relu_before(g: &mut Graph, value: &str) {
    let mut v = value.to_string();
    loop {
        if g.outputs.iter().any(|o| o.name == v) || g.consumers(&v).count() != 1 {
            return;
        }
        let Some(p) = g.producer(&v) else { return };
        if p.op == Op::Relu {
            let (relu, src) = (p.name.clone(), p.inputs[0].clone());
            g.nodes.retain(|n| n.name != relu);
            for n in &mut g.nodes {
                n.inputs.iter_mut().filter(|i| **i == v).for_each(|i| *i = src.clone());
            }
            return;
        }
        if !passes_sign(&p.op) {
            return;
        }
        v = p.inputs[0].clone();
    }
}

fn unique(g: &Graph, base: &str) -> String {
    let taken =
        |s: &str| g.weights.contains_key(s) || g.nodes.iter().any(|n| n.outputs.iter().any(|o| o == s));
    let mut name = base.to_string();
    let mut i = 1;
    while taken(&name) {
        name = format!("{base}_{i}");
        i += 1;
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;
    use deepshrink_engine::zoo;

    fn ops(g: &Graph) -> Vec<&'static str> {
        g.nodes.iter().map(|n| n.op.name()).collect()
    }

    #[test]
    fn lenet_300_100_gets_sign_before_fc2_instead_of_relu() {
        let g = zoo::build("lenet-300-100", 0).unwrap();
        let layers = crate::compressible_weights(&g);
        let cfg = QatConfig { method: super::super::Method::Xnor, ..QatConfig::default() };
        let (bin, signed) = select(&cfg, &layers).unwrap();
        assert_eq!(bin, signed);
        assert_eq!(bin.len(), 1);
        let out = binarize_inputs(&g, &signed).unwrap();
        // flatten, fc1, [relu removed], sign, fc2, relu, fc3
        assert_eq!(ops(&out), ["Flatten", "Gemm", "Sign", "Gemm", "Relu", "Gemm"]);
        out.infer_shapes(2).unwrap();
        // Idempotent.
        assert_eq!(binarize_inputs(&out, &signed).unwrap(), out);
    }

    #[test]
    fn lenet_5_signs_conv2_and_fc1_inputs() {
        let g = zoo::build("lenet-5", 0).unwrap();
        let layers = crate::compressible_weights(&g);
        let cfg = QatConfig { method: super::super::Method::Xnor, ..QatConfig::default() };
        let (bin, signed) = select(&cfg, &layers).unwrap();
        assert_eq!(bin.len(), 2);
        let out = binarize_inputs(&g, &signed).unwrap();
        let want = ["Conv", "MaxPool", "Sign", "Conv", "MaxPool", "Flatten", "Sign", "Gemm", "Relu", "Gemm"];
        assert_eq!(ops(&out), want);
        out.infer_shapes(1).unwrap();
        // Without the convolutions only two layers are left: nothing to binarize.
        let fc_only = QatConfig { conv: false, ..cfg.clone() };
        let err = select(&fc_only, &layers).unwrap_err().to_string();
        assert!(err.contains("at least 3") && err.contains("has 2") && err.contains("conv = false"), "{err}");
        // float_ends = false: every layer binary, every input but the image signed.
        let all = QatConfig { float_ends: false, ..cfg };
        let (bin, signed) = select(&all, &layers).unwrap();
        assert_eq!((bin.len(), signed.len()), (4, 3));
    }
}
