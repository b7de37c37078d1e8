//! Per-layer size and compute of a graph.

use deepshrink_graph::{Graph, GraphError};
use serde::Serialize;

use crate::table::{human_bytes, render, shape, thousands, Align};

/// Size and compute of one node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LayerRow {
    /// Node name, as in the model file.
    pub name: String,
    /// ONNX op type, e.g. `Conv`.
    pub op: String,
    /// Shape of the node's first output at batch size 1.
    pub output_shape: Vec<usize>,
    /// Learned parameters the node reads (batch-norm running statistics excluded).
    pub params: usize,
    /// Multiply-accumulates of one sample (Conv, Gemm and MatMul only; see
    /// [`deepshrink_graph::NodeCost`]).
    pub macs: u64,
    /// Bytes of the weights the node reads, stored dense.
    pub bytes: usize,
}

/// Per-layer and total size and compute of a model, for one sample.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModelSummary {
    /// Model name (usually the file it came from).
    pub model: String,
    /// One row per node, in execution order.
    pub rows: Vec<LayerRow>,
    /// Sum of `params` over the rows.
    pub total_params: usize,
    /// Sum of `macs` over the rows.
    pub total_macs: u64,
    /// Sum of `bytes` over the rows.
    pub total_bytes: usize,
}

/// Summarises `graph` at batch size 1: one [`LayerRow`] per node plus totals. Fails if the graph
/// is invalid or its shapes do not fit, naming the node.
///
/// A weight read by two nodes counts in both rows, so totals can exceed the file's weights when
/// weights are shared.
pub fn summarize(graph: &Graph, model_name: &str) -> Result<ModelSummary, GraphError> {
    let shapes = graph.infer_shapes(1)?;
    let costs = graph.node_costs(1)?;
    let rows: Vec<LayerRow> = graph
        .nodes
        .iter()
        .zip(costs)
        .map(|(n, c)| LayerRow {
            name: n.name.clone(),
            op: n.op.name().to_string(),
            output_shape: n.outputs.first().and_then(|o| shapes.get(o)).cloned().unwrap_or_default(),
            params: c.params,
            macs: c.macs,
            bytes: c.bytes,
        })
        .collect();
    Ok(ModelSummary {
        model: model_name.to_string(),
        total_params: rows.iter().map(|r| r.params).sum(),
        total_macs: rows.iter().map(|r| r.macs).sum(),
        total_bytes: rows.iter().map(|r| r.bytes).sum(),
        rows,
    })
}

impl ModelSummary {
    /// An aligned Markdown table, one row per layer and a totals row, followed by a one-line
    /// summary.
    pub fn to_markdown(&self) -> String {
        let headers = [
            ("layer", Align::Left),
            ("op", Align::Left),
            ("output shape", Align::Left),
            ("params", Align::Right),
            ("MACs", Align::Right),
            ("bytes", Align::Right),
        ];
        let mut cells: Vec<Vec<String>> = self
            .rows
            .iter()
            .map(|r| {
                vec![
                    r.name.clone(),
                    r.op.clone(),
                    shape(&r.output_shape),
                    thousands(r.params as u64),
                    thousands(r.macs),
                    thousands(r.bytes as u64),
                ]
            })
            .collect();
        cells.push(vec![
            "total".into(),
            String::new(),
            String::new(),
            thousands(self.total_params as u64),
            thousands(self.total_macs),
            thousands(self.total_bytes as u64),
        ]);
        format!(
            "{}\n{}\n{} layers, {} parameters, {} MACs per sample, {} of weights\n",
            self.model,
            render(&headers, &cells),
            self.rows.len(),
            thousands(self.total_params as u64),
            thousands(self.total_macs),
            human_bytes(self.total_bytes as u64),
        )
    }
}

#[cfg(test)]
mod tests {
    use deepshrink_graph::{ConvAttrs, Graph, Op, PoolAttrs, Tensor, ValueInfo};

    use super::*;

    fn gemm() -> Op {
        Op::Gemm { alpha: 1.0, beta: 1.0, trans_a: false, trans_b: true }
    }

    /// 784 -> 32 -> 10 MLP, PyTorch `nn.Linear` layout (weights `[out, in]`, `trans_b`).
    fn mlp() -> Graph {
        let mut g = Graph::new("mlp", "x", &[1, 28, 28]);
        let f = g.push("flatten", Op::Flatten { axis: 1 }, &["x"]);
        let w1 = g.add_weight("fc1.weight", Tensor::zeros(vec![32, 784]));
        let b1 = g.add_weight("fc1.bias", Tensor::zeros(vec![32]));
        let h = g.push("fc1", gemm(), &[&f, &w1, &b1]);
        let r = g.push("relu", Op::Relu, &[&h]);
        let w2 = g.add_weight("fc2.weight", Tensor::zeros(vec![10, 32]));
        let b2 = g.add_weight("fc2.bias", Tensor::zeros(vec![10]));
        let y = g.push("fc2", gemm(), &[&r, &w2, &b2]);
        g.outputs.push(ValueInfo::batched(&y, &[10]));
        g
    }

    #[test]
    fn mlp_totals_match_hand_count() {
        let s = summarize(&mlp(), "mlp.onnx").unwrap();
        // fc1: 784*32 + 32 = 25,120 params, 784*32 = 25,088 MACs;
        // fc2: 32*10 + 10 = 330 params, 320 MACs. 4 bytes per f32.
        let names: Vec<&str> = s.rows.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["flatten", "fc1", "relu", "fc2"]);
        assert_eq!(s.rows[0].output_shape, [1, 784]);
        assert_eq!((s.rows[1].params, s.rows[1].macs, s.rows[1].bytes), (25_120, 25_088, 100_480));
        assert_eq!((s.rows[3].params, s.rows[3].macs), (330, 320));
        assert_eq!(s.rows[3].output_shape, [1, 10]);
        assert_eq!((s.total_params, s.total_macs, s.total_bytes), (25_450, 25_408, 101_800));

        let md = s.to_markdown();
        assert!(md.starts_with("mlp.onnx\n"), "{md}");
        assert!(md.contains("| fc1     | Gemm    | 1x32         | 25,120 | 25,088 | 100,480 |"), "{md}");
        assert!(md.contains("| total   |"), "{md}");
        assert!(md.contains("25,450 parameters, 25,408 MACs"), "{md}");
        // Every table line has the same width.
        let widths: Vec<usize> = md.lines().filter(|l| l.starts_with('|')).map(|l| l.len()).collect();
        assert!(widths.windows(2).all(|w| w[0] == w[1]), "{md}");

        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["total_params"], 25_450);
        assert_eq!(json["rows"][1]["output_shape"], serde_json::json!([1, 32]));
    }

    #[test]
    fn conv_and_batchnorm_counts() {
        // conv 1->8, 3x3 on 28x28 -> 8x26x26; MACs = 8*26*26 * (1*3*3) = 48,672.
        let mut g = Graph::new("cnn", "x", &[1, 28, 28]);
        let w = g.add_weight("conv.w", Tensor::zeros(vec![8, 1, 3, 3]));
        let b = g.add_weight("conv.b", Tensor::zeros(vec![8]));
        let c = g.push("conv", Op::Conv(ConvAttrs::default()), &["x", &w, &b]);
        let bn: Vec<String> = ["s", "b", "m", "v"]
            .iter()
            .map(|p| g.add_weight(&format!("bn.{p}"), Tensor::zeros(vec![8])))
            .collect();
        let n = g.push(
            "bn",
            Op::BatchNormalization { epsilon: 1e-5, momentum: 0.9 },
            &[&c, &bn[0], &bn[1], &bn[2], &bn[3]],
        );
        let p = g.push("pool", Op::MaxPool(PoolAttrs::square(2)), &[&n]);
        g.outputs.push(ValueInfo::batched(&p, &[8, 13, 13]));
        let s = summarize(&g, "cnn").unwrap();
        assert_eq!((s.rows[0].params, s.rows[0].macs), (80, 48_672));
        // Running mean and variance are stored but are not parameters.
        assert_eq!((s.rows[1].params, s.rows[1].bytes, s.rows[1].macs), (16, 128, 0));
        assert_eq!(s.rows[2].output_shape, [1, 8, 13, 13]);
        assert_eq!((s.total_params, s.total_macs, s.total_bytes), (96, 48_672, 448));
    }

    #[test]
    fn shape_errors_name_the_node() {
        let mut g = mlp();
        g.weights.insert("fc2.weight".into(), Tensor::zeros(vec![10, 31]));
        let e = summarize(&g, "bad").unwrap_err();
        assert!(e.to_string().contains("fc2"), "{e}");
    }
}
