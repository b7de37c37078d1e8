//! Load-time work: checking the graph and the compressed weights, and turning nodes into steps.

use std::collections::{BTreeMap, HashMap};

use deepshrink_codec::{CirculantTensor, QuantMatrix, SparseMatrix, SparseValues};
use deepshrink_engine::EngineError;
use deepshrink_graph::{ConvAttrs, Dim, Graph, Op, ValueInfo};
use deepshrink_kernels::{Csr, SparseWeights, Values};

use crate::circulant::CirculantGemm;
use crate::gemm::SparseGemm;
use crate::quant::{runs_on_kernels, QuantGemm, QuantW};
use crate::RuntimeError;

/// Where a step operand comes from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Src {
    /// The graph input.
    Input,
    /// A dense weight, by index into [`Plan::weights`].
    Weight(usize),
    /// The output of step `i`.
    Value(usize),
    /// The step's own compressed weight (held by its [`Exec`]).
    Sparse,
    /// The step's own quantized weight (held by its [`Exec`]).
    Quant,
    /// The step's own block-circulant weight (held by its [`Exec`]).
    Circulant,
}

/// How a step runs.
pub(crate) enum Exec {
    /// Through the engine's `infer_op`.
    Engine,
    /// A dense Gemm `x · Wᵀ`: the dense GEMV kernel at batch 1, the engine otherwise.
    DenseGemm { alpha: f32, beta: f32 },
    /// A Gemm on a compressed B.
    SparseGemm(SparseGemm),
    /// An ungrouped Conv on a compressed W (`O x C*KH*KW`).
    SparseConv { w: SparseWeights, kernel: [usize; 2], attrs: ConvAttrs },
    /// A Gemm on a quantized B (`trans_b`).
    QuantGemm(QuantGemm),
    /// A Gemm on a block-circulant B (`trans_b`), multiplied with FFTs.
    CirculantGemm(CirculantGemm),
}

impl Exec {
    pub fn kind(&self) -> &'static str {
        match self {
            Exec::Engine | Exec::DenseGemm { .. } => "dense",
            Exec::SparseGemm(g) => g.w.kind(),
            Exec::SparseConv { w, .. } => w.kind(),
            Exec::QuantGemm(g) if g.xnor => "xnor",
            Exec::QuantGemm(g) => g.w.kind(),
            Exec::CirculantGemm(_) => "circulant",
        }
    }
}

/// Why a step failed at run time.
pub(crate) enum Fail {
    Shape(String),
    Engine(EngineError),
}

/// One node, ready to run.
pub(crate) struct Step {
    pub name: String,
    pub op: Op,
    pub ins: Vec<Src>,
    pub exec: Exec,
}

/// The checked, executable form of a model.
pub(crate) struct Plan {
    pub input_name: String,
    pub sample: Vec<usize>,
    pub weights: Vec<(Vec<usize>, Vec<f32>)>,
    pub steps: Vec<Step>,
    pub output: Src,
    /// Values no later step reads, dropped after step `i`.
    pub free_after: Vec<Vec<usize>>,
}

/// A compressed weight in kernel form with its dense shape.
fn to_kernel(name: &str, m: SparseMatrix) -> Result<(Vec<usize>, SparseWeights), RuntimeError> {
    let err =
        |source| RuntimeError::SparseWeight { weight: name.to_string(), shape: m.shape.clone(), source };
    let (rows, cols) = (m.rows(), m.cols());
    let csr = Csr::new(rows, cols, m.row_ptr.clone(), m.col_idx.clone()).map_err(err)?;
    let values = match &m.values {
        SparseValues::F32(v) => Values::F32(v.clone()),
        SparseValues::Codebook { centroids, codes } => Values::lut(centroids.clone(), codes),
    };
    let w = SparseWeights::new(csr, values).map_err(err)?;
    Ok((m.shape, w))
}

impl Plan {
    pub fn new(
        mut graph: Graph,
        sparse: BTreeMap<String, SparseMatrix>,
        mut quantized: BTreeMap<String, QuantMatrix>,
        mut circulant: BTreeMap<String, CirculantTensor>,
    ) -> Result<Plan, RuntimeError> {
        if graph.inputs.len() != 1 || graph.outputs.len() != 1 {
            return Err(RuntimeError::Unsupported(format!(
                "model has {} inputs and {} outputs; the runtime runs models with one of each",
                graph.inputs.len(),
                graph.outputs.len()
            )));
        }
        // The first input dimension is the batch, whatever the file declared.
        if let Some(d) = graph.inputs[0].shape.first_mut() {
            *d = Dim::Sym("batch".into());
        }
        let mut src: HashMap<String, Src> = HashMap::new();
        let mut shadow_inputs = vec![graph.inputs[0].clone()];
        let fixed = |name: &str, shape: &[usize]| ValueInfo {
            name: name.to_string(),
            shape: shape.iter().map(|&d| Dim::Fixed(d)).collect(),
        };
        let mut weights = Vec::new();
        // Quantized weights the integer kernels cannot run are decoded and run dense.
        let is_output = |n: &str| graph.outputs.iter().any(|o| o.name == n);
        let decoded: Vec<String> = quantized
            .keys()
            .filter(|n| is_output(n) || !runs_on_kernels(n, graph.consumers(n)))
            .cloned()
            .collect();
        for (name, t) in &circulant {
            t.check(name).map_err(|e| RuntimeError::Unsupported(e.to_string()))?;
        }
        // Likewise circulant weights outside a `trans_b` Gemm (their blocks are defined on `[N, K]`)
        // or too small for the FFTs to pay.
        let expanded: Vec<String> = circulant
            .iter()
            .filter(|(n, t)| {
                is_output(n) || !runs_on_kernels(n, graph.consumers(n)) || !crate::circulant::fft_pays(t)
            })
            .map(|(n, _)| n)
            .cloned()
            .collect();
        for name in decoded {
            let m = quantized.remove(&name).expect("listed above");
            m.check(&name).map_err(|e| RuntimeError::Unsupported(e.to_string()))?;
            graph.weights.insert(name, m.to_dense());
        }
        for name in expanded {
            let t = circulant.remove(&name).expect("listed above");
            graph.weights.insert(name, t.to_dense());
        }
        for (name, t) in std::mem::take(&mut graph.weights) {
            if sparse.contains_key(&name) || quantized.contains_key(&name) || circulant.contains_key(&name) {
                continue;
            }
            t.check(&name)?;
            let data = match t.data {
                deepshrink_graph::TensorData::F32(v) => v,
                _ => {
                    return Err(RuntimeError::Unsupported(format!(
                        "weight '{name}' is {:?}; ops read f32 weights only",
                        t.dtype()
                    )))
                }
            };
            shadow_inputs.push(fixed(&name, &t.shape));
            src.insert(name, Src::Weight(weights.len()));
            weights.push((t.shape, data));
        }
        let mut compressed = HashMap::new();
        for (name, m) in sparse {
            let (shape, w) = to_kernel(&name, m)?;
            shadow_inputs.push(fixed(&name, &shape));
            src.insert(name.clone(), Src::Sparse);
            compressed.insert(name, (shape, w));
        }
        let mut quant = HashMap::new();
        for (name, m) in quantized {
            m.check(&name).map_err(|e| RuntimeError::Unsupported(e.to_string()))?;
            let w = QuantW::new(&m).map_err(|source| RuntimeError::SparseWeight {
                weight: name.clone(),
                shape: m.shape.clone(),
                source,
            })?;
            shadow_inputs.push(fixed(&name, &m.shape));
            src.insert(name.clone(), Src::Quant);
            quant.insert(name, Some(w));
        }
        let mut circ = HashMap::new();
        for (name, t) in circulant {
            let w = crate::circulant::kernel_form(&t).map_err(|source| RuntimeError::SparseWeight {
                weight: name.clone(),
                shape: t.shape.clone(),
                source,
            })?;
            shadow_inputs.push(fixed(&name, &t.shape));
            src.insert(name.clone(), Src::Circulant);
            circ.insert(name, Some(w));
        }
        let input_name = graph.inputs[0].name.clone();
        src.insert(input_name.clone(), Src::Input);

        let mut steps = Vec::with_capacity(graph.nodes.len());
        for n in &graph.nodes {
            for extra in &n.outputs[1.min(n.outputs.len())..] {
                if graph.consumers(extra).next().is_some() || graph.outputs.iter().any(|o| &o.name == extra) {
                    return Err(RuntimeError::Unsupported(format!(
                        "node '{}' ({}) output '{extra}' is used; only the first output of a node can be",
                        n.name,
                        n.op.name()
                    )));
                }
            }
            let mut ins = Vec::with_capacity(n.inputs.len());
            let mut exec = Exec::Engine;
            for (pos, i) in n.inputs.iter().enumerate() {
                let s = *src
                    .get(i)
                    .ok_or_else(|| RuntimeError::Undefined { node: n.name.clone(), value: i.clone() })?;
                if s == Src::Sparse {
                    let (shape, w) = &compressed[i];
                    exec = sparse_exec(n, pos, i, shape, w)?;
                }
                if s == Src::Quant {
                    let w = quant.get_mut(i).expect("registered above");
                    let w = w.take().ok_or_else(|| {
                        RuntimeError::Unsupported(format!(
                            "quantized weight '{i}' is read by more than one node"
                        ))
                    })?;
                    // XNOR-Net: binary weights on the output of a Sign node.
                    let signed = graph.producer(&n.inputs[0]).is_some_and(|p| p.op == Op::Sign);
                    exec = quant_exec(n, w, signed);
                }
                if s == Src::Circulant {
                    let w = circ.get_mut(i).expect("registered above").take().ok_or_else(|| {
                        RuntimeError::Unsupported(format!(
                            "circulant weight '{i}' is read by more than one node"
                        ))
                    })?;
                    exec = match &n.op {
                        Op::Gemm { alpha, beta, trans_a, .. } => Exec::CirculantGemm(CirculantGemm {
                            w,
                            alpha: *alpha,
                            beta: *beta,
                            trans_a: *trans_a,
                        }),
                        _ => unreachable!("runs_on_kernels admits Gemm only"),
                    };
                }
                ins.push(s);
            }
            if let (Exec::Engine, Some((alpha, beta)), Some(Src::Weight(_))) =
                (&exec, crate::dense_gemv_eligible(&n.op), ins.get(1))
            {
                exec = Exec::DenseGemm { alpha, beta };
            }
            let Some(out) = n.outputs.first() else {
                return Err(RuntimeError::Unsupported(format!("node '{}' has no outputs", n.name)));
            };
            src.insert(out.clone(), Src::Value(steps.len()));
            steps.push(Step { name: n.name.clone(), op: n.op.clone(), ins, exec });
        }
        let out_name = &graph.outputs[0].name;
        let output = match src.get(out_name) {
            None => return Err(deepshrink_graph::GraphError::MissingOutput(out_name.clone()).into()),
            Some(Src::Sparse | Src::Quant | Src::Circulant) => {
                return Err(RuntimeError::Unsupported(format!(
                    "graph output '{out_name}' is a compressed weight"
                )))
            }
            Some(s) => *s,
        };

        // Shapes, with every weight (dense or compressed) declared as a fixed-shape input, so no
        // compressed weight is expanded to check them. Batch 2 catches batch-specific reshapes.
        let shadow = Graph { inputs: shadow_inputs, weights: BTreeMap::new(), ..graph };
        shadow.infer_shapes(1)?;
        shadow.infer_shapes(2)?;

        let mut last_use: Vec<Option<usize>> = vec![None; steps.len()];
        for (i, s) in steps.iter().enumerate() {
            for v in &s.ins {
                if let Src::Value(v) = v {
                    last_use[*v] = Some(i);
                }
            }
        }
        let mut free_after = vec![Vec::new(); steps.len()];
        for (v, last) in last_use.into_iter().enumerate() {
            if let (Some(i), false) = (last, output == Src::Value(v)) {
                free_after[i].push(v);
            }
        }
        let sample = shadow.inputs[0].sample_shape();
        Ok(Plan { input_name, sample, weights, steps, output, free_after })
    }
}

/// The step for node `n` reading a quantized weight as input 1 (checked by `runs_on_kernels`).
fn quant_exec(n: &deepshrink_graph::Node, w: QuantW, signed: bool) -> Exec {
    match &n.op {
        Op::Gemm { alpha, beta, trans_a, .. } => {
            let xnor = signed && matches!(w, QuantW::Binary(_));
            Exec::QuantGemm(QuantGemm { w, xnor, alpha: *alpha, beta: *beta, trans_a: *trans_a })
        }
        _ => unreachable!("runs_on_kernels admits Gemm only"),
    }
}

/// The step for node `n` reading compressed weight `name` as input `pos`.
fn sparse_exec(
    n: &deepshrink_graph::Node,
    pos: usize,
    name: &str,
    shape: &[usize],
    w: &SparseWeights,
) -> Result<Exec, RuntimeError> {
    let refuse = |detail: String| RuntimeError::SparseUse {
        weight: name.to_string(),
        node: n.name.clone(),
        op: n.op.name(),
        position: pos,
        detail,
    };
    match (&n.op, pos) {
        (Op::Gemm { alpha, beta, trans_a, trans_b }, 1) => {
            if shape.len() != 2 {
                return Err(refuse(format!("a Gemm weight must be 2-D, this one is {shape:?}")));
            }
            // The kernels compute x · Wᵀ with W = [N, K]; B is [N, K] only with trans_b.
            // The column index lets batch-1 calls skip inputs that are zero (ReLU outputs, blank
            // pixels); the packed rows (u16 columns, codebook expanded to f32) run the other
            // batch-1 calls, or 1x4 blocks when the layer was pruned in blocks. All cost memory,
            // not file size.
            let w = if *trans_b { w.clone() } else { w.transpose() }
                .with_column_index()
                .with_packed_rows()
                .with_blocks();
            Ok(Exec::SparseGemm(SparseGemm { w, alpha: *alpha, beta: *beta, trans_a: *trans_a }))
        }
        (Op::Conv(a), 1) => {
            if shape.len() != 4 {
                return Err(refuse(format!("a Conv weight must be 4-D (OIHW), this one is {shape:?}")));
            }
            if a.group != 1 {
                return Err(refuse(format!("grouped convolution (group {}) has no sparse kernel", a.group)));
            }
            Ok(Exec::SparseConv { w: w.clone(), kernel: [shape[2], shape[3]], attrs: a.clone() })
        }
        _ => Err(refuse("only input B of a Gemm and input W of a Conv can be compressed".into())),
    }
}
