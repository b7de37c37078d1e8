//! Parameter and multiply-accumulate counts.

use crate::{Graph, GraphError, Op};

/// What one node costs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NodeCost {
    /// Learned parameters the node reads (batch-norm running statistics excluded, as PyTorch).
    pub params: usize,
    /// Bytes of every weight the node reads, as stored dense.
    pub bytes: usize,
    /// Multiply-accumulates of one forward pass at the given batch size. Only Conv, Gemm and
    /// MatMul are counted; elementwise ops, pooling and normalisation are memory-bound and count 0,
    /// the convention of the survey's tables.
    pub macs: u64,
}

impl Graph {
    /// The cost of every node, in node order, for a batch of `batch` samples.
    pub fn node_costs(&self, batch: usize) -> Result<Vec<NodeCost>, GraphError> {
        let shapes = self.infer_shapes(batch)?;
        let mut out = Vec::with_capacity(self.nodes.len());
        for n in &self.nodes {
            let mut c = NodeCost::default();
            for (i, name) in n.inputs.iter().enumerate() {
                if let Some(t) = self.weights.get(name) {
                    c.bytes += t.nbytes();
                    let is_running_stat = matches!(n.op, Op::BatchNormalization { .. }) && i >= 3;
                    if !is_running_stat {
                        c.params += t.numel();
                    }
                }
            }
            let y = &shapes[&n.outputs[0]];
            let numel = |s: &[usize]| s.iter().product::<usize>() as u64;
            c.macs = match &n.op {
                Op::Conv(_) => {
                    // w[1] is already the input channels of one group.
                    let w = &shapes[&n.inputs[1]];
                    numel(y) * (w[1] * w[2] * w[3]) as u64
                }
                Op::Gemm { trans_a, .. } => {
                    let a = &shapes[&n.inputs[0]];
                    let k = if *trans_a { a[0] } else { a[1] };
                    numel(y) * k as u64
                }
                Op::MatMul => {
                    let a = &shapes[&n.inputs[0]];
                    numel(y) * a[a.len() - 1] as u64
                }
                _ => 0,
            };
            out.push(c);
        }
        Ok(out)
    }

    /// Total learned parameters of the graph.
    pub fn param_count(&self) -> usize {
        self.node_costs(1).map(|c| c.iter().map(|c| c.params).sum()).unwrap_or(0)
    }
}
