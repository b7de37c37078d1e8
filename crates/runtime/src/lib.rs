//! Inference over a compressed model, with kernels that run on the compressed weights.
//!
//! A [`Runtime`] executes a [`Graph`] whose pruned (and weight-shared) matrices are given as
//! [`SparseMatrix`]es — the two fields of a `.dsk` container — without ever expanding them to
//! dense. A Gemm whose B operand is compressed runs a sparse GEMV (batch 1) or sparse × dense
//! product; a compressed Conv runs im2col per image and a sparse × dense product; float values
//! and codebook values (`centroids[code]`, looked up in the inner loop) each have their own kernel
//! (`deepshrink-kernels`). Every other node runs through [`deepshrink_engine::infer_op`], so an
//! op's arithmetic exists once.
//!
//! Quantized weights ([`Runtime::from_model`]) of Gemm nodes with `trans_b` run on the integer
//! kernels (int8, packed 4- and 2-bit codes, binary signs) with each activation vector quantized
//! to int8 per call; a quantized weight anywhere else is decoded to f32 at load time.
//!
//! Block-circulant weights (`DskModel::circulant`) of Gemm nodes with `trans_b` run on the FFT
//! kernel (`deepshrink_kernels::CirculantWeights`); elsewhere they are expanded at load time.
//!
//! [`Runtime::dense`] is the same executor with no compressed weights: the dense baseline that
//! `deepshrink bench` compares against. Its batch-1 Gemm nodes (`trans_b`, no `trans_a`) run on
//! the `gemm` crate's GEMV reading the weight in place (the fastest dense f32 measured, so the
//! baseline is not a strawman); every other dense node goes through the engine, so dense
//! convolutions run on its kernels: im2col + GEMM, one GEMM per image for 1x1 convs, and a direct
//! kernel (axpy along image rows) for depthwise convs such as the CP form's k×1 and 1×k steps.
//!
//! Design choices:
//! - Everything that can be checked at load time is: value names, which operand a compressed
//!   weight feeds, the CSR structure and codebook codes, shapes (for batch 1 and 2). Running then
//!   only checks the input length and the shapes each node sees, returning errors, never panicking.
//! - A Gemm with `trans_b = false` stores B as `[K, N]`; its CSR is transposed once at load time.
//! - Grouped convolutions on compressed weights are refused at load time.
//! - Compressed Gemm weights are also indexed by column at load time, so a batch-1 call whose
//!   input is mostly zeros (MNIST pixels, ReLU outputs) skips the columns those zeros multiply
//!   (EIE, Han et al. 2016); see `deepshrink_kernels::SparseWeights::with_column_index`. The
//!   other batch-1 calls run on packed rows (`u16` columns, codebook expanded to `f32` once at
//!   load: the file stays codebook-coded); see `deepshrink_kernels::RowPacked`.
//! - Batch-1 kernels run on the calling thread, dense and compressed alike: a second thread
//!   (`deepshrink_kernels::pair_chunks_mut`) did not pay on the shared 2-core machine
//!   (bench/kernels.md), and both sides of `deepshrink bench` must get the same resources.
//!
//! ```
//! use std::collections::BTreeMap;
//! use deepshrink_codec::{DskModel, SparseMatrix};
//! use deepshrink_graph::{Graph, Op, Tensor, ValueInfo};
//! use deepshrink_runtime::Runtime;
//!
//! let mut g = Graph::new("tiny", "x", &[3]);
//! let fc = g.push("fc", Op::Gemm { alpha: 1.0, beta: 1.0, trans_a: false, trans_b: true }, &["x", "w", "b"]);
//! g.add_weight("b", Tensor::f32(vec![2], vec![0.5, -0.5]));
//! g.outputs.push(ValueInfo::batched(&fc, &[2]));
//! let w = SparseMatrix::from_dense(&[2, 3], &[1.0, 0.0, 2.0, 0.0, 3.0, 0.0]);
//! let rt = Runtime::new(g, BTreeMap::from([("w".to_string(), w)])).unwrap();
//! let (shape, y) = rt.run(&[1.0, 1.0, 1.0], 1).unwrap();
//! assert_eq!((shape, y), (vec![1, 2], vec![3.5, 2.5]));
//! ```
#![deny(missing_docs)]

mod circulant;
mod conv;
mod error;
mod gemm;
mod latency;
mod plan;
mod quant;

use std::time::{Duration, Instant};

use deepshrink_codec::{DskModel, SparseMatrix};
use deepshrink_graph::{Graph, Op};
use std::collections::BTreeMap;

pub use error::RuntimeError;
pub use latency::median_latency;
use plan::{Exec, Plan, Src};

/// Wall time of one node in one run.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeTiming {
    /// Node name.
    pub node: String,
    /// Op type.
    pub op: &'static str,
    /// `"dense"`, `"sparse-f32"`, `"sparse-lut"`, `"int8"`, `"int4"`, `"int2"`, `"binary"`,
    /// `"ternary2"` or `"circulant"`.
    pub kind: &'static str,
    /// Elapsed time.
    pub time: Duration,
}

/// A loaded model ready to run: dense weights, compressed weights in kernel form, and a plan.
pub struct Runtime {
    plan: Plan,
}

/// A value during a run: its shape and data.
type Val = (Vec<usize>, Vec<f32>);

/// Output shape, output data and per-node timings.
type Timed = (Vec<usize>, Vec<f32>, Vec<NodeTiming>);

impl Runtime {
    /// Loads a graph whose compressed weights (by weight name) are given separately. A weight
    /// present in both `graph.weights` and `sparse` runs compressed (the dense copy is dropped).
    ///
    /// Fails if a node reads an undefined value, a compressed weight feeds anything but input B of
    /// a Gemm or input W of an ungrouped Conv, a compressed weight is malformed, or shapes do not
    /// fit.
    pub fn new(graph: Graph, sparse: BTreeMap<String, SparseMatrix>) -> Result<Runtime, RuntimeError> {
        Ok(Runtime { plan: Plan::new(graph, sparse, BTreeMap::new(), BTreeMap::new())? })
    }

    /// Loads a `.dsk` model: sparse weights on the sparse kernels, quantized weights on the
    /// integer kernels (decoded to f32 only where they feed an operand those cannot run).
    pub fn from_model(model: DskModel) -> Result<Runtime, RuntimeError> {
        // Hashed (HashedNets) tensors run dense: the hash saves storage, not time.
        let graph = model.graph_with_hashed();
        Ok(Runtime { plan: Plan::new(graph, model.sparse, model.quantized, model.circulant)? })
    }

    /// The dense baseline: the same executor with no compressed weights.
    pub fn dense(graph: Graph) -> Result<Runtime, RuntimeError> {
        Runtime::new(graph, BTreeMap::new())
    }

    /// Runs a batch of `batch` samples (`x` row-major, the input's per-sample shape after the
    /// batch dimension) and returns the graph output's shape and data.
    pub fn run(&self, x: &[f32], batch: usize) -> Result<(Vec<usize>, Vec<f32>), RuntimeError> {
        self.execute(x, batch, None)
    }

    /// [`Runtime::run`], also returning the wall time of every node in plan order.
    pub fn run_timed(&self, x: &[f32], batch: usize) -> Result<Timed, RuntimeError> {
        let mut t = Vec::with_capacity(self.plan.steps.len());
        let (s, y) = self.execute(x, batch, Some(&mut t))?;
        Ok((s, y, t))
    }

    /// Every node with its op type and how it runs: `"dense"`, `"sparse-f32"` or `"sparse-lut"`.
    pub fn node_kinds(&self) -> Vec<(String, String, &'static str)> {
        self.plan.steps.iter().map(|s| (s.name.clone(), s.op.name().to_string(), s.exec.kind())).collect()
    }

    /// Shape of one input sample (the input shape without its batch dimension).
    pub fn sample_shape(&self) -> &[usize] {
        &self.plan.sample
    }

    fn execute(
        &self,
        x: &[f32],
        batch: usize,
        mut timings: Option<&mut Vec<NodeTiming>>,
    ) -> Result<(Vec<usize>, Vec<f32>), RuntimeError> {
        let p = &self.plan;
        let expected = p.sample.iter().try_fold(batch, |a, &d| a.checked_mul(d));
        if expected != Some(x.len()) {
            return Err(RuntimeError::Input {
                name: p.input_name.clone(),
                sample: p.sample.clone(),
                batch,
                expected: expected.unwrap_or(usize::MAX),
                got: x.len(),
            });
        }
        let mut in_shape = vec![batch];
        in_shape.extend(&p.sample);
        let mut vals: Vec<Option<Val>> = vec![None; p.steps.len()];
        for (i, step) in p.steps.iter().enumerate() {
            let start = Instant::now();
            let ins: Vec<(&[usize], &[f32])> = step
                .ins
                .iter()
                .map(|s| match *s {
                    Src::Input => (&in_shape[..], x),
                    Src::Weight(w) => (&p.weights[w].0[..], &p.weights[w].1[..]),
                    Src::Value(v) => {
                        let (s, d) = vals[v].as_ref().expect("plan order: producers run before readers");
                        (&s[..], &d[..])
                    }
                    // Compressed weights are read by the step's own kernel.
                    Src::Sparse | Src::Quant | Src::Circulant => (&[][..], &[][..]),
                })
                .collect();
            let out = step.run(&ins).map_err(|detail| match detail {
                plan::Fail::Shape(detail) => {
                    RuntimeError::Shape { node: step.name.clone(), op: step.op.name(), detail }
                }
                plan::Fail::Engine(source) => RuntimeError::Engine {
                    node: step.name.clone(),
                    op: step.op.name(),
                    source: Box::new(source),
                },
            })?;
            // Stopped before the bookkeeping below (freeing values, naming the timing), which
            // is the executor's cost, not the node's.
            let time = start.elapsed();
            vals[i] = Some(out);
            for &v in &p.free_after[i] {
                vals[v] = None;
            }
            if let Some(t) = timings.as_deref_mut() {
                t.push(NodeTiming {
                    node: step.name.clone(),
                    op: step.op.name(),
                    kind: step.exec.kind(),
                    time,
                });
            }
        }
        match p.output {
            Src::Input => Ok((in_shape, x.to_vec())),
            Src::Weight(w) => Ok(p.weights[w].clone()),
            Src::Value(v) => Ok(vals[v].take().expect("output computed")),
            Src::Sparse | Src::Quant | Src::Circulant => unreachable!("rejected at load time"),
        }
    }
}

impl plan::Step {
    fn run(&self, ins: &[(&[usize], &[f32])]) -> Result<Val, plan::Fail> {
        match &self.exec {
            // Sign (XNOR-Net) directly: through `infer_op` (a one-node graph per call) it cost
            // about 3 µs on 300 values, as much as the XNOR product after it. Same definition
            // as the engine's: +1 for x >= 0, −1 otherwise (NaN included).
            Exec::Engine if self.op == Op::Sign => {
                Ok((ins[0].0.to_vec(), ins[0].1.iter().map(|&v| if v >= 0.0 { 1.0 } else { -1.0 }).collect()))
            }
            Exec::Engine => self.engine(ins),
            Exec::DenseGemm { alpha, beta } => {
                let a = ins[0].0;
                if a.len() == 2 && a[0] == 1 && ins[1].0.len() == 2 && a[1] == ins[1].0[1] {
                    gemm::dense_row(ins[0].1, ins[1], *alpha, *beta, ins.get(2).copied())
                        .map_err(plan::Fail::Shape)
                } else {
                    self.engine(ins)
                }
            }
            Exec::SparseGemm(g) => g.run(ins[0], ins.get(2).copied()).map_err(plan::Fail::Shape),
            Exec::QuantGemm(g) => g.run(ins[0], ins.get(2).copied()).map_err(plan::Fail::Shape),
            Exec::CirculantGemm(g) => g.run(ins[0], ins.get(2).copied()).map_err(plan::Fail::Shape),
            Exec::SparseConv { w, kernel, attrs } => {
                let x = ins[0].0;
                let wshape = [w.csr().rows(), x.get(1).copied().unwrap_or(0), kernel[0], kernel[1]];
                let out = deepshrink_graph::shape::conv_shape(x, &wshape, attrs)
                    .ok()
                    .filter(|_| x[1] * kernel[0] * kernel[1] == w.csr().cols())
                    .ok_or_else(|| {
                        plan::Fail::Shape(format!("input {x:?} does not fit the weight {wshape:?}"))
                    })?;
                let bias = ins.get(2).map(|b| b.1);
                if bias.is_some_and(|b| b.len() != wshape[0]) {
                    return Err(plan::Fail::Shape(format!(
                        "bias does not match {} output channels",
                        wshape[0]
                    )));
                }
                let g = conv::Geo::new(x, *kernel, &out, attrs);
                let mut y = vec![0.0f32; out.iter().product()];
                conv::run(&g, w, ins[0].1, bias, &mut y).map_err(|e| plan::Fail::Shape(e.to_string()))?;
                Ok((out, y))
            }
        }
    }

    fn engine(&self, ins: &[(&[usize], &[f32])]) -> Result<Val, plan::Fail> {
        deepshrink_engine::infer_op(&self.op, ins).map_err(plan::Fail::Engine)
    }
}

/// True if `op` is a Gemm the dense GEMV fast path can run at batch 1.
pub(crate) fn dense_gemv_eligible(op: &Op) -> Option<(f32, f32)> {
    match op {
        Op::Gemm { alpha, beta, trans_a: false, trans_b: true } => Some((*alpha, *beta)),
        _ => None,
    }
}
