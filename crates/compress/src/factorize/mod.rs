//! Low-rank factorization: passes that rewrite the graph, one layer becoming a chain of smaller
//! ones, followed by fine-tuning.
//!
//! - `svd`: a fully-connected layer becomes two (Denton et al. 2014);
//! - `tucker2`: a conv becomes 1x1 → k×k core → 1x1 (Kim et al. 2016);
//! - `cp`: a conv becomes 1x1 → k×1 depthwise → 1×k depthwise → 1x1 (Lebedev et al. 2015);
//! - `separable`: a k×k conv becomes k×1 then 1×k (Jaderberg et al. 2014, scheme 2).
//!
//! Every rewritten graph uses plain ONNX ops, so export, the engine and the runtime run it as is.
//! Ranks come from a rule (`rank`, `energy`, `ratio` per layer or for the net, or VBMF); a layer is
//! rewritten only if the factored form has fewer parameters and — with `check_speed`, the
//! default — runs faster in the runtime than the original at batch 1 and at batch 32 (medians,
//! the two measured alternately). Every layer considered gets a report row: rank, parameters,
//! MACs, relative reconstruction error, latencies, or the reason it was kept.

pub mod config;
pub mod cp;
pub mod linalg;
pub mod rank;
pub mod separable;
pub mod svd;
pub mod tucker;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use deepshrink_engine::Model;
use deepshrink_graph::{Graph, Node, Op, Shapes, Tensor, ValueInfo};
use serde::Serialize;

use crate::pipeline::{finetune, measure};
use crate::{compressible_weights, CompressError, Context, StageReport, State};
use config::{Common, CpConfig, Rule, SeparableConfig, SvdConfig, TuckerConfig};
use linalg::Svd;
use rank::{energy_rank, evbmf_rank, largest_within, net_ranks, Scope};

/// The replacement of one node: new nodes (the last keeps the original node's name and outputs)
/// and the weights they read.
#[derive(Debug, Clone)]
pub struct Rewrite {
    /// Nodes in order.
    pub nodes: Vec<Node>,
    /// New weights.
    pub weights: Vec<(String, Tensor)>,
    /// Rank as printed (`32`, or `r_in x r_out` for Tucker-2).
    pub rank: String,
    /// Relative Frobenius reconstruction error of the weight.
    pub rel_error: f64,
    /// Extra detail (HOOI rounds, ALS sweeps).
    pub note: Option<String>,
}

/// Median latencies of one layer, original and factored, in microseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    /// Original layer at batch 1.
    pub b1_before_us: f64,
    /// Factored chain at batch 1.
    pub b1_after_us: f64,
    /// Original layer at batch 32.
    pub b32_before_us: f64,
    /// Factored chain at batch 32.
    pub b32_after_us: f64,
    /// `b1_before / b1_after`.
    pub speedup_b1: f64,
    /// `b32_before / b32_after`.
    pub speedup_b32: f64,
}

/// What a factorization pass did to one layer.
#[derive(Debug, Clone, Serialize)]
pub struct FactorRow {
    /// The pass (`svd`, `tucker2`, `cp`, `separable`).
    pub pass: String,
    /// The weight.
    pub layer: String,
    /// Rank chosen (empty if none could be).
    pub rank: String,
    /// Parameters of the layer (weight and bias).
    pub params_before: usize,
    /// Parameters of the factored chain (0 if not computed).
    pub params_after: usize,
    /// MACs per sample of the layer.
    pub macs_before: u64,
    /// MACs per sample of the factored chain.
    pub macs_after: u64,
    /// Relative reconstruction error of the weight.
    pub rel_error: Option<f64>,
    /// Measured latencies, if measured.
    pub latency: Option<Latency>,
    /// Whether the layer was replaced.
    pub factorized: bool,
    /// Why not, or a detail of the decomposition.
    pub note: String,
}

/// One of the three passes with its configuration.
#[derive(Debug, Clone, Copy)]
pub enum Method<'a> {
    /// Truncated SVD.
    Svd(&'a SvdConfig),
    /// Tucker-2.
    Tucker2(&'a TuckerConfig),
    /// CP by ALS.
    Cp(&'a CpConfig),
    /// Spatially separable filters.
    Separable(&'a SeparableConfig),
}

impl Method<'_> {
    fn name(&self) -> &'static str {
        match self {
            Method::Svd(_) => "svd",
            Method::Tucker2(_) => "tucker2",
            Method::Cp(_) => "cp",
            Method::Separable(_) => "separable",
        }
    }

    fn common(&self) -> Common<'_> {
        match self {
            Method::Svd(c) => c.common(),
            Method::Tucker2(c) => c.common(),
            Method::Cp(c) => c.common(),
            Method::Separable(c) => c.common(),
        }
    }

    /// The node kinds this method rewrites.
    fn handles(&self, op: &Op) -> bool {
        match self {
            Method::Svd(_) => matches!(op, Op::Gemm { .. } | Op::MatMul),
            _ => matches!(op, Op::Conv(_)),
        }
    }
}

/// A layer under consideration.
struct Cand {
    node: usize,
    weight: String,
    /// The SVD analysis (svd pass) or why the layer is skipped.
    svd: Option<Result<Svd, String>>,
}

/// Runs one factorization pass: rewrites the graph, rebuilds the model, fine-tunes, measures.
pub(crate) fn run(
    state: &mut State,
    ctx: &mut Context,
    method: Method,
    stages: &mut Vec<StageReport>,
    rows: &mut Vec<FactorRow>,
) -> Result<(), CompressError> {
    let start = Instant::now();
    let pass = method.name();
    let common = method.common();
    let graph = state.model.to_graph();
    let shapes = graph.infer_shapes(1)?;
    let mut cands: Vec<Cand> = Vec::new();
    for (i, n) in graph.nodes.iter().enumerate() {
        let Some(w) = n.inputs.get(1) else { continue };
        let is_weight = graph.weights.get(w).is_some_and(|t| t.as_f32().is_some() && t.shape.len() >= 2);
        if !method.handles(&n.op) || !is_weight || common.skip.contains(w) {
            continue;
        }
        let svd = match method {
            Method::Svd(_) => Some(svd::matrix(n, &graph.weights[w]).and_then(|m| svd::decompose(&m))),
            _ => None,
        };
        cands.push(Cand { node: i, weight: w.clone(), svd });
    }
    // Whole-net budget for SVD: ranks allocated together over the layers without an override.
    let mut net: BTreeMap<String, usize> = BTreeMap::new();
    if let Rule::Ratio(x, Scope::Net) = common.rule {
        let pool: Vec<(&Cand, &Svd)> = cands
            .iter()
            .filter(|c| !common.layers.contains_key(&c.weight))
            .filter_map(|c| c.svd.as_ref().and_then(|r| r.as_ref().ok()).map(|s| (c, s)))
            .collect();
        let before: f64 = pool.iter().map(|(_, d)| (d.u.rows * d.v.rows) as f64).sum();
        let layers: Vec<(&[f64], f64)> =
            pool.iter().map(|(_, d)| (&d.s[..], (d.u.rows + d.v.rows) as f64)).collect();
        for ((c, _), r) in pool.iter().zip(net_ranks(&layers, before / x)) {
            net.insert(c.weight.clone(), r);
        }
    }

    let mut accepted: BTreeMap<usize, Rewrite> = BTreeMap::new();
    for c in &cands {
        let node = &graph.nodes[c.node];
        let w = &graph.weights[&c.weight];
        let orig = probe(&graph, &shapes, vec![node.clone()], &[]);
        let (params_before, macs_before) = cost(&orig);
        let mut row = FactorRow {
            pass: pass.into(),
            layer: c.weight.clone(),
            rank: String::new(),
            params_before,
            params_after: 0,
            macs_before,
            macs_after: 0,
            rel_error: None,
            latency: None,
            factorized: false,
            note: String::new(),
        };
        let rewrite = match method {
            Method::Svd(_) => plan_svd(node, c, &common, &net),
            Method::Tucker2(cfg) => plan_tucker(node, &c.weight, w, &shapes, &common, cfg.hooi_iters),
            Method::Cp(cfg) => plan_cp(node, &c.weight, w, &shapes, &common, cfg, ctx.seed),
            Method::Separable(_) => plan_separable(node, &c.weight, w, &shapes, &common),
        };
        let rw = match rewrite {
            Ok(rw) => rw,
            Err(reason) => {
                row.note = format!("kept: {reason}");
                rows.push(row);
                continue;
            }
        };
        row.rank = rw.rank.clone();
        row.rel_error = Some(rw.rel_error);
        if let Some(clash) = rw
            .nodes
            .iter()
            .map(|n| &n.name)
            .chain(rw.weights.iter().map(|(n, _)| n))
            .find(|n| *n != &node.name && (graph.weights.contains_key(*n) || shapes.contains_key(*n)))
        {
            row.note = format!("kept: the name '{clash}' is already taken");
            rows.push(row);
            continue;
        }
        let fact = probe(&graph, &shapes, rw.nodes.clone(), &rw.weights);
        (row.params_after, row.macs_after) = cost(&fact);
        if row.params_after >= row.params_before {
            row.note = format!(
                "kept: rank {} would not be smaller ({} >= {} parameters)",
                rw.rank, row.params_after, row.params_before
            );
            rows.push(row);
            continue;
        }
        if common.check_speed {
            match measure_pair(&orig, &fact) {
                Ok(lat) => {
                    let slow = lat.speedup_b1 < common.min_speedup || lat.speedup_b32 < common.min_speedup;
                    row.latency = Some(lat.clone());
                    if slow {
                        row.note = format!(
                            "kept: not faster (speed-up {:.2}x at batch 1, {:.2}x at batch 32; {:.2}x required)",
                            lat.speedup_b1, lat.speedup_b32, common.min_speedup
                        );
                        rows.push(row);
                        continue;
                    }
                }
                Err(e) => {
                    row.note = format!("kept: the factored layer does not run: {e}");
                    rows.push(row);
                    continue;
                }
            }
        }
        row.factorized = true;
        row.note = rw.note.clone().unwrap_or_default();
        rows.push(row);
        accepted.insert(c.node, rw);
    }

    if !accepted.is_empty() {
        let mut g = graph.clone();
        g.nodes.clear();
        let mut removed = Vec::new();
        for (i, n) in graph.nodes.iter().enumerate() {
            match accepted.remove(&i) {
                Some(rw) => {
                    removed.push(n.inputs[1].clone());
                    g.nodes.extend(rw.nodes);
                    g.weights.extend(rw.weights);
                }
                None => g.nodes.push(n.clone()),
            }
        }
        for w in removed {
            if !g.nodes.iter().any(|n| n.inputs.contains(&w)) {
                g.weights.remove(&w);
                state.hook.constraints.remove(&w);
                state.bits.remove(&w);
            }
        }
        state.layers = compressible_weights(&g);
        state.model = Model::new(g)?;
        stages.push(measure(state, ctx, format!("{pass} (before fine-tuning)"), start)?);
        let start = Instant::now();
        finetune(state, ctx, &format!("{pass} fine-tuning"), common.finetune_epochs, common.lr)?;
        stages.push(measure(state, ctx, pass.into(), start)?);
    } else {
        stages.push(measure(state, ctx, format!("{pass} (no layer factorized)"), start)?);
    }
    Ok(())
}

fn plan_svd(
    node: &Node,
    c: &Cand,
    common: &Common,
    net: &BTreeMap<String, usize>,
) -> Result<Rewrite, String> {
    let d = c.svd.as_ref().expect("svd analysed").as_ref().map_err(|e| e.clone())?;
    let (m, n, full) = (d.u.rows, d.v.rows, d.s.len());
    let k = match (common.layers.get(&c.weight), common.rule) {
        (Some(&r), _) => r,
        (None, Rule::Rank(r)) => r,
        (None, Rule::Energy(e)) => energy_rank(&d.s, e),
        (None, Rule::Ratio(x, Scope::PerLayer)) => {
            largest_within(full, (m * n) as f64 / x, |k| (k * (m + n)) as f64)
                .ok_or_else(|| format!("no rank shrinks the layer {x}x"))?
        }
        (None, Rule::Ratio(_, Scope::Net)) => net[&c.weight],
        (None, Rule::Vbmf) => evbmf_rank(&d.s, m, n, d.s.iter().map(|v| v * v).sum()).max(1),
    };
    if k > full {
        return Err(format!("rank {k} is above the full rank {full}"));
    }
    Ok(svd::rewrite(node, &c.weight, d, k))
}

/// The kernel of a conv node as f64 with its shape and attributes, or why it is not factorized.
fn conv_kernel<'a>(
    node: &'a Node,
    w: &Tensor,
) -> Result<(Vec<f64>, [usize; 4], &'a deepshrink_graph::ConvAttrs), String> {
    let Op::Conv(a) = &node.op else { return Err(format!("{} is not a convolution", node.op.name())) };
    if a.group != 1 {
        return Err(format!("grouped convolution (group {})", a.group));
    }
    let data = w.as_f32().ok_or("weight is not f32")?;
    if w.shape.len() != 4 {
        return Err(format!("kernel shape {:?} is not 4-D", w.shape));
    }
    if data.iter().any(|v| !v.is_finite()) {
        return Err("weights are not finite (NaN or infinity)".into());
    }
    let shape = [w.shape[0], w.shape[1], w.shape[2], w.shape[3]];
    Ok((data.iter().map(|&v| v as f64).collect(), shape, a))
}

/// Input and output spatial sizes (`h*w`) of a conv node, and the height of its output.
fn spatial(node: &Node, shapes: &Shapes) -> (usize, usize, [usize; 2], [usize; 2]) {
    let x = &shapes[&node.inputs[0]];
    let y = &shapes[&node.outputs[0]];
    (x[2] * x[3], y[2] * y[3], [x[2], x[3]], [y[2], y[3]])
}

fn plan_tucker(
    node: &Node,
    name: &str,
    w: &Tensor,
    shapes: &Shapes,
    common: &Common,
    hooi_iters: usize,
) -> Result<Rewrite, String> {
    let (data, shape, attrs) = conv_kernel(node, w)?;
    let [s, c, kh, kw] = shape;
    let kk = kh * kw;
    let (hw_in, hw_out, _, _) = spatial(node, shapes);
    let (r_out, r_in) = match (common.layers.get(name), common.rule) {
        (Some(&r), _) | (None, Rule::Rank(r)) => (r, r),
        (None, Rule::Energy(e)) => {
            let (s0, s1) = tucker::spectra(&data, shape).ok_or("the SVD did not converge")?;
            (energy_rank(&s0, e), energy_rank(&s1, e))
        }
        (None, Rule::Vbmf) => {
            let (s0, s1) = tucker::spectra(&data, shape).ok_or("the SVD did not converge")?;
            let n2: f64 = data.iter().map(|v| v * v).sum();
            (evbmf_rank(&s0, s, c * kk, n2).max(1), evbmf_rank(&s1, c, s * kk, n2).max(1))
        }
        (None, Rule::Ratio(x, _)) => {
            let budget = (hw_out * s * c * kk) as f64 / x;
            let ranks = |f: usize| ((f * s).div_ceil(100).max(1), (f * c).div_ceil(100).max(1));
            let f = largest_within(100, budget, |f| {
                let (ro, ri) = ranks(f);
                tucker::macs(shape, ro, ri, hw_in, hw_out)
            })
            .ok_or_else(|| format!("no ranks shrink the MACs {x}x"))?;
            ranks(f)
        }
    };
    if r_out > s || r_in > c {
        return Err(format!("ranks {r_in}x{r_out} are above the full ranks {c}x{s}"));
    }
    let t =
        tucker::decompose(&data, shape, r_out, r_in, hooi_iters, 1e-4).ok_or("the SVD did not converge")?;
    Ok(tucker::rewrite(node, name, attrs, shape, &t))
}

fn plan_cp(
    node: &Node,
    name: &str,
    w: &Tensor,
    shapes: &Shapes,
    common: &Common,
    cfg: &CpConfig,
    seed: u64,
) -> Result<Rewrite, String> {
    let (data, shape, attrs) = conv_kernel(node, w)?;
    let [s, c, kh, kw] = shape;
    if kh * kw == 1 {
        return Err("1x1 kernel: nothing to separate (use svd on it)".into());
    }
    let (hw_in, hw_out, [_, w_in], [oh, _]) = spatial(node, shapes);
    let full = s * c * kh * kw / s.max(c).max(kh).max(kw);
    let r = match (common.layers.get(name), common.rule) {
        (Some(&r), _) | (None, Rule::Rank(r)) => r,
        (None, Rule::Ratio(x, _)) => {
            let budget = (hw_out * s * c * kh * kw) as f64 / x;
            largest_within(full, budget, |r| cp::macs(shape, r, hw_in, oh * w_in, hw_out))
                .ok_or_else(|| format!("no rank shrinks the MACs {x}x"))?
        }
        (None, rule) => return Err(format!("rule {rule:?} does not apply to CP")),
    };
    if r > full {
        return Err(format!("rank {r} is above the full rank bound {full}"));
    }
    let d = cp::decompose(&data, shape, r, cfg.max_iter, cfg.tol, seed).ok_or("the SVD did not converge")?;
    if d.rel_error.is_nan() || d.rel_error > cfg.max_error {
        return Err(format!(
            "ALS did not fit the kernel: relative error {:.3} after {} sweeps (max_error {})",
            d.rel_error, d.iters, cfg.max_error
        ));
    }
    Ok(cp::rewrite(node, name, attrs, shape, &d))
}

fn plan_separable(
    node: &Node,
    name: &str,
    w: &Tensor,
    shapes: &Shapes,
    common: &Common,
) -> Result<Rewrite, String> {
    let (data, shape, attrs) = conv_kernel(node, w)?;
    let [s, c, kh, kw] = shape;
    if kh == 1 || kw == 1 {
        return Err(format!("{kh}x{kw} kernel: already separable in space"));
    }
    let (_, hw_out, [_, w_in], [oh, _]) = spatial(node, shapes);
    let d = separable::decompose(&data, shape).ok_or("the SVD did not converge")?;
    let full = d.s.len();
    let k = match (common.layers.get(name), common.rule) {
        (Some(&r), _) | (None, Rule::Rank(r)) => r,
        (None, Rule::Energy(e)) => energy_rank(&d.s, e),
        (None, Rule::Vbmf) => evbmf_rank(&d.s, c * kh, s * kw, d.s.iter().map(|v| v * v).sum()).max(1),
        (None, Rule::Ratio(x, _)) => {
            let budget = (hw_out * s * c * kh * kw) as f64 / x;
            largest_within(full, budget, |k| separable::macs(shape, k, oh * w_in, hw_out))
                .ok_or_else(|| format!("no rank shrinks the MACs {x}x"))?
        }
    };
    if k > full {
        return Err(format!("rank {k} is above the full rank {full}"));
    }
    Ok(separable::rewrite(node, name, attrs, shape, &d, k))
}

/// A graph holding only `nodes` (reading the first node's first input), for costs and timing.
fn probe(graph: &Graph, shapes: &Shapes, nodes: Vec<Node>, extra: &[(String, Tensor)]) -> Graph {
    let x = &nodes[0].inputs[0];
    let y = &nodes[nodes.len() - 1].outputs[0];
    let mut g = Graph::new("probe", x, &shapes[x][1..]);
    for n in &nodes {
        for i in &n.inputs {
            if let Some(t) = graph.weights.get(i) {
                g.weights.insert(i.clone(), t.clone());
            }
        }
    }
    g.weights.extend(extra.iter().cloned());
    g.outputs = vec![ValueInfo::batched(y, &shapes[y][1..])];
    g.nodes = nodes;
    g
}

/// Parameters and MACs per sample of a probe graph.
fn cost(g: &Graph) -> (usize, u64) {
    g.node_costs(1).map_or((0, 0), |c| (c.iter().map(|c| c.params).sum(), c.iter().map(|c| c.macs).sum()))
}

/// Median latencies of the two probes at batch 1 and 32, measured alternately (7 rounds; each
/// round takes the median of several runs) so that machine load hits both alike.
fn measure_pair(orig: &Graph, fact: &Graph) -> Result<Latency, String> {
    let rt = |g: &Graph| deepshrink_runtime::Runtime::dense(g.clone()).map_err(|e| e.to_string());
    let (ro, rf) = (rt(orig)?, rt(fact)?);
    let sample: usize = orig.inputs[0].sample_shape().iter().product();
    let mut out = [0.0f64; 4];
    for (j, (batch, runs)) in [(1usize, 21usize), (32, 5)].into_iter().enumerate() {
        let x: Vec<f32> = (0..batch * sample).map(|i| ((i * 7919 % 1000) as f32 / 500.0) - 1.0).collect();
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for _ in 0..7 {
            let t = |r: &deepshrink_runtime::Runtime| {
                deepshrink_runtime::median_latency(r, &x, batch, runs)
                    .map(|(d, _)| d)
                    .map_err(|e| e.to_string())
            };
            a.push(t(&ro)?);
            b.push(t(&rf)?);
        }
        out[2 * j] = median_us(&mut a);
        out[2 * j + 1] = median_us(&mut b);
    }
    Ok(Latency {
        b1_before_us: out[0],
        b1_after_us: out[1],
        b32_before_us: out[2],
        b32_after_us: out[3],
        speedup_b1: out[0] / out[1].max(1e-9),
        speedup_b32: out[2] / out[3].max(1e-9),
    })
}

fn median_us(v: &mut [Duration]) -> f64 {
    v.sort_unstable();
    v[v.len() / 2].as_secs_f64() * 1e6
}
